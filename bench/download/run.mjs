#!/usr/bin/env node
// Benchmark of `ctl download`: a loopback host serving N generated ~30 KB JPEGs (a pool of distinct images behind N
// distinct signatures); `ctl download` (--validate full, the default, and fast) against plain clients (a minimal
// undici loop; curl --parallel), same host, same concurrency, run one after the other in this script. Prints
// images/s, MB/s, peak RSS and CPU per image of each, and the ratios.
//
//   npm run build && node bench/download/run.mjs [--images 20000] [--concurrency 32] [--pool 256] [--no-curl] [--keep]
//
// Needs GNU time (/usr/bin/time) for peak RSS and CPU time.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const cli = join(repo, 'dist/cli.js');

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const images = flag('--images', 20_000);
const concurrency = flag('--concurrency', 32);
const poolSize = flag('--pool', 256);
const useCurl = !args.includes('--no-curl') && spawnSync('curl', ['--version']).status === 0;
const keep = args.includes('--keep');

const root = mkdtempSync(join(tmpdir(), 'ctl-bench-download-'));
const say = (text) => process.stderr.write(text + '\n');

/** A photo-like JPEG of about 30 KB: smooth gradients plus a little noise, 400 px wide like Pinterest's 400x. */
async function photo(seed) {
  const [width, height] = [400, 300 + (seed % 5) * 40];
  const raw = Buffer.alloc(width * height * 3);
  let x = seed * 2654435761 + 7;
  for (let y = 0; y < height; y++)
    for (let c = 0; c < width; c++)
      for (let k = 0; k < 3; k++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        const v = 128 + 70 * Math.sin(c / (13 + seed % 7) + k + seed) + 50 * Math.cos(y / (17 + k) - seed) + ((x >>> 27) - 16);
        raw[(y * width + c) * 3 + k] = Math.max(0, Math.min(255, v));
      }
  return sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 75 }).toBuffer();
}

/**
 * Run a command under GNU time: wall seconds, peak RSS (MB) and CPU seconds (user + system) of the process, and
 * its stdout. CPU per image is the figure that holds on a busy machine, where wall-clock rates swing.
 */
