// One batch's loss and gradients do not depend on where the step runs: on this thread (LocalEngine), on one
// worker thread, or on two worker threads that each differentiate their shard of the batch and sum
// (ParallelEngine), they agree within 1e-5. The gradient is read from the optimizer: with beta1 = 0, Adam's
// first moment after a step is that step's gradient, and with lr = 0 the parameters stay where they are.
// The worker threads run the build (dist/train/worker.js): `npm run build` first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/model/backend.js';
import { keyedRandom } from '../src/util/random.js';
import type { ModelConfig } from '../src/model/config.js';
import { TwoTower, type ModelSpec } from '../src/model/two-tower.js';
import type { EngineOptions, StepPlan, TrainEngine } from '../src/train/engine.js';
import { LocalEngine } from '../src/train/local-engine.js';
import { gatherRows } from '../src/util/matrix.js';
import { ParallelEngine } from '../src/train/parallel.js';
import { randomMatrices, smallConfig } from './train-fixtures.js';

// The small v2 model of the training tests (dropout on, learnable temperature).
const spec: ModelSpec = { ...(smallConfig().model as ModelConfig), inputDim: 24, numCategories: 3 };
const model = new TwoTower(spec);
const rng = keyedRandom(7, 'engines-test');
// Training rows share scenes, as a scene's pairs do: each row's scene is gathered through trainSceneRow.
const [trainRows, trainScenes, products] = [40, 16, 30];
const options: EngineOptions = {
  spec,
  optimizer: { kind: 'adamw', lr: 0, weightDecay: 0, betas: [0, 0.999], eps: 1e-8, gradClip: 0 },
  loss: { infonce: 1, triplet: 0.5, margin: 0.2 },
  seed: 3,
  params: model.layout.initialise(3),
  matrices: randomMatrices(rng, { ...spec, trainRows, scenes: trainScenes, valRows: 5, products }),
};

// An odd batch, so the two shards differ in size.
const batch = 11;
const rows = () => Int32Array.from({ length: batch }, () => rng.int(trainRows));
const mask = (density: number) => Uint8Array.from({ length: batch * batch }, () => (rng.uniform() < density ? 1 : 0));
const plans: Record<string, StepPlan> = {
  'explicit negatives (one row without), false negatives masked': {
    step: 4,
    lr: 0,
    rows: rows(),
    negatives: Int32Array.from({ length: batch }, (_, i) => (i === 2 ? -1 : rng.int(products))),
    hardCandidates: null,
    falseNegatives: mask(0.1),
  },
  'in-batch-hard negatives': {
    step: 5,
    lr: 0,
    rows: rows(),
    negatives: null,
    hardCandidates: mask(0.4),
    falseNegatives: null,
  },
};

const engines: Record<string, TrainEngine> = {};

beforeAll(async () => {
  await useBackend('wasm', { quiet: true });
  engines['this thread'] = new LocalEngine(options);
  for (const workers of [1, 2])
    engines[`${workers} worker thread${workers > 1 ? 's' : ''}`] = await ParallelEngine.create({
      ...options,
      workers,
      backend: 'wasm',
      batchSize: batch,
    });
}, 120_000);

afterAll(async () => {
  await Promise.all(Object.values(engines).map((e) => e.dispose()));
});

function maxDifference(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

describe('the training step on every engine', () => {
  for (const [name, plan] of Object.entries(plans)) {
    it(`gives the same loss and gradients on the same batch: ${name}`, async () => {
      const results = [];
      for (const [engine, e] of Object.entries(engines)) {
        const result = await e.step(plan);
        results.push({ engine, result, grad: (await e.optimizerState()).m, params: await e.params() });
      }
      const [reference, ...others] = results;
      // Not a vacuous comparison: both loss terms and the temperature's gradient are in play.
      expect(reference.result.infonce).toBeGreaterThan(0);
      expect(reference.result.triplet).toBeGreaterThan(0);
      const temperature = model.layout.get('log_temperature').offset;
      expect(Math.abs(reference.grad[temperature])).toBeGreaterThan(1e-3);
      expect(maxDifference(reference.params, options.params)).toBe(0);

      for (const { engine, result, grad, params } of others) {
        for (const key of ['loss', 'infonce', 'triplet', 'temperature', 'gradNorm'] as const)
          expect(Math.abs(result[key] - reference.result[key]), `${engine}: ${key}`).toBeLessThan(1e-5);
        expect(maxDifference(grad, reference.grad), `${engine}: gradient`).toBeLessThan(1e-5);
        expect(maxDifference(params, options.params)).toBe(0);
      }
    });
  }
});

describe("the training rows' scenes", () => {
  it('are gathered through trainSceneRow: the same step as with one scene row per training row', async () => {
    const { trainScenes, trainSceneRow } = options.matrices;
    const perRow = new LocalEngine({
      ...options,
      matrices: {
        ...options.matrices,
        trainScenes: gatherRows(trainScenes, trainSceneRow, spec.inputDim),
        trainSceneRow: Int32Array.from(trainSceneRow.keys()),
      },
    });
    const shared = new LocalEngine(options);
    for (const plan of Object.values(plans)) {
      const [want, got] = [await perRow.step(plan), await shared.step(plan)];
      for (const key of ['loss', 'infonce', 'triplet', 'temperature', 'gradNorm'] as const)
        expect(got[key], key).toBe(want[key]);
      expect(await shared.optimizerState()).toEqual(await perRow.optimizerState());
    }
  });
});
