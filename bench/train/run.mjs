#!/usr/bin/env node
// Training throughput of the reference's training step, model, loss and optimizer as configs/<arch>.json says:
// v2 (default: hidden 512, out 256, two residual blocks, 64-d category embedding, InfoNCE + 0.5·triplet with one
// explicit same-category negative per pair, AdamW, clip 1.0) or v1 (MLP towers in → 384 → 128, no category,
// InfoNCE only with a raw learnable temperature, Adam 1e-3), at batch 256 on inputs as wide as the config's
// embeddings (v2: 768, v1: 512): `ctl train`'s engine on the wasm backend (data-parallel worker threads,
// src/train/parallel.ts), the whole step as one ONNX graph in onnxruntime-node (src/train/ort, the ort-cpu engine;
// with --webgpu the same graph on onnxruntime's WebGPU provider too, the webgpu engine, where an adapter is found)
// and the same model and step in PyTorch (bench/train/torch_bench.py, flush-to-zero on, built from the same
// config), on the same data, in this script; prints each, the ratios to PyTorch and the GFLOP/s of each (the
// step's matrix-product FLOPs over wall time, and over CPU time) against the ceiling of this machine's cores
// (onnxruntime's sgemm on a 2048³ product, same threads).
//
//   npm run build && node bench/train/run.mjs [--arch v2|v1] [--batch 256] [--dim 768|512] [--steps 40]
//       [--rounds 3] [--warmup 5] [--workers 2] [--threads 2] [--data synth|random] [--python /usr/bin/python3]
//       [--skip-torch] [--skip-ort] [--skip-wasm] [--webgpu] [--torch-device cpu|cuda] [--isa native|avx2]
//
// --data synth (default): `ctl data synth` embeddings (planted structure, L2-normalised, as real ones), where
//   denormal floats showed up in PyTorch before flush-to-zero; random: unit-norm Gaussian rows.
// The engines run in alternating rounds, so a change in the machine's load hits both; the medians are compared.
// Samples per CPU-second (all threads) is printed too: on a shared machine it moves less with others' load.
// The step time of the first and last quarter of each run shows whether it drifts (denormals).
// On a GPU machine: --webgpu --torch-device cuda puts both sides on the GPU (PyTorch in strict fp32, its batches
// gathered from matrices on the GPU as the webgpu engine's are); --skip-wasm and --skip-ort leave out the CPU
// engines, which take minutes a round at large batches.
// --isa avx2 hides AVX-512 from both sides (bench/cpu/hide-avx512.c): the kernels of an AVX2-only machine.
// The webgpu row names its adapter; a software one (lavapipe, SwiftShader) runs on the CPU: no GPU figure.
// No ratio is printed against a PyTorch whose matrix products do not run on OpenBLAS or MKL (torch_bench.py
// finds the library torch binds sgemm_ to, and refuses a reference BLAS): the script then exits with 1.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  benchArgs,
  blasEnv,
  describeCpu,
  median,
  pythonMissing,
  repo,
  runWithIsa,
  say,
  torchBlasName,
  writeRaw,
} from '../common.mjs';

const args = benchArgs(
  {
    arch: { type: 'string', default: 'v2' },
    batch: { type: 'string', default: '256' },
    dim: { type: 'string' },
    steps: { type: 'string', default: '40' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '5' },
    workers: { type: 'string', default: '2' },
    threads: { type: 'string', default: '2' },
    data: { type: 'string', default: 'synth' },
    python: { type: 'string', default: '/usr/bin/python3' },
    'skip-torch': { type: 'boolean', default: false },
    'skip-ort': { type: 'boolean', default: false },
    'skip-wasm': { type: 'boolean', default: false },
    'torch-device': { type: 'string', default: 'cpu' },
    webgpu: { type: 'boolean', default: false },
    isa: { type: 'string', default: 'native' },
  },
  {
    counts: { batch: 2, dim: 1, steps: 1, rounds: 1, warmup: 0, workers: 1, threads: 1 },
    choices: { arch: ['v1', 'v2'], 'torch-device': ['cpu', 'cuda'], data: ['synth', 'random'] },
  },
);
runWithIsa(args.isa);
const missing = args['skip-torch'] ? null : pythonMissing(args.python, ['numpy', 'torch']);
if (missing) {
  say(`PyTorch baseline: ${missing}; or pass --skip-torch`);
  process.exit(1);
}

