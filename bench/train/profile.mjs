#!/usr/bin/env node
// Where a step of the onnxruntime engine goes: onnxruntime's own profiler over the v2 (or v1) step graph of
// src/train/ort, with the state kept where the engine keeps it (src/train/ort/state.ts: resident on the device
// under WebGPU). Prints the kernels a step runs, by op type, and two times per step: the wall time of
// session.run, and the host time, the sum of the kernels' own times. On a GPU a kernel's time is the host
// recording its commands, not the GPU running them, so the host time is the executor's cost, the part more kernels
// add; where it is near the wall time, the step is host-bound. (On the CPU provider a kernel's time is its work.)
//
//   npm run build && node bench/train/profile.mjs [--provider webgpu|cpu] [--arch v2|v1] [--batch 256]
//       [--steps 10] [--warmup 3] [--threads 2]
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs, median, repo, say } from '../common.mjs';

const args = benchArgs(
  {
    provider: { type: 'string', default: 'webgpu' },
    arch: { type: 'string', default: 'v2' },
    batch: { type: 'string', default: '256' },
    steps: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
  },
  {
    counts: { batch: 2, steps: 1, warmup: 0, threads: 1 },
    choices: { provider: ['webgpu', 'cpu'], arch: ['v2', 'v1'] },
  },
);
const { batch, steps, warmup, threads } = args;

const dist = (path) => import(join(repo, 'dist', path));
const { TwoTower } = await dist('model/two-tower.js');
const { buildStepGraph } = await dist('train/ort/step-graph.js');
const { DeviceState, HostState } = await dist('train/ort/state.js');
const { sessionOptions } = await dist('train/ort/engine.js');
const { loadTrainConfig } = await dist('train/config.js');
const { describeAdapter, probeWebGpuAdapter } = await dist('util/webgpu-adapter.js');
const ort = await import('onnxruntime-node');

// The reference's model, loss and optimizer, and its embeddings' width, as configs/<arch>.json says (as bench/train).
const config = await loadTrainConfig(join(repo, 'configs', `${args.arch}.json`));
const inputDim = config.embeddings.dim;
const model = new TwoTower({ ...config.model, inputDim, numCategories: 10 });
const explicit = config.negatives.strategy === 'same-category-random';
const gpu = args.provider === 'webgpu';
if (gpu) {
  const probe = await probeWebGpuAdapter();
  if (!probe.adapter) {
    say(`no WebGPU adapter: ${probe.reason}`);
    process.exit(1);
  }
  console.log(`adapter: ${describeAdapter(probe.adapter)}`);
}

const [sceneRows, productRows] = [4 * batch, 2 * batch];
const { model: graph, masks } = buildStepGraph(model, {
  batchSize: batch,
  sceneRows,
  productRows,
  explicit,
  inBatchHard: false,
  falseNegatives: false,
  dropout: true,
  maskBytes: gpu,
  loss: config.loss,
  optimizer: config.optimizer,
});
const size = model.layout.size;
const initial = { params: model.layout.initialise(1), m: new Float32Array(size), v: new Float32Array(size) };
const state = gpu ? new DeviceState(ort, initial, 'webgpu') : new HostState(ort, initial);
const profileDir = mkdtempSync(join(tmpdir(), 'ctl-profile-'));
const session = await ort.InferenceSession.create(graph, {
  ...sessionOptions(args.provider, threads),
  enableProfiling: true,
  profileFilePrefix: join(profileDir, 'step'),
  ...state.sessionOptions,
});

// Data as the engine feeds it: resident matrices, row indices, 0/1 masks (bytes on a GPU, as the engine sends).
const gaussian = (n) => Float32Array.from({ length: n }, () => Math.random() - 0.5);
const indices = (n, below) =>
  new ort.Tensor(
    'int32',
    Int32Array.from({ length: n }, (_, i) => i % below),
    [n],
  );
const productCount = explicit ? 2 * batch : batch;
const feeds = () => {
  const f = {
    scene_rows: indices(batch, sceneRows),
    product_rows: indices(productCount, productRows),
    step_size: new ort.Tensor('float32', Float32Array.of(1e-4), []),
    inv_root_bias2: new ort.Tensor('float32', Float32Array.of(1), []),
    decay: new ort.Tensor('float32', Float32Array.of(1), []),
  };
  if (model.categoryEmbedding) f.product_categories = indices(productCount, 10);
  if (session.inputNames.includes('valid')) {
    f.valid = new ort.Tensor('float32', new Float32Array(batch).fill(1), [batch]);
    f.triplet_scale = new ort.Tensor('float32', Float32Array.of(1 / batch), []);
  }
  for (const { input, rows, cols, bytes } of masks)
    f[input] = bytes
      ? new ort.Tensor('uint8', new Uint8Array(rows * cols).fill(1), [rows, cols])
      : new ort.Tensor('float32', new Float32Array(rows * cols).fill(1), [rows, cols]);
  return f;
};
const scenes = await state.resident('scenes', gaussian(sceneRows * inputDim), [sceneRows, inputDim]);
const products = await state.resident('products', gaussian(productRows * inputDim), [productRows, inputDim]);
const outputs = ['loss'];
const runStep = async () => {
  const results = await state.run(session, { ...feeds(), scene_matrix: scenes, product_matrix: products }, outputs);
  // Reading the loss waits for the step, as the engine's step does.
  return results.loss.data[0];
};

say(`${args.arch} step on ${args.provider}, batch ${batch}: ${warmup} warm-up steps, ${steps} profiled`);
for (let i = 0; i < warmup; i++) await runStep();
const walls = [];
for (let i = 0; i < steps; i++) {
  const started = performance.now();
  await runStep();
  walls.push(performance.now() - started);
}
await session.endProfiling();
const file = readdirSync(profileDir).find((name) => name.endsWith('.json'));
const events = JSON.parse(readFileSync(join(profileDir, file), 'utf8'));
rmSync(profileDir, { recursive: true, force: true });
await session.release();
await state.dispose();

// The profile holds every run; keep the last `steps` of them.
const runs = events.filter((e) => e.name === 'model_run');
const kept = runs.slice(-steps);
const from = kept[0].ts;
const kernels = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.ts >= from);
const perStep = kernels.length / steps;
const hostMs = kernels.reduce((sum, e) => sum + e.dur, 0) / steps / 1000;
const wallMs = median(walls);
const byOp = new Map();
for (const e of kernels) {
  const op = byOp.get(e.args.op_name) ?? { count: 0, us: 0 };
  op.count += 1;
  op.us += e.dur;
  byOp.set(e.args.op_name, op);
}
console.log(`${args.arch}, batch ${batch}, ${args.provider}: ${perStep} kernels a step`);
console.log(
  `wall ${wallMs.toFixed(1)} ms a step (median of ${steps}; ${Math.round((batch * 1000) / wallMs)} samples/s); ` +
    `kernels' own time ${hostMs.toFixed(1)} ms (${Math.round((100 * hostMs) / wallMs)} % of the wall time)`,
);
const top = [...byOp].sort((a, b) => b[1].us - a[1].us).slice(0, 10);
console.log(
  `by op (kernels, ms a step): ${top.map(([op, v]) => `${op} ${v.count / steps} ${(v.us / steps / 1000).toFixed(2)}`).join(', ')}`,
);
