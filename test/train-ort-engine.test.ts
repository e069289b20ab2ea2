// The ONNX training step (src/train/ort) computes what the wasm engine computes: on the same batch, one step's
// loss parts and gradients agree per parameter tensor within 1e-4 relative to the tensor's largest gradient, and
// after a real AdamW step (weight decay, clipping on) the parameters and moments agree too. The gradient is read
// from the optimizer: with beta1 = 0 and no clipping, Adam's first moment after one step is that step's gradient.
// Where onnxruntime's WebGPU execution provider finds an adapter (a GPU, or the software Vulkan driver lavapipe
// from Mesa >= 25), the same graph runs there and takes the same steps as on the CPU.
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/model/backend.js';
import { keyedRandom } from '../src/util/random.js';
import type { ModelConfig } from '../src/model/config.js';
import { TwoTower, type ModelSpec } from '../src/model/two-tower.js';
import type { EngineOptions, StepPlan, TrainEngine } from '../src/train/engine.js';
import { LocalEngine } from '../src/train/local-engine.js';
import { OrtEngine } from '../src/train/ort/engine.js';
import type { OptimizerConfig } from '../src/train/optimizer.js';
import { randomMatrices, smallConfig } from './train-fixtures.js';
import { webgpuRuns } from './ort-webgpu.js';

const v2 = smallConfig().model as ModelConfig;
const v1: ModelConfig = {
  ...v2,
  arch: 'v1',
  categoryDim: 0,
  temperature: { ...v2.temperature, parametrisation: 'raw' },
};
const rng = keyedRandom(11, 'ort-engine-test');
const gaussian = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
const [inputDim, numCategories, trainRows, trainScenes, products, batch] = [24, 3, 40, 16, 30, 12];
// Training rows share scenes, as a scene's pairs do: the step gathers each row's scene through trainSceneRow.
const matrices = randomMatrices(rng, { inputDim, numCategories, trainRows, scenes: trainScenes, valRows: 5, products });
/** A [batch, batch] 0/1 matrix with ones at `density` off the diagonal (row 1 all zeros: a row without any). */
const byteMask = (density: number) =>
  Uint8Array.from({ length: batch * batch }, (_, k) => {
    const [i, j] = [Math.floor(k / batch), k % batch];
    return i !== j && i !== 1 && rng.uniform() < density ? 1 : 0;
  });
type Negatives = 'explicit' | 'none' | 'in-batch-hard';
const plan = (negatives: Negatives, falseNegatives = false): StepPlan => ({
  step: 3,
  lr: 0.01,
  rows: Int32Array.from({ length: batch }, () => rng.int(trainRows)),
  negatives:
    negatives === 'explicit' ? Int32Array.from({ length: batch }, (_, i) => (i === 2 ? -1 : rng.int(products))) : null,
  hardCandidates: negatives === 'in-batch-hard' ? byteMask(0.4) : null,
  falseNegatives: falseNegatives ? byteMask(0.2) : null,
});
const gradientOnly: OptimizerConfig = {
  kind: 'adamw',
  lr: 0,
  weightDecay: 0,
  betas: [0, 0.999],
  eps: 1e-8,
  gradClip: 0,
};
const adamw: OptimizerConfig = { ...gradientOnly, lr: 0.01, weightDecay: 0.1, betas: [0.9, 0.999], gradClip: 1 };

const webgpu = await webgpuRuns();

function engines(config: ModelConfig, optimizer: OptimizerConfig): Promise<[TrainEngine, TrainEngine, TwoTower]> {
  const spec: ModelSpec = { ...config, inputDim, numCategories };
  const model = new TwoTower(spec);
  const options: EngineOptions = {
    spec,
    optimizer,
    loss: { infonce: 1, triplet: 0.5, margin: 0.2 },
    seed: 5,
    params: model.layout.initialise(5),
    matrices,
  };
  return OrtEngine.create({ ...options, threads: 1 }).then((ort) => [new LocalEngine(options), ort, model]);
}

/** The largest difference within each parameter tensor, relative to that tensor's largest reference value. */
function worstRelative(model: TwoTower, got: Float32Array, want: Float32Array): { name: string; error: number } {
  let worst = { name: '', error: 0 };
  for (const e of model.layout.entries) {
    let [diff, scale] = [0, 0];
    for (let i = e.offset; i < e.offset + e.size; i++) {
      diff = Math.max(diff, Math.abs(got[i] - want[i]));
      scale = Math.max(scale, Math.abs(want[i]));
    }
    const error = scale > 0 ? diff / scale : diff;
    if (error > worst.error) worst = { name: e.name, error };
  }
  return worst;
}

