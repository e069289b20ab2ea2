#!/usr/bin/env node
// Benchmark of `ctl download`: the CPU it spends per image (user + system time of the process, so a busy machine
// barely moves it) and its peak RSS, with full validation (the default) and `--validate fast`, against a loopback
// host serving N generated ~23 KB JPEGs (a pool of distinct images behind N distinct signatures). A plain undici
// loop (fetch and write, nothing else) runs beside it as a reference line. The host is a process of its own: its
// CPU is not counted, as a real image host's would not be.
//
//   npm run build && node bench/download/run.mjs [--images 10000] [--concurrency 32] [--pool 256] [--rounds 3] [--keep]
//
// Needs GNU time (/usr/bin/time). Everything goes under the OS temp folder (TMPDIR=/dev/shm puts it on tmpfs).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { benchArgs, loadAverage, median, repo, say } from '../common.mjs';

const here = import.meta.dirname;
const cli = join(repo, 'dist/cli.js');

const args = benchArgs(
  {
    images: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '32' },
    pool: { type: 'string', default: '256' },
    rounds: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
  },
  { counts: { images: 1, concurrency: 1, pool: 1, rounds: 1 } },
);
// Checked before any work: without it every round would fail after the images are written.
const GNU_TIME = '/usr/bin/time';
if (!existsSync(GNU_TIME)) {
  say(`run.mjs: needs GNU time (${GNU_TIME}): apt-get install time`);
  process.exit(2);
}
const images = args.images;
const concurrency = args.concurrency;
const poolSize = args.pool;
const rounds = args.rounds;

const root = mkdtempSync(join(tmpdir(), 'ctl-bench-download-'));
// Whatever ends the bench, a failed round too, takes its image server and (unless --keep) its files with it.
let server;
process.on('exit', () => {
  server?.kill();
  if (!args.keep) rmSync(root, { recursive: true, force: true });
});

/** A photo-like JPEG of about 23 KB: smooth gradients plus a little noise, 400 px wide like Pinterest's 400x. */
async function photo(seed) {
  const [width, height] = [400, 300 + (seed % 5) * 40];
  const raw = Buffer.alloc(width * height * 3);
  let x = seed * 2654435761 + 7;
  for (let y = 0; y < height; y++)
    for (let c = 0; c < width; c++)
      for (let k = 0; k < 3; k++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        const v =
          128 +
          70 * Math.sin(c / (13 + (seed % 7)) + k + seed) +
          50 * Math.cos(y / (17 + k) - seed) +
          ((x >>> 27) - 16);
        raw[(y * width + c) * 3 + k] = Math.max(0, Math.min(255, v));
      }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 75 })
    .toBuffer();
}

/**
 * Run a command under GNU time: wall seconds, peak RSS (MB), CPU seconds (user + system) and the system part, and
 * its stdout. The files the previous client wrote are flushed to disk first, so their writeback does not fall on it.
 */
function measure(command, commandArgs) {
  spawnSync('sync');
  const timeFile = join(root, 'time.txt');
  return new Promise((resolvePromise, reject) => {
    const child = spawn(GNU_TIME, ['-f', '%e %M %U %S', '-o', timeFile, command, ...commandArgs], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${command} exited with ${code}`));
      const [seconds, rssKb, user, system] = readFileSync(timeFile, 'utf8')
        .trim()
        .split('\n')
        .at(-1)
        .split(' ')
        .map(Number);
      resolvePromise({ seconds, rssMb: rssKb / 1024, cpu: user + system, system, stdout });
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
server = spawn(process.execPath, [join(here, 'server.mjs'), poolDir], { stdio: ['ignore', 'pipe', 'inherit'] });
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
const { normaliseWorkdir } = await import(join(repo, 'dist/data/stl/dataset-io.js'));
const { dataset } = await normaliseWorkdir(workdir, 'fashion', { source: 'synthetic' });
const sigs = [...dataset.scenes.map((s) => s.sig), ...dataset.products.map((p) => p.sig)];
const urls = sigs.map((s) => `${baseUrl}/400x/${s.slice(0, 2)}/${s.slice(2, 4)}/${s.slice(4, 6)}/${s}.jpg`);
writeFileSync(join(root, 'urls.txt'), urls.join('\n') + '\n');

// 3. Rounds of the undici loop and ctl (full, fast) in turn. Every run writes into a folder of its own and nothing
// is deleted before the end: right after thousands of files are deleted, ext4 creates new ones slowly for minutes.
const runs = new Map(); // client name -> one measurement per round
const record = (name, r) => {
  const runsOf = runs.get(name) ?? [];
  runsOf.push({ rssMb: r.rssMb, cpuMs: (1000 * r.cpu) / sigs.length, systemMs: (1000 * r.system) / sigs.length });
  runs.set(name, runsOf);
  say(
    `${name}: ${((1000 * r.cpu) / sigs.length).toFixed(2)} ms CPU per image, ${r.seconds.toFixed(1)} s, load ${loadAverage()}`,
  );
};
let runCount = 0;
const freshDir = (name) => {
  const dir = join(root, `${name}-${runCount++}`);
  mkdirSync(dir);
  return dir;
};
const loadBefore = loadAverage();
for (let round = 0; round < rounds; round++) {
  say(`round ${round + 1} of ${rounds}`);
  const loopDir = freshDir('loop');
  record(
    'undici loop (reference)',
    await measure(process.execPath, [join(here, 'baseline.mjs'), join(root, 'urls.txt'), loopDir, String(concurrency)]),
  );
  for (const validate of ['full', 'fast']) {
    const ctlWorkdir = freshDir('ctl');
    cpSync(join(workdir, 'dataset'), join(ctlWorkdir, 'dataset'), { recursive: true });
    const ctl = await measure(process.execPath, [
      ...[cli, 'download', '--workdir', ctlWorkdir, '--base-url', baseUrl],
      ...['--concurrency', String(concurrency), '--validate', validate, '--json'],
    ]);
    const { state } = JSON.parse(ctl.stdout);
    if (state.ok !== sigs.length) throw new Error(`ctl download settled ${state.ok} ok of ${sigs.length}`);
    record(`ctl download --validate ${validate}`, ctl);
  }
}

// 4. The table: medians over rounds (peak RSS: the largest), and what that CPU allows on this many cores.
const cores = cpus().length;
const pad = (s, n) => String(s).padEnd(n);
console.log(
  `\n${sigs.length} images of ~${(pool.reduce((a, b) => a + b, 0) / pool.length / 1024).toFixed(0)} KB, concurrency ${concurrency}, ${rounds} rounds, ` +
    `node ${process.version}, ${cores} cores, load average ${loadBefore} before, ${loadAverage()} after`,
);
console.log(
  `${pad('client (median of rounds)', 30)}${pad('CPU ms/image (system)', 23)}${pad('peak RSS MB', 13)}images/s on ${cores} cores by CPU alone`,
);
for (const [name, list] of runs) {
  const cpuMs = median(list.map((r) => r.cpuMs));
  // The ceiling is ctl's (its work spreads over every core); the single-threaded loop is only a reference.
  const ceiling = name.startsWith('ctl') ? ((cores * 1000) / cpuMs).toFixed(0) : '-';
  console.log(
    `${pad(name, 30)}${pad(`${cpuMs.toFixed(2)} (${median(list.map((r) => r.systemMs)).toFixed(2)})`, 23)}` +
      `${pad(Math.max(...list.map((r) => r.rssMb)).toFixed(0), 13)}${ceiling}`,
  );
}
server.kill(); // the end: its open pipe would keep this process alive
