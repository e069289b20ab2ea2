#!/usr/bin/env node
// Benchmark of `ctl download`: a loopback host serving N generated ~30 KB JPEGs (a pool of distinct images behind N
// distinct signatures); `ctl download` (--validate full, the default, and fast) against plain clients (a minimal
// undici loop; curl --parallel, once), same host, same concurrency. The undici loop and ctl alternate over several
// rounds, so a busy machine's swings hit them alike; the ratios are medians of each round's ratio. Prints images/s,
// MB/s, peak RSS and CPU per image of each (and its system part: the file system's share shows there), and the ratios.
//
//   npm run build && node bench/download/run.mjs [--images 20000] [--concurrency 32] [--pool 256] [--rounds 3] [--no-curl] [--keep]
//
// Needs GNU time (/usr/bin/time) for peak RSS and CPU time. Run it on a quiet machine, and not within ~15 minutes of
// deleting many files on the same file system (an earlier run's clean-up included): ext4 passes over recently freed
// inodes when it allocates new ones, which made creating files up to ~9x slower here (the loop's system time per
// image shows it: ~0.14 ms when ext4 is well). Everything goes under the OS temp folder: TMPDIR=/dev/shm puts it on
// tmpfs, which takes the disk out of the comparison.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const cli = join(repo, 'dist/cli.js');