// The built code, loaded once the arguments are checked (and, with --isa avx2, in the child only).
const { useBackend } = await import(join(repo, 'dist/model/backend.js'));
const { TwoTower } = await import(join(repo, 'dist/model/two-tower.js'));
const { Random } = await import(join(repo, 'dist/util/random.js'));
const { LocalEngine } = await import(join(repo, 'dist/train/local-engine.js'));
const { ParallelEngine } = await import(join(repo, 'dist/train/parallel.js'));
const { OrtEngine } = await import(join(repo, 'dist/train/ort/engine.js'));
const { OrtWorkerEngine } = await import(join(repo, 'dist/train/ort/worker-engine.js'));
const { describeAdapter, probeWebGpuAdapter } = await import(join(repo, 'dist/util/webgpu-adapter.js'));
const { loadTrainConfig } = await import(join(repo, 'dist/train/config.js'));
const { generateWorld } = await import(join(repo, 'dist/data/synth/world.js'));
const { computeEmbeddings } = await import(join(repo, 'dist/data/synth/embeddings.js'));
const { OnnxGraph } = await import(join(repo, 'dist/onnx/graph.js'));

const arch = args.arch;
// The reference model, optimizer and loss, as configs/<arch>.json says; by default its embeddings' input width
// (v1: CLIP ViT-B/32, 512; v2: fashion SigLIP, 768).
const config = await loadTrainConfig(join(repo, `configs/${arch}.json`));
const explicitNegatives = config.negatives.strategy === 'same-category-random';
if (!explicitNegatives && config.negatives.strategy !== 'none') {
  say(`configs/${arch}.json: negatives.strategy ${config.negatives.strategy} is not benchmarked here`);
  process.exit(2);
}
const batch = args.batch;
const dim = args.dim ?? config.embeddings.dim;
const steps = args.steps;
const rounds = args.rounds;
const warmup = args.warmup;
const workers = args.workers;
const threads = args.threads;
const dataKind = args.data;
const python = args.python;
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

