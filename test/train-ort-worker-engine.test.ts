// The engine `ctl train` runs on ort-cpu, built (run `npm run build` first): an OrtEngine on a worker thread of its
// own (src/train/ort/worker-engine.ts). It takes exactly the steps OrtEngine takes on this thread, keeps
// onnxruntime's per-step output copies off this thread's heap (the reason it exists), and a failure inside it
// surfaces as an error of the call, after which dispose still ends the worker; a process that exits mid-step (ctl
// train on SIGINT or SIGTERM) exits with its own code. It takes the embedding matrices to its thread: each engine
// here gets its own copies.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../src/model/config.js';
import { TwoTower, type ModelSpec } from '../src/model/two-tower.js';
import type { EngineOptions, StepPlan, TrainEngine } from '../src/train/engine.js';
import type { LossWeights } from '../src/train/losses.js';
import type { OptimizerConfig } from '../src/train/optimizer.js';
import { keyedRandom } from '../src/util/random.js';
import { randomMatrices, smallConfig } from './train-fixtures.js';

// The built modules (the worker loads dist/), typed by their sources; a path in a variable keeps tsc out of dist/.
const built = { backend: '../dist/train/backend.js', engine: '../dist/train/ort/engine.js' };
const { createEngine }: typeof import('../src/train/backend.js') = await import(built.backend);
const { OrtEngine }: typeof import('../src/train/ort/engine.js') = await import(built.engine);

const rng = keyedRandom(3, 'ort-worker-engine-test');
const [inputDim, numCategories, trainRows, scenes, products, batch] = [24, 3, 60, 20, 30, 16];
const matrices = randomMatrices(rng, { inputDim, numCategories, trainRows, scenes, valRows: 7, products });
const plan = (step: number): StepPlan => ({
  step,
  lr: 0.01,
  rows: Int32Array.from({ length: batch }, () => rng.int(trainRows)),
  negatives: Int32Array.from({ length: batch }, () => rng.int(products)),
  hardCandidates: null,
  falseNegatives: null,
});

const adamw: OptimizerConfig = {
  kind: 'adamw',
  lr: 0.01,
  weightDecay: 0.1,
  betas: [0.9, 0.999],
  eps: 1e-8,
  gradClip: 1,
};

function options(
  model: Partial<ModelConfig> = {},
  loss: LossWeights = { infonce: 1, triplet: 0.5, margin: 0.2 },
): EngineOptions {
  const spec: ModelSpec = { ...(smallConfig().model as ModelConfig), ...model, inputDim, numCategories };
  return {
    spec,
    optimizer: adamw,
    loss,
    seed: 5,
    params: new TwoTower(spec).layout.initialise(5),
    matrices: {
      ...matrices,
      trainScenes: matrices.trainScenes.slice(),
      valScenes: matrices.valScenes.slice(),
      products: matrices.products.slice(),
    },
  };
}

/** The engine `ctl train --backend ort-cpu` trains with. */
const ortCpu = (start: EngineOptions) => createEngine({ name: 'ort-cpu', ortThreads: 1 }, 1, start, batch);

describe('the ort-cpu engine of ctl train', () => {
  it('takes the steps OrtEngine takes on this thread, bit for bit, and encodes and reads its state the same', async () => {
    const [here, worker] = [await OrtEngine.create({ ...options(), threads: 1 }), await ortCpu(options())];
    try {
      const plans = [0, 1, 2].map(plan);
      for (const p of plans) expect(await worker.step(p)).toEqual(await here.step(p));
      for (const engine of [here, worker]) expect(engine.workers).toBe(1);
      expect(await worker.params()).toEqual(await here.params());
      expect(await worker.optimizerState()).toEqual(await here.optimizerState());
      for (const matrix of ['trainScenes', 'valScenes', 'products'] as const)
        expect(await worker.encode(matrix)).toEqual(await here.encode(matrix));
    } finally {
      await Promise.all([here.dispose(), worker.dispose()]);
    }
  });

  it("keeps onnxruntime's copies of the state it fetches off this thread", async () => {
    // ~1.2 M parameters: each step fetches 3 × 4.8 MB of state, a new ArrayBuffer each on the thread that runs it.
    const start = options({ hidden: 512, blocks: 2 });
    const engine = await ortCpu(start);
    try {
      await engine.step(plan(0));
      const before = process.memoryUsage().arrayBuffers;
      await engine.step(plan(1));
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(start.params.byteLength);
    } finally {
      await engine.dispose();
    }
  });

  it('takes the embedding matrices to its thread instead of copying them', async () => {
    const start = options();
    const given = start.matrices;
    const engine = await ortCpu(start);
    try {
      for (const matrix of [given.trainScenes, given.valScenes, given.products]) expect(matrix.length).toBe(0);
      expect((await engine.encode('products')).length).toBe(products * start.spec.out);
    } finally {
      await engine.dispose();
    }
  });

  it("surfaces a failure inside the worker as the call's error, and disposing still ends the worker", async () => {
    const engine: TrainEngine = await ortCpu(options({}, { infonce: 0, triplet: 0, margin: 0.2 }));
    await expect(engine.step(plan(0))).rejects.toThrow(/the ort engine needs a loss: both loss weights are 0/);
    await engine.dispose();
    await expect(engine.step(plan(1))).rejects.toThrow(/pool closed/);
  });

  it('lets a process exit with its own code in the middle of a step', () => {
    // Ended inside an onnxruntime run, a worker aborts the process ("terminate called after throwing an instance of
    // 'Napi::Error'", exit 134): the exit waits for the step. The exit comes halfway through a step as long as the
    // last one.
    const script = `
      import { createEngine } from '${new URL(built.backend, import.meta.url).href}';
      import { TwoTower } from '${new URL('../dist/model/two-tower.js', import.meta.url).href}';
      const [dim, rows, batch] = [64, 512, 256];
      const spec = { ...${JSON.stringify(smallConfig().model)}, hidden: 512, blocks: 2, inputDim: dim, numCategories: 3 };
      const floats = (n) => Float32Array.from({ length: n }, (_, i) => Math.sin(i));
      const indices = (n, of) => Int32Array.from({ length: n }, (_, i) => (i * 7) % of);
      const engine = await createEngine({ name: 'ort-cpu', ortThreads: 1 }, 1, {
        spec, optimizer: ${JSON.stringify(adamw)}, loss: { infonce: 1, triplet: 0.5, margin: 0.2 }, seed: 1,
        params: new TwoTower(spec).layout.initialise(1),
        matrices: { trainScenes: floats(rows * dim), trainSceneRow: indices(rows, rows), valScenes: floats(dim),
          products: floats(rows * dim), productCategory: indices(rows, 3), rowProduct: indices(rows, rows) },
      }, batch);
      const plan = (step) => ({ step, lr: 0.01, rows: indices(batch, rows), negatives: indices(batch, rows),
        hardCandidates: null, falseNegatives: null });
      await engine.step(plan(0)); // compiles the step
      const start = performance.now();
      await engine.step(plan(1));
      const took = performance.now() - start;
      void engine.step(plan(2));
      setTimeout(() => process.exit(143), took / 2);`;
    // A file, not --input-type=module -e: the engine's workers would inherit that flag and refuse to start.
    const dir = mkdtempSync(join(tmpdir(), 'ctl-ort-exit-'));
    try {
      writeFileSync(join(dir, 'exit.mjs'), script);
      const child = spawnSync(process.execPath, [join(dir, 'exit.mjs')], { encoding: 'utf8' });
      expect([child.status, child.stderr]).toEqual([143, '']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