function measure(command, commandArgs) {
  const timeFile = join(root, 'time.txt');
  return new Promise((resolvePromise, reject) => {
    const child = spawn('/usr/bin/time', ['-f', '%e %M %U %S', '-o', timeFile, command, ...commandArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${command} exited with ${code}`));
      const [seconds, rssKb, user, system] = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
      resolvePromise({ seconds, rssMb: rssKb / 1024, cpu: user + system, stdout });
    });
  });
}

// 1. The image pool and the host.
say(`bench/download: ${images} images, concurrency ${concurrency}, pool of ${poolSize} distinct JPEGs, in ${root}`);
const poolDir = join(root, 'pool');
mkdirSync(poolDir);
const pool = [];
for (let i = 0; i < poolSize; i++) {
  const jpeg = await photo(i);
  pool.push(jpeg.length);
  writeFileSync(join(poolDir, `${String(i).padStart(4, '0')}.jpg`), jpeg);
}
say(`pool: mean ${(pool.reduce((a, b) => a + b, 0) / pool.length / 1024).toFixed(1)} KB per image`);
const server = spawn(process.execPath, [join(here, 'server.mjs'), poolDir], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((r) => server.stdout.once('data', (d) => r(Number(String(d).trim()))));
const baseUrl = `http://127.0.0.1:${port}`;

// 2. A dataset with `images` signatures (a quarter scenes, three products per scene), normalised by the data layer.
const sig = (name) => createHash('md5').update(name).digest('hex');
const scenes = Math.round(images / 4);
const workdir = join(root, 'workdir');
mkdirSync(join(workdir, 'stl'), { recursive: true });
const pairs = [];
const categories = {};
for (let s = 0; s < scenes; s++)
  for (let p = 0; p < 3 && scenes + s * 3 + p < images; p++) {
    const product = sig(`bench-product-${s}-${p}`);
    categories[product] = 'Apparel & Accessories|Shoes';
    pairs.push(JSON.stringify({ product, scene: sig(`bench-scene-${s}`), bbox: [0.1, 0.1, 0.6, 0.7] }));
  }
writeFileSync(join(workdir, 'stl/fashion.json'), pairs.join('\n') + '\n');
writeFileSync(join(workdir, 'stl/fashion-cat.json'), JSON.stringify(categories));
const { normaliseWorkdir } = await import(join(repo, 'dist/data/dataset-io.js'));
const { dataset } = await normaliseWorkdir(workdir, 'fashion', { source: 'synthetic' });
const sigs = [...dataset.scenes.map((s) => s.sig), ...dataset.products.map((p) => p.sig)];
const urls = sigs.map((s) => `${baseUrl}/400x/${s.slice(0, 2)}/${s.slice(2, 4)}/${s.slice(4, 6)}/${s}.jpg`);
const totalBytes = sigs.reduce((n, s) => n + pool[parseInt(s.slice(0, 8), 16) % pool.length], 0);
writeFileSync(join(root, 'urls.txt'), urls.join('\n') + '\n');

// 3. The clients, one after the other.
const rows = [];
const row = (name, r, extra = '') => {
  rows.push({ name, seconds: r.seconds, rate: sigs.length / r.seconds, mbps: totalBytes / 1e6 / r.seconds, rssMb: r.rssMb, cpuMs: (1000 * r.cpu) / sigs.length, extra });
  say(`${name}: ${r.seconds.toFixed(2)} s`);
};

const baselineOut = join(root, 'baseline');
mkdirSync(baselineOut);
row('undici loop, no validation', await measure(process.execPath, [join(here, 'baseline.mjs'), join(root, 'urls.txt'), baselineOut, String(concurrency)]));
rmSync(baselineOut, { recursive: true });

if (useCurl) {
  const curlOut = join(root, 'curl');
  mkdirSync(curlOut);
  writeFileSync(join(root, 'urls.curl'), urls.map((u, i) => `url = "${u}"\noutput = "${join(curlOut, `${i}.jpg`)}"\n`).join(''));
  row(`curl --parallel-max ${concurrency}`, await measure('curl', ['--silent', '--fail', '--parallel', '--parallel-max', String(concurrency), '--config', join(root, 'urls.curl')]));
  rmSync(curlOut, { recursive: true });
}

const ctlArgs = [cli, 'download', '--workdir', workdir, '--base-url', baseUrl, '--concurrency', String(concurrency), '--json'];
for (const validate of ['full', 'fast']) {
  rmSync(join(workdir, 'images'), { recursive: true, force: true });
  const ctl = await measure(process.execPath, [...ctlArgs, '--validate', validate]);
  const summary = JSON.parse(ctl.stdout);
  if (summary.state.ok !== sigs.length) throw new Error(`ctl download settled ${summary.state.ok} ok of ${sigs.length}`);
  row(`ctl download --validate ${validate}`, ctl, `fetch phase alone: ${summary.imagesPerSec.toFixed(0)} images/s`);
}
const again = await measure(process.execPath, ctlArgs);
row('ctl download, re-run (all present)', again, `${JSON.parse(again.stdout).todo} fetched`);
rows.at(-1).rate = NaN; // nothing downloaded: only its time is meaningful
rows.at(-1).mbps = NaN;
rows.at(-1).cpuMs = NaN;

server.kill();
if (!keep) rmSync(root, { recursive: true, force: true });

// 4. The table.
const pad = (s, n) => String(s).padEnd(n);
const num = (v, d) => (Number.isFinite(v) ? v.toFixed(d) : '-');
console.log(`\n${sigs.length} images, ${(totalBytes / 1e6).toFixed(0)} MB, concurrency ${concurrency}, node ${process.version}, ${(await import('node:os')).cpus().length} cores`);
console.log(`${pad('client', 38)}${pad('seconds', 9)}${pad('images/s', 10)}${pad('MB/s', 8)}${pad('peak RSS MB', 13)}${pad('CPU ms/image', 14)}`);
for (const r of rows)
  console.log(`${pad(r.name, 38)}${pad(num(r.seconds, 2), 9)}${pad(num(r.rate, 0), 10)}${pad(num(r.mbps, 1), 8)}${pad(num(r.rssMb, 0), 13)}${pad(num(r.cpuMs, 2), 14)}${r.extra}`);
for (const ctlRow of rows.filter((r) => r.name.startsWith('ctl download --validate')))
  for (const base of rows.filter((r) => !r.name.startsWith('ctl')))
    console.log(
      `ratio ${ctlRow.name} / ${base.name}: ${(ctlRow.rate / base.rate).toFixed(2)} images/s (end to end, process start included), ` +
        `${(base.cpuMs / ctlRow.cpuMs).toFixed(2)} by CPU per image`,
    );