// ---- data: training rows (scene vector, positive product) and a catalog with categories.
const rng = new Random('bench');
let data;
if (dataKind === 'synth') {
  const world = generateWorld({ scenes: 3000, products: 4000, seed: 1, domain: 'fashion' });
  const e = computeEmbeddings(world, dim);
  const sceneRow = new Map(e.scenesFull.ids.map((id, i) => [id, i]));
  const productRow = new Map(e.products.ids.map((id, i) => [id, i]));
  const pairs = world.pairOrder.map(([s, k]) => [
    sceneRow.get(world.scenes[s].sig),
    productRow.get(world.products[world.scenes[s].items[k].product].sig),
  ]);
  const trainScenes = new Float32Array(pairs.length * dim);
  pairs.forEach(([s], i) => trainScenes.set(e.scenesFull.data.subarray(s * dim, (s + 1) * dim), i * dim));
  const categories = [...new Set(world.products.map((p) => p.category))];
  const categoryOf = new Map(world.products.map((p) => [p.sig, categories.indexOf(p.category)]));
  const productCategory = Int32Array.from(e.products.ids, (id) => categoryOf.get(id));
  data = {
    trainScenes,
    products: e.products.data,
    productCategory,
    rowProduct: Int32Array.from(pairs, ([, p]) => p),
    categories: categories.length,
  };
} else {
  const rows = 4096;
  const unitRows = (n) => {
    const m = new Float32Array(n * dim);
    for (let r = 0; r < n; r++) {
      let norm = 0;
      for (let d = 0; d < dim; d++) norm += (m[r * dim + d] = rng.normal()) ** 2;
      for (let d = 0; d < dim; d++) m[r * dim + d] /= Math.sqrt(norm);
    }
    return m;
  };
  data = {
    trainScenes: unitRows(rows),
    products: unitRows(rows),
    productCategory: Int32Array.from({ length: rows }, () => rng.int(10)),
    rowProduct: Int32Array.from({ length: rows }, (_, i) => i),
    categories: 10,
  };
}
const numRows = data.rowProduct.length;
const byCategory = Array.from({ length: data.categories }, (_, c) =>
  [...data.productCategory.keys()].filter((j) => data.productCategory[j] === c),
);
// The same batches for all: rows and, when the config trains with them, one same-category negative per row.
const totalSteps = warmup + rounds * steps;
const plans = Array.from({ length: totalSteps }, () => {
  const rows = Int32Array.from({ length: batch }, () => rng.int(numRows));
  const negatives = explicitNegatives
    ? Int32Array.from(rows, (r) => {
        const list = byCategory[data.productCategory[data.rowProduct[r]]];
        return list[rng.int(list.length)];
      })
    : null;
  return { rows, negatives };
});
const dir = mkdtempSync(join(tmpdir(), 'ctl-bench-train-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true })); // a failed round too
const write = (name, a) => writeRaw(dir, name, a);
write('scenes.f32', data.trainScenes);
write('products.f32', data.products);
write('product_category.i32', data.productCategory);
write('row_product.i32', data.rowProduct);
write('rows.i32', Int32Array.from(plans.flatMap((p) => [...p.rows])));
if (explicitNegatives) write('negatives.i32', Int32Array.from(plans.flatMap((p) => [...p.negatives])));
say(
  `data: ${dataKind}, ${numRows} training rows, ${data.productCategory.length} products, ${data.categories} categories, ${dim}-d`,
);

// What torch_bench.py builds its model, loss and optimizer from.
const spec = { ...config.model, inputDim: dim, numCategories: data.categories };
writeFileSync(
  join(dir, 'step.json'),
  JSON.stringify({ spec, loss: config.loss, optimizer: config.optimizer, negatives: explicitNegatives }),
);

// ---- ctl
const backend = await useBackend('wasm');
const options = {
  spec,
  optimizer: config.optimizer,
  loss: config.loss,
  seed: 0,
  params: new TwoTower(spec).layout.initialise(0),
  matrices: {
    // One scene row per training row, as torch_bench.py reads them.
    trainScenes: data.trainScenes,
    trainSceneRow: Int32Array.from({ length: numRows }, (_, i) => i),
    valScenes: data.trainScenes.subarray(0, dim),
    products: data.products,
    productCategory: data.productCategory,
    rowProduct: data.rowProduct,
  },
};
const engine = args['skip-wasm']
  ? null
  : workers > 1
    ? await ParallelEngine.create({ ...options, workers, backend, batchSize: batch })
    : new LocalEngine(options);
// On the CPU, as `ctl train` runs it: an OrtEngine on a worker thread of its own (src/train/ort/worker-engine.ts).
const ort = args['skip-ort'] ? null : await OrtWorkerEngine.create({ ...options, threads });
/** The WebGPU adapter with --webgpu, when Dawn finds one. */
let adapter = null;
if (args.webgpu) {
  const probe = await probeWebGpuAdapter();
  adapter = probe.adapter;
  say(adapter ? `webgpu: ${describeAdapter(adapter)}` : `webgpu: no row (${probe.reason})`);
}
const gpu = adapter ? await OrtEngine.create({ ...options, threads, provider: 'webgpu' }) : null;
const planOf = (s) => ({
  step: s,
  lr: config.optimizer.lr,
  rows: plans[s].rows,
  negatives: plans[s].negatives,
  hardCandidates: null,
  falseNegatives: null,
});
for (const e of [engine, ort, gpu].filter(Boolean)) for (let s = 0; s < warmup; s++) await e.step(planOf(s));

// Matrix-product FLOPs of one step: every linear layer's forward product and its two backward products (the
// first layer's input gradient only for the category columns), the [B, B] similarity matrix and its two gradients,
// the category embedding's lookup as a one-hot product and its gradient. The product tower encodes the positives
// and, with explicit negatives, as many negatives.
const linears = (inDim) => [
  [inDim, spec.hidden],
  ...Array(2 * spec.blocks).fill([spec.hidden, spec.hidden]),
  [spec.hidden, spec.out],
];
const towerFlops = (rows, inDim, dataWidth) =>
  linears(inDim).reduce((sum, [i, o], k) => sum + 2 * rows * o * (2 * i + (k === 0 ? i - dataWidth : i)), 0);
const productRows = explicitNegatives ? 2 * batch : batch;
const stepFlops =
  towerFlops(batch, dim, dim) +
  towerFlops(productRows, dim + spec.categoryDim, dim) +
  2 * batch * batch * spec.out * 3 +
  2 * 2 * productRows * data.categories * spec.categoryDim;

async function engineRound(e, round) {
  const times = [];
  const cpuStart = process.cpuUsage();
  for (let k = 0; k < steps; k++) {
    const start = performance.now();
    await e.step(planOf(warmup + round * steps + k));
    times.push(performance.now() - start);
  }
  const cpu = process.cpuUsage(cpuStart);
  const quarter = Math.max(1, Math.floor(steps / 4));
  return {
    samplesPerSec: (batch * steps * 1000) / times.reduce((a, b) => a + b, 0),
    samplesPerCpuSec: (batch * steps) / ((cpu.user + cpu.system) / 1e6),
    first: mean(times.slice(0, quarter)),
    last: mean(times.slice(-quarter)),
  };
}

// ---- PyTorch: one process per round (import and warm-up on the first batches not counted), same batches.
const env = blasEnv(threads);
/** Why PyTorch was not timed (torch_bench.py refused its BLAS, or failed), or null. */
let torchFailure = null;
function torchRound(round) {
  const p = spawnSync(
    python,
    [
      join(repo, 'bench/train/torch_bench.py'),
      dir,
      '--batch',
      String(batch),
      '--first',
      String(warmup + round * steps),
      '--warmup',
      String(warmup),
      '--steps',
      String(steps),
      '--threads',
      String(threads),
      '--device',
      args['torch-device'],
    ],
    { env, encoding: 'utf8' },
  );
  if (p.status !== 0) {
    const reason = (p.stderr || p.error?.message || '').trim().split('\n').pop();
    torchFailure = p.status === 3 ? `the baseline is not OpenBLAS or MKL: ${reason}` : `PyTorch failed: ${reason}`;
    say(`pytorch: ${torchFailure}`);
    return null;
  }
  const result = JSON.parse(p.stdout.trim().split('\n').pop());
  result.kernel = (p.stdout + p.stderr).match(/Core: (\S+)/)?.[1] ?? 'unknown';
  return result;
}

const ctlRuns = [];
const ortRuns = [];
const gpuRuns = [];
const torchRuns = [];
const report = (round, name, c) =>
  say(
    `round ${round + 1}: ${name} ${c.samplesPerSec.toFixed(0)} samples/s (${c.samplesPerCpuSec.toFixed(0)} per CPU-s), step ${c.first.toFixed(0)} → ${c.last.toFixed(0)} ms`,
  );
for (let round = 0; round < rounds; round++) {
  if (engine) {
    const c = await engineRound(engine, round);
    ctlRuns.push(c);
    report(round, 'ctl wasm', c);
  }
  if (ort) {
    const o = await engineRound(ort, round);
    ortRuns.push(o);
    report(round, 'ctl ort-cpu', o);
  }
  if (gpu) {
    const g = await engineRound(gpu, round);
    gpuRuns.push(g);
    report(round, 'ctl webgpu', g);
  }
  if (args['skip-torch']) continue;
  const t = torchRound(round);
  if (!t) break;
  torchRuns.push(t);
  say(
    `round ${round + 1}: pytorch ${t.samples_per_sec.toFixed(0)} samples/s (${t.samples_per_cpu_sec.toFixed(0)} per CPU-s), step ${t.step_ms_first_quarter.toFixed(0)} → ${t.step_ms_last_quarter.toFixed(0)} ms`,
  );
}
await engine?.dispose();
await ort?.dispose();
await gpu?.dispose();

/**
 * What this machine's cores reach on matrix products: onnxruntime's sgemm (MLAS) on a 2048³ product with the
 * bench's threads, in GFLOP/s: the ceiling the step's rates are read against.
 */
async function gemmCeiling() {
  const n = 2048;
  const ortModule = await import('onnxruntime-node');
  const g = new OnnxGraph('sgemm');
  g.output(g.op('MatMul', [g.input('a', 'float32', [n, n]), g.input('b', 'float32', [n, n])]), 'float32', [n, n]);
  const session = await ortModule.InferenceSession.create(g.encode(), { intraOpNumThreads: threads });
  const matrix = new ortModule.Tensor('float32', new Float32Array(n * n).fill(0.5), [n, n]);
  const seconds = [];
  for (let k = 0; k < 6; k++) {
    const start = performance.now();
    await session.run({ a: matrix, b: matrix });
    seconds.push((performance.now() - start) / 1000);
  }
  await session.release();
  return (2 * n ** 3) / median(seconds.slice(1)) / 1e9;
}
const ceiling = args['skip-ort'] ? null : await gemmCeiling();

const row = (name, perSec, perCpu, gflops = '', gflopsCpu = '') =>
  console.log(
    `  ${name.padEnd(46)} ${perSec.padStart(9)} ${perCpu.padStart(10)} ${gflops.padStart(8)} ${gflopsCpu.padStart(12)}`,
  );
console.log(
  `\n${arch} training step, batch ${batch}, ${dim}-d ${dataKind} inputs, median of ${rounds} rounds of ${steps} steps (after ${warmup} warm-up); ${(stepFlops / 1e9).toFixed(2)} GFLOP of matrix products per step`,
);
console.log(`  on ${describeCpu()}`);
row('', 'samples/s', 'per CPU-s', 'GFLOP/s', 'GFLOP/CPU-s');
const summary = (runs) => ({
  perSec: median(runs.map((r) => r.samplesPerSec ?? r.samples_per_sec)),
  perCpu: median(runs.map((r) => r.samplesPerCpuSec ?? r.samples_per_cpu_sec)),
});
const gflops = (perSec) => ((perSec / batch) * stepFlops * 1e-9).toFixed(1);
const rates = ({ perSec, perCpu }) => [perSec.toFixed(0), perCpu.toFixed(0), gflops(perSec), gflops(perCpu)];
/** The engines that ran: the row's label, the name in the ratios, the medians of the rounds. */
const engines = [
  [`ctl: tfjs ${backend} (SIMD), ${workers} worker thread${workers > 1 ? 's' : ''}`, 'wasm', ctlRuns],
  [`ctl: onnxruntime-node CPU, ${threads} intra-op thread${threads > 1 ? 's' : ''}`, 'ort-cpu', ortRuns],
  [`ctl: onnxruntime-node WebGPU${adapter?.software ? ', SOFTWARE adapter' : ''}`, 'webgpu', gpuRuns],
]
  .filter(([, , runs]) => runs.length > 0)
  .map(([label, name, runs]) => ({ label, name, ...summary(runs) }));
for (const e of engines) row(e.label, ...rates(e));
const torch = torchRuns.length > 0 ? { ...torchRuns[0], ...summary(torchRuns) } : null;
if (torch) {
  const onGpu = torch.blas_kind === 'cuda';
  row(
    onGpu
      ? `PyTorch ${torch.torch}, CUDA, fp32 (TF32 off)`
      : `PyTorch ${torch.torch}, ${torch.threads} threads, ${torchBlasName(torch)}`,
    ...rates(torch),
  );
  for (const e of engines)
    row(`ratio ctl ${e.name} / PyTorch`, (e.perSec / torch.perSec).toFixed(2), (e.perCpu / torch.perCpu).toFixed(2));
  console.log(
    onGpu ? `  PyTorch's GPU: ${torch.device}` : `  PyTorch's BLAS: ${torch.blas ?? 'built in'}; flush-to-zero on`,
  );
} else if (torchFailure) {
  console.log(`\n  NO RATIO: ${torchFailure}`);
  process.exitCode = 1;
}
if (gpuRuns.length > 0) console.log(`  WebGPU adapter: ${describeAdapter(adapter)}`);
if (ceiling) {
  const share = (rate) => `${((100 * (rate.perSec / batch) * stepFlops) / 1e9 / ceiling).toFixed(0)} %`;
  const onCpu = engines.filter((e) => e.name !== 'webgpu');
  if (torch?.device === 'cpu') onCpu.push({ ...torch, name: 'PyTorch' });
  console.log(
    `  ceiling: onnxruntime's sgemm on a 2048³ product, ${threads} thread${threads > 1 ? 's' : ''}: ${ceiling.toFixed(0)} GFLOP/s; the step reaches ${onCpu.map((e) => `${e.name} ${share(e)}`).join(', ')} of it`,
  );
}
