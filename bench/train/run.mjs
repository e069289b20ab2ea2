#!/usr/bin/env node
// Training throughput of the v2 model (hidden 512, out 256, two residual blocks, 64-d category embedding,
// InfoNCE + 0.5·triplet with one explicit negative per pair, AdamW, clip 1.0) at batch 256 on 768-d inputs:
// `ctl train`'s engine on the wasm backend (data-parallel worker threads, src/train/parallel.ts), then the same
// model and step in PyTorch (bench/train/torch_bench.py, flush-to-zero on), in this script; prints both and the
// ratio. Long runs also show whether the step time drifts (denormals).
//
//   npm run build && node bench/train/run.mjs [--batch 256] [--dim 768] [--steps 60] [--warmup 5]
//       [--workers 2] [--threads 2] [--python /usr/bin/python3] [--skip-torch]
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const { useBackend } = await import(join(repo, 'dist/model/backend.js'));
const { TwoTower } = await import(join(repo, 'dist/model/two-tower.js'));
const { Rng } = await import(join(repo, 'dist/model/random.js'));
const { LocalEngine } = await import(join(repo, 'dist/train/engine.js'));
const { ParallelEngine } = await import(join(repo, 'dist/train/parallel.js'));

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const batch = Number(opt('--batch', 256));
const dim = Number(opt('--dim', 768));
const steps = Number(opt('--steps', 60));
const warmup = Number(opt('--warmup', 5));
const workers = Number(opt('--workers', 2));
const threads = Number(opt('--threads', 2));
const python = opt('--python', '/usr/bin/python3');
const categories = 10;
const say = (text) => process.stderr.write(text + '\n');

// ---- ctl: random unit-norm inputs (like L2-normalised image embeddings), one random negative per pair.
const backend = await useBackend('wasm');
const spec = { arch: 'v2', hidden: 512, out: 256, blocks: 2, dropout: 0.1, categoryDim: 64, normalize: true,
  temperature: { init: 0.07, learnable: true, min: 0.01, max: 1 }, inputDim: dim, numCategories: categories };
const rng = new Rng(0, 'bench');
const pool = 4096;
const unitRows = (n) => {
  const m = new Float32Array(n * dim);
  for (let r = 0; r < n; r++) {
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += (m[r * dim + d] = rng.normal()) ** 2;
    for (let d = 0; d < dim; d++) m[r * dim + d] /= Math.sqrt(norm);
  }
  return m;
};
const matrices = {
  trainScenes: unitRows(pool),
  valScenes: unitRows(1),
  products: unitRows(pool),
  productCategory: Int32Array.from({ length: pool }, () => rng.int(categories)),
  rowProduct: Int32Array.from({ length: pool }, (_, i) => i),
};
const options = {
  spec,
  optimizer: { kind: 'adamw', lr: 3e-4, weightDecay: 0.01, betas: [0.9, 0.999], eps: 1e-8, gradClip: 1 },
  loss: { infonce: 1, triplet: 0.5, margin: 0.2 },
  seed: 0,
  params: new TwoTower(spec).layout.initialise(0),
  matrices,
};
const engine = workers > 1 ? await ParallelEngine.create({ ...options, workers, backend, batchSize: batch }) : new LocalEngine(options);
const plan = (step) => ({
  step,
  lr: 3e-4,
  rows: Int32Array.from({ length: batch }, () => rng.int(pool)),
  negatives: Int32Array.from({ length: batch }, () => rng.int(pool)),
  hardCandidates: null,
  falseNegatives: null,
});
for (let s = 0; s < warmup; s++) await engine.step(plan(s));
const times = [];
const cpuStart = process.cpuUsage();
for (let s = 0; s < steps; s++) {
  const p = plan(warmup + s);
  const start = performance.now();
  await engine.step(p);
  times.push(performance.now() - start);
}
const cpu = process.cpuUsage(cpuStart);
await engine.dispose();
const total = times.reduce((a, b) => a + b, 0) / 1000;
const quarter = Math.max(1, Math.floor(times.length / 4));
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const ctl = {
  samplesPerSec: (batch * steps) / total,
  samplesPerCpuSec: (batch * steps) / ((cpu.user + cpu.system) / 1e6),
  first: mean(times.slice(0, quarter)),
  last: mean(times.slice(-quarter)),
};
say(`ctl (tfjs ${backend}, ${workers} worker thread${workers > 1 ? 's' : ''}): ${ctl.samplesPerSec.toFixed(0)} samples/s, ` +
  `${ctl.samplesPerCpuSec.toFixed(0)} samples per CPU-second, step ${ctl.first.toFixed(0)} ms (first quarter) → ${ctl.last.toFixed(0)} ms (last quarter)`);

// ---- PyTorch, same model and step.
let torch = null;
if (!args.includes('--skip-torch')) {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), OPENBLAS_VERBOSE: '2' };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const p = spawnSync(python, [join(here, 'torch_bench.py'), '--batch', String(batch), '--dim', String(dim), '--steps', String(steps),
    '--warmup', String(warmup), '--threads', String(threads), '--categories', String(categories)], { env, encoding: 'utf8' });
  if (p.status !== 0) say(`pytorch: failed (${(p.stderr || p.error?.message || '').trim().split('\n').pop()})`);
  else {
    torch = JSON.parse(p.stdout.trim().split('\n').pop());
    torch.kernel = (p.stdout + p.stderr).match(/Core: (\S+)/)?.[1] ?? 'unknown';
    say(`pytorch ${torch.torch} (${torch.threads} threads, flush-denormal, BLAS ${torch.blas.join(', ') || 'built-in'}, OpenBLAS kernel ${torch.kernel}): ` +
      `${torch.samples_per_sec.toFixed(0)} samples/s, ${torch.samples_per_cpu_sec.toFixed(0)} samples per CPU-second, step ${torch.step_ms_first_quarter.toFixed(0)} → ${torch.step_ms_last_quarter.toFixed(0)} ms`);
  }
}

// Samples per CPU-second (all threads) is shown beside wall-clock samples/s: on a shared machine it moves less
// with other processes' load.
const row = (name, perSec, perCpu) => console.log(`  ${name.padEnd(36)} ${perSec.padStart(8)} ${perCpu.padStart(10)}`);
console.log(`\nv2 training step, batch ${batch}, ${dim}-d inputs, ${steps} steps after ${warmup} warm-up`);
row('', 'samples/s', 'per CPU-s');
row(`ctl, tfjs wasm × ${workers} worker threads`, ctl.samplesPerSec.toFixed(0), ctl.samplesPerCpuSec.toFixed(0));
if (torch) {
  row(`PyTorch ${torch.torch}, ${torch.threads} threads`, torch.samples_per_sec.toFixed(0), torch.samples_per_cpu_sec.toFixed(0));
  row('ratio ctl / PyTorch', (ctl.samplesPerSec / torch.samples_per_sec).toFixed(2), (ctl.samplesPerCpuSec / torch.samples_per_cpu_sec).toFixed(2));
}
