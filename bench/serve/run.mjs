#!/usr/bin/env node
// Load benchmark of `ctl serve`: latency (p50, p99) and throughput of POST /api/recommend by dataset scene and by
// uploaded photo at 1, 8 and 64 concurrent connections (autocannon against the running server), and the server's
// peak RSS. STL-Fashion scale: a synthetic dataset of 38,000 products with 768-d vectors (the fashion SigLIP's
// width), a v2 run (hidden 512, out 256) trained for one epoch on it, and for uploads the generated ViT-B/16-sized
// image model (random weights, the real model's compute): the store's vectors are copied under that model's name so
// the run can embed uploads with it. Prints a JSON summary (with the load average: the machine may be shared).
//
//   npm run build && node bench/serve/run.mjs [--products 38000] [--scenes 20000] [--seconds 10] [--workdir DIR]
import { spawn, spawnSync } from 'node:child_process';
import { cp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { benchArgs, repo, say } from '../common.mjs';

const CLI = join(repo, 'dist/cli.js');
const args = benchArgs(
  {
    products: { type: 'string', default: '38000' },
    scenes: { type: 'string', default: '20000' },
    seconds: { type: 'string', default: '10' },
    workdir: { type: 'string', default: join(repo, 'bench/out/serve-workdir') },
    concurrency: { type: 'string', default: '1,8,64' },
  },
  { counts: { products: 1, scenes: 1, seconds: 1 }, lists: { concurrency: 'count' } },
);
const workdir = resolve(args.workdir);
const seconds = args.seconds;
const levels = args.concurrency.split(',').map(Number);
const IMAGE_MODEL = 'vit-b16';
const RUN = 'bench';

function ctl(argv) {
  say(`$ ctl ${argv.join(' ')}`);
  const r = spawnSync(process.execPath, [CLI, ...argv, '--workdir', workdir], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`ctl ${argv[0]} failed (exit ${r.status})`);
}

const exists = (path) =>
  stat(path).then(
    () => true,
    () => false,
  );

// ---- the workdir: dataset + 768-d synthetic vectors, the same vectors under the image model's name, one epoch.
// Built once; its sizes are recorded, and a workdir built at other sizes is refused rather than timed as these.
const sizesFile = join(workdir, 'bench-sizes.json');
const sizes = { products: args.products, scenes: args.scenes };
if (await exists(join(workdir, 'runs', RUN, 'checkpoints', 'best'))) {
  const built = await readFile(sizesFile, 'utf8').then(JSON.parse, () => null);
  if (built?.products !== sizes.products || built?.scenes !== sizes.scenes) {
    const was = built ? `--products ${built.products} --scenes ${built.scenes}` : 'sizes it did not record';
    say(`run.mjs: ${workdir} was built with ${was}: remove it (or pass another --workdir) to build it at these`);
    process.exit(2);
  }
} else {
  await mkdir(workdir, { recursive: true });
  ctl([
    'data',
    'synth',
    '--scenes',
    String(args.scenes),
    '--products',
    String(args.products),
    '--dim',
    '768',
    '--seed',
    '1',
  ]);
  const from = join(workdir, 'embeddings', 'synthetic');
  const to = join(workdir, 'embeddings', IMAGE_MODEL);
  await rm(to, { recursive: true, force: true });
  await cp(from, to, { recursive: true });
  for (const view of ['products', 'scenes-full', 'scenes-hide-product']) {
    const metaFile = join(to, view, 'meta.json');
    if (!(await exists(metaFile))) continue;
    const meta = JSON.parse(await readFile(metaFile, 'utf8'));
    await writeFile(metaFile, JSON.stringify({ ...meta, model: IMAGE_MODEL, preprocessing: { dtype: 'fp32' } }));
  }
  const v2 = JSON.parse(await readFile(join(repo, 'configs/v2.json'), 'utf8'));
  const config = { ...v2, name: RUN, embeddings: { model: IMAGE_MODEL, dim: 768 }, split: 'scene', epochs: 1 };
  config.selection = { protocol: 'catalog', metric: 'recall@10' };
  const configFile = join(workdir, 'bench-config.json');
  await writeFile(configFile, JSON.stringify(config, null, 2));
  ctl(['train', '--config', configFile, '--run', RUN]);
  await writeFile(sizesFile, JSON.stringify(sizes) + '\n');
}

// ---- the server
const server = spawn(
  process.execPath,
  [CLI, 'serve', '--workdir', workdir, '--run', RUN, '--port', '0', '--queue', '256'],
  {
    stdio: ['ignore', 'ignore', 'pipe'],
  },
);
process.on('exit', () => server.kill('SIGTERM')); // however the bench ends: serve removes its own temp files
let log = '';
const url = await new Promise((done, fail) => {
  server.stderr.on('data', (chunk) => {
    log += chunk;
    process.stderr.write(chunk);
    const m = /open (http:\/\/\S+\/) /.exec(log);
    if (m) done(m[1]);
  });
  server.on('close', (code) => fail(new Error(`ctl serve exited (${code})`)));
});
const peakRssMb = async () => {
  const status = await readFile(`/proc/${server.pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)[1]) / 1024;
};
const rssAfterLoad = await peakRssMb();

const scenes = (await (await fetch(new URL('/api/scenes?limit=100', url))).json()).scenes.map((s) => s.sig);
const photo = await sharp({
  create: { width: 400, height: 600, channels: 3, background: { r: 120, g: 80, b: 60 } },
})
  .jpeg()
  .toBuffer();
const boundary = '----ctlbench';
const multipart = Buffer.concat([
  Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="k"\r\n\r\n12\r\n`),
  Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\n`),
  Buffer.from('Content-Type: image/jpeg\r\n\r\n'),
  photo,
  Buffer.from(`\r\n--${boundary}--\r\n`),
]);

/** Server-side milliseconds of a few sequential requests: total, and the image model's share for uploads. */
async function serverTimes(kind, n) {
  const totals = [];
  const model = [];
  for (let i = 0; i < n; i++) {
    const res =
      kind === 'scene'
        ? await fetch(new URL('/api/recommend', url), {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ scene: scenes[i % scenes.length], k: 12 }),
          })
        : await fetch(new URL('/api/recommend', url), {
            method: 'POST',
            headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
            body: multipart,
          });
    const body = await res.json();
    totals.push(body.ms);
    if (body.imageModelMs !== undefined) model.push(body.imageModelMs);
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  return {
    medianMs: median(totals),
    ...(model.length
      ? { imageModelMedianMs: median(model), restMedianMs: median(totals.map((t, i) => t - model[i])) }
      : {}),
  };
}

async function load(kind, connections) {
  let next = 0;
  const result = await autocannon({
    url: new URL('/api/recommend', url).toString(),
    connections,
    duration: seconds,
    // Queued uploads wait their turn behind up to 63 others (~0.4 s each here): autocannon's 10 s default is short.
    timeout: 60,
    method: 'POST',
    ...(kind === 'scene'
      ? {
          headers: { 'content-type': 'application/json' },
          requests: [
            {
              setupRequest: (req) => ({
                ...req,
                body: JSON.stringify({ scene: scenes[next++ % scenes.length], k: 12 }),
              }),
            },
          ],
        }
      : { headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, body: multipart }),
  });
  const finished = result.requests.total > 0;
  if (!finished) say(`${kind} at ${connections} connections: no request finished in ${seconds} s (raise --seconds)`);
  return {
    kind,
    connections,
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    perSecond: Math.round((result.requests.total / result.duration) * 10) / 10,
    // No latency without a finished request (autocannon then reports 0).
    p50Ms: finished ? result.latency.p50 : null,
    p99Ms: finished ? result.latency.p99 : null,
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

const rows = [];
const sequential = { scene: await serverTimes('scene', 50), upload: await serverTimes('upload', 10) };
for (const kind of ['scene', 'upload'])
  for (const c of levels) {
    const row = await load(kind, c);
    say(JSON.stringify(row));
    rows.push(row);
  }
const health = await (await fetch(new URL('/api/health', url))).json();
const summary = {
  machine: { cpus: availableParallelism(), model: cpus()[0]?.model, node: process.version },
  catalog: health.catalog.products,
  run: { name: RUN, arch: health.model.arch, embeddings: health.model.embeddings, backend: health.device.backend },
  imageModel: `${IMAGE_MODEL} (generated, random weights, ${health.device.imageModel})`,
  rssMb: { afterLoad: Math.round(rssAfterLoad), peak: Math.round(await peakRssMb()) },
  serverSideSequential: sequential,
  load: rows,
};
server.kill('SIGTERM');
await new Promise((done) => server.on('close', done));
process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