const { values: args } = parseArgs({
  options: {
    images: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '32' },
    pool: { type: 'string', default: '256' },
    rounds: { type: 'string', default: '3' },
    'no-curl': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const images = Number(args.images);
const concurrency = Number(args.concurrency);
const poolSize = Number(args.pool);
const rounds = Number(args.rounds);
const useCurl = !args['no-curl'] && spawnSync('curl', ['--version']).status === 0;
const keep = args.keep;

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
 * Run a command under GNU time: wall seconds, peak RSS (MB) and CPU seconds (user + system) of the process, and
 * its stdout. CPU per image is the figure that holds on a busy machine, where wall-clock rates swing. The files
 * the previous client wrote are flushed to disk first, so their writeback does not fall on this one.
 */
function measure(command, commandArgs) {
  spawnSync('sync');
  const timeFile = join(root, 'time.txt');
  return new Promise((resolvePromise, reject) => {
    const child = spawn('/usr/bin/time', ['-f', '%e %M %U %S', '-o', timeFile, command, ...commandArgs], {
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
const { normaliseWorkdir } = await import(join(repo, 'dist/data/stl/dataset-io.js'));
const { dataset } = await normaliseWorkdir(workdir, 'fashion', { source: 'synthetic' });
const sigs = [...dataset.scenes.map((s) => s.sig), ...dataset.products.map((p) => p.sig)];
const urls = sigs.map((s) => `${baseUrl}/400x/${s.slice(0, 2)}/${s.slice(2, 4)}/${s.slice(4, 6)}/${s}.jpg`);
const totalBytes = sigs.reduce((n, s) => n + pool[parseInt(s.slice(0, 8), 16) % pool.length], 0);
writeFileSync(join(root, 'urls.txt'), urls.join('\n') + '\n');

// 3. The clients: curl once, then rounds of the undici loop and ctl (full, fast) in turn; at last a re-run of ctl.
const runs = new Map(); // client name -> one measurement per round
const record = (name, r, extra = {}) => {
  const runsOf = runs.get(name) ?? [];
  runsOf.push({
    seconds: r.seconds,
    rssMb: r.rssMb,
    cpuMs: (1000 * r.cpu) / sigs.length,
    systemMs: (1000 * r.system) / sigs.length,
    ...extra,
  });
  runs.set(name, runsOf);
  say(
    `${name}: ${r.seconds.toFixed(2)} s, ${(sigs.length / r.seconds).toFixed(0)} images/s, ${((1000 * r.cpu) / sigs.length).toFixed(2)} ms CPU per image`,
  );
};
const BASELINE = 'undici loop, no validation';
// Every run writes into a folder of its own, and nothing is deleted before the end: right after thousands of files
// are deleted, ext4 allocates new inodes slowly (it skips recently freed ones), which would tax the next client.
let runCount = 0;
const freshDir = (name) => {
  const dir = join(root, `${name}-${runCount++}`);
  mkdirSync(dir);
  return dir;
};

if (useCurl) {
  const curlOut = freshDir('curl');
  writeFileSync(
    join(root, 'urls.curl'),
    urls.map((u, i) => `url = "${u}"\noutput = "${join(curlOut, `${i}.jpg`)}"\n`).join(''),
  );
  record(
    `curl --parallel-max ${concurrency}`,
    await measure('curl', [
      '--silent',
      '--fail',
      '--parallel',
      '--parallel-max',
      String(concurrency),
      '--config',
      join(root, 'urls.curl'),
    ]),
  );
}

const ctlArgs = (dir) => [
  cli,
  'download',
  '--workdir',
  dir,
  '--base-url',
  baseUrl,
  '--concurrency',
  String(concurrency),
  '--json',
];
let ctlWorkdir;
for (let round = 0; round < rounds; round++) {
  say(`round ${round + 1} of ${rounds}`);
  record(
    BASELINE,
    await measure(process.execPath, [
      join(here, 'baseline.mjs'),
      join(root, 'urls.txt'),
      freshDir('baseline'),
      String(concurrency),
    ]),
  );
  for (const validate of ['full', 'fast']) {
    ctlWorkdir = freshDir('ctl');
    cpSync(join(workdir, 'dataset'), join(ctlWorkdir, 'dataset'), { recursive: true });
    const ctl = await measure(process.execPath, [...ctlArgs(ctlWorkdir), '--validate', validate]);
    const summary = JSON.parse(ctl.stdout);
    if (summary.state.ok !== sigs.length)
      throw new Error(`ctl download settled ${summary.state.ok} ok of ${sigs.length}`);
    record(`ctl download --validate ${validate}`, ctl, { fetchRate: summary.imagesPerSec });
  }
}
const again = await measure(process.execPath, ctlArgs(ctlWorkdir));
say(`re-run, all present: ${JSON.parse(again.stdout).todo} fetched in ${again.seconds.toFixed(2)} s`);

server.kill();
if (!keep) rmSync(root, { recursive: true, force: true });

// 4. The table: medians over rounds (peak RSS: the largest).
const median = (values) => {
  const sorted = values.slice().sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const pad = (s, n) => String(s).padEnd(n);
console.log(
  `\n${sigs.length} images, ${(totalBytes / 1e6).toFixed(0)} MB, concurrency ${concurrency}, ${rounds} rounds, node ${process.version}, ` +
    `${(await import('node:os')).cpus().length} cores, load average ${(await import('node:os'))
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
);
console.log(
  `${pad('client (median of rounds)', 38)}${pad('seconds', 9)}${pad('images/s', 10)}${pad('MB/s', 8)}${pad('peak RSS MB', 13)}${pad('CPU ms/image (system)', 23)}`,
);
for (const [name, list] of runs) {
  const seconds = median(list.map((r) => r.seconds));
  const fetch =
    list[0].fetchRate === undefined
      ? ''
      : `fetch phase alone: ${median(list.map((r) => r.fetchRate)).toFixed(0)} images/s`;
  console.log(
    `${pad(name, 38)}${pad(seconds.toFixed(2), 9)}${pad((sigs.length / seconds).toFixed(0), 10)}${pad((totalBytes / 1e6 / seconds).toFixed(1), 8)}` +
      `${pad(Math.max(...list.map((r) => r.rssMb)).toFixed(0), 13)}` +
      `${pad(`${median(list.map((r) => r.cpuMs)).toFixed(2)} (${median(list.map((r) => r.systemMs)).toFixed(2)})`, 23)}${fetch}`,
  );
}
const base = runs.get(BASELINE);
for (const [name, list] of runs) {
  if (!name.startsWith('ctl')) continue;
  const rate = median(list.map((r, i) => base[i].seconds / r.seconds));
  const cpu = median(list.map((r, i) => base[i].cpuMs / r.cpuMs));
  const each = list.map((r, i) => (base[i].seconds / r.seconds).toFixed(2)).join(' ');
  console.log(
    `ratio ${name} / ${BASELINE}: ${rate.toFixed(2)} images/s (rounds: ${each}; process start included), ${cpu.toFixed(2)} by CPU per image`,
  );
}