beforeAll(async () => {
  await useBackend('wasm', { quiet: true });
});

describe('the ort-cpu training step', () => {
  const cases: [string, ModelConfig, Negatives, boolean][] = [
    ['v2', v2, 'explicit', false],
    ['v2', v2, 'none', false],
    ['v1', v1, 'explicit', false],
    ['v1', v1, 'none', false],
    ['v2', v2, 'explicit', true],
    ['v2', v2, 'in-batch-hard', true],
  ];
  for (const [arch, config, negatives, falseNegatives] of cases)
    it(`gives the wasm engine's loss and gradients: ${arch}, ${negatives} negatives${falseNegatives ? ', false negatives masked' : ''}`, async () => {
      const [wasm, ort, model] = await engines(config, gradientOnly);
      const step = plan(negatives, falseNegatives);
      const want = await wasm.step(step);
      const got = await ort.step(step);
      expect(want.infonce).toBeGreaterThan(0);
      if (negatives !== 'none') expect(want.triplet).toBeGreaterThan(0);
      if (falseNegatives) {
        // The mask changes the loss: a step that ignored it would not match.
        const unmasked = await (await engines(config, gradientOnly))[0].step({ ...step, falseNegatives: null });
        expect(Math.abs(unmasked.infonce - want.infonce)).toBeGreaterThan(1e-3);
      }
      for (const key of ['loss', 'infonce', 'triplet', 'temperature', 'gradNorm'] as const)
        expect(Math.abs(got[key] - want[key]), key).toBeLessThan(1e-5 * Math.max(1, Math.abs(want[key])));
      const [wantGrad, gotGrad] = [(await wasm.optimizerState()).m, (await ort.optimizerState()).m];
      const temperature = model.layout.entries[0];
      expect(Math.abs(wantGrad[temperature.offset]), 'temperature gradient').toBeGreaterThan(1e-3);
      const worst = worstRelative(model, gotGrad, wantGrad);
      expect(worst.error, worst.name).toBeLessThan(1e-4);
      await ort.dispose();
    });

  it('clamps the temperature as the wasm engine does: one below its min is the min', async () => {
    const below = { ...v2, temperature: { ...v2.temperature, init: v2.temperature.min / 2 } };
    const [wasm, ort] = await engines(below, gradientOnly);
    const step = plan('explicit', false);
    const [want, got] = [await wasm.step(step), await ort.step(step)];
    expect(want.temperature).toBeCloseTo(v2.temperature.min, 6);
    expect(got.temperature).toBeCloseTo(want.temperature, 6);
    expect(Math.abs(got.loss - want.loss)).toBeLessThan(1e-5 * want.loss);
    await ort.dispose();
  });

  // Adam's weight decay is an L2 term added to the clipped gradient, AdamW's decays the weights: two graphs.
  it.each([adamw, { ...adamw, kind: 'adam' as const }])(
    'takes the same $kind steps (weight decay, clipping) as the wasm engine',
    async (optimizer) => {
      const [wasm, ort, model] = await engines(v2, optimizer);
      for (let s = 0; s < 3; s++) {
        const step = { ...plan('explicit'), step: s };
        const [want, got] = [await wasm.step(step), await ort.step(step)];
        expect(want.gradNorm).toBeGreaterThan(optimizer.gradClip); // clipping is in play
        expect(Math.abs(got.gradNorm - want.gradNorm)).toBeLessThan(1e-5 * want.gradNorm);
      }
      const start = model.layout.initialise(5);
      expect(worstRelative(model, await wasm.params(), start).error).toBeGreaterThan(1e-3); // the steps moved them
      const worst = worstRelative(model, await ort.params(), await wasm.params());
      expect(worst.error, worst.name).toBeLessThan(1e-4);
      const [a, b] = [await ort.optimizerState(), await wasm.optimizerState()];
      expect(a.t).toBe(b.t);
      expect(worstRelative(model, a.m, b.m).error).toBeLessThan(1e-4);
      expect(worstRelative(model, a.v, b.v).error).toBeLessThan(1e-4);
      await ort.dispose();
    },
  );

  // Dawn compiles a shader per kernel on the first step: tens of seconds on a software adapter.
  it.skipIf(!webgpu)(
    'runs on the WebGPU execution provider and takes the same steps there',
    async () => {
      const spec: ModelSpec = { ...v2, inputDim, numCategories };
      const model = new TwoTower(spec);
      const options = {
        spec,
        optimizer: adamw,
        loss: { infonce: 1, triplet: 0.5, margin: 0.2 },
        seed: 5,
        params: model.layout.initialise(5),
        matrices,
        threads: 1,
      };
      const [cpu, gpu] = [await OrtEngine.create(options), await OrtEngine.create({ ...options, provider: 'webgpu' })];
      // Explicit negatives, then in-batch-hard ones with false negatives masked (ArgMax, Equal, the byte inputs).
      for (let s = 0; s < 2; s++) {
        const step = { ...(s === 0 ? plan('explicit') : plan('in-batch-hard', true)), step: s };
        const [want, got] = [await cpu.step(step), await gpu.step(step)];
        expect(Math.abs(got.loss - want.loss)).toBeLessThan(1e-5 * want.loss);
      }
      const worst = worstRelative(model, await gpu.params(), await cpu.params());
      expect(worst.error, worst.name).toBeLessThan(1e-4);
      // The encoder reads the parameters on the device, where the steps left them.
      const [want, got] = [await cpu.encode('products'), await gpu.encode('products')];
      expect(Math.max(...got.map((x, i) => Math.abs(x - want[i])))).toBeLessThan(1e-4);
      await Promise.all([cpu.dispose(), gpu.dispose()]);
    },
    180_000,
  );

  // A node the provider lacks runs on the CPU, and the step then stops twice on the bus (a many-input Sum did).
  // onnxruntime prints the placement only at verbose level, to the process's stderr: so a child process.
  it.skipIf(!webgpu)(
    'places every node of the step (v1 and v2, every kind of negatives, false negatives masked) and of the encoder on the WebGPU provider',
    () => {
      const script = `
        import { TwoTower } from './dist/model/two-tower.js';
        import { buildStepGraph } from './dist/train/ort/step-graph.js';
        import { buildEncodeGraph } from './dist/train/ort/encode-graph.js';
        const ort = await import('onnxruntime-node');
        for (const [config, explicit, inBatchHard, falseNegatives] of ${JSON.stringify([
          [v2, true, false, false],
          [v2, false, false, false],
          [v1, false, false, false],
          [v2, false, true, true],
        ])}) {
          const model = new TwoTower({ ...config, inputDim: 24, numCategories: 3 });
          const { model: graph } = buildStepGraph(model, { batchSize: 12, sceneRows: 40, productRows: 30,
            explicit, inBatchHard, falseNegatives, dropout: true, maskBytes: true, loss: { infonce: 1, triplet: 0.5, margin: 0.2 }, optimizer: ${JSON.stringify(adamw)} });
          const encoders = explicit ? ['scene', 'product'].map((tower) => buildEncodeGraph(model, tower, 40, 16)) : [];
          for (const bytes of [graph, ...encoders]) {
            const session = await ort.InferenceSession.create(bytes, { executionProviders: ['webgpu'], logSeverityLevel: 0 });
            await session.release();
          }
        }`;
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
      expect(child.status, child.stderr.slice(-2000)).toBe(0);
      const placements = child.stderr.split('\n').filter((line) => /placed on \[/.test(line));
      expect(placements).toHaveLength(6);
      for (const line of placements) expect(line).toMatch(/All nodes placed on \[WebGpuExecutionProvider\]/);
    },
    120_000,
  );
});

describe("the onnxruntime engine's encoder", () => {
  // 9,000 products: several runs of the encoder, the last filled up past the matrix's end.
  const wide = {
    ...matrices,
    products: gaussian(9000 * inputDim),
    productCategory: Int32Array.from({ length: 9000 }, () => rng.int(numCategories)),
  };
  for (const [arch, config] of Object.entries({ v2, v1 }))
    it(`gives the tfjs towers' vectors for every matrix: ${arch}`, async () => {
      const spec: ModelSpec = { ...config, inputDim, numCategories };
      const model = new TwoTower(spec);
      const options: EngineOptions = {
        spec,
        optimizer: adamw,
        loss: { infonce: 1, triplet: 0.5, margin: 0.2 },
        seed: 5,
        params: model.layout.initialise(5),
        matrices: wide,
      };
      const [wasm, ort] = [new LocalEngine(options), await OrtEngine.create({ ...options, threads: 1 })];
      for (const matrix of ['trainScenes', 'valScenes', 'products'] as const) {
        const [want, got] = [await wasm.encode(matrix), await ort.encode(matrix)];
        expect(got.length).toBe(want.length);
        let worst = 0;
        for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
        expect(worst, matrix).toBeLessThan(1e-5);
      }
      await ort.dispose();
    });
});
