import ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import { GENERATED_PRESETS } from '../src/embed/generated-models.js';
import { buildVisionTower } from '../src/embed/vision-transformer.js';
import { OnnxGraph, float } from '../src/onnx/graph.js';

describe('OnnxGraph', () => {
  test('a MatMul + TopK graph runs in onnxruntime with the expected values', async () => {
    // 2 queries × 3 dims against 4 products (columns): top-2 scores and indices per query.
    // [3, 4], a view into a larger buffer: the initializer takes the view's bytes only.
    const products = Float32Array.from([7, 1, 0, 0, 0.5, 0, 1, 0, 0.5, 0, 0, 1, 0, 7]).subarray(1, 13);
    const g = new OnnxGraph('scores');
    const q = g.input('queries', 'float32', ['n', 3]);
    const scores = g.op('MatMul', [q, g.initializer(products, [3, 4], { name: 'products' })]);
    g.node('TopK', [scores, g.int64s([2])], { axis: -1, largest: 1, sorted: 1 }, ['values', 'indices']);
    g.output('values', 'float32', ['n', 2]);
    g.output('indices', 'int64', ['n', 2]);
    const session = await ort.InferenceSession.create(g.encode());
    const out = await session.run({
      queries: new ort.Tensor('float32', Float32Array.from([0.9, 0.1, 0, 0, 0.2, 0.8]), [2, 3]),
    });
    // Scores: [0.9, 0.1, 0, 0.5] and [0, 0.2, 0.8, 0.1].
    expect(Array.from(out.indices.data as BigInt64Array, Number)).toEqual([0, 3, 2, 1]);
    const values = Array.from(out.values.data as Float32Array);
    [0.9, 0.5, 0.8, 0.2].forEach((v, i) => expect(values[i]).toBeCloseTo(v, 6));
  });

  test('float attributes and scalar constants', async () => {
    const g = new OnnxGraph('leaky');
    const x = g.input('x', 'float32', [3]);
    g.op('Add', [g.op('LeakyRelu', [x], { alpha: float(0.5) }), g.float32([1], [])], {}, 'y');
    g.output('y', 'float32', [3]);
    const session = await ort.InferenceSession.create(g.encode());
    const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from([-2, 0, 3]), [3]) });
    expect(Array.from(out.y.data as Float32Array)).toEqual([0, 1, 4]);
  });

  test('rejects a non-integer plain attribute and a reused name', () => {
    const g = new OnnxGraph('bad');
    const x = g.input('x', 'float32', [1]);
    expect(() => g.op('LeakyRelu', [x], { alpha: 0.5 })).toThrow(/not an integer/);
    expect(() => g.input('x', 'float32', [1])).toThrow(/already used/);
  });
});

describe('generated vision tower', () => {
  const spec = GENERATED_PRESETS.tiny;

  test('the same spec gives the same bytes', () => {
    expect(Buffer.from(buildVisionTower(spec)).equals(Buffer.from(buildVisionTower(spec)))).toBe(true);
  });

  test('SigLIP vision signature, fp32, fp16 and q8, close to each other', async () => {
    const x = Float32Array.from({ length: 2 * 3 * spec.imageSize ** 2 }, (_, i) => Math.sin(i * 0.37));
    const outputs: Float32Array[] = [];
    for (const format of ['fp32', 'q8', 'fp16'] as const) {
      const session = await ort.InferenceSession.create(buildVisionTower(spec, { format }));
      expect(session.inputNames).toEqual(['pixel_values']);
      expect([...session.outputNames].sort()).toEqual(['last_hidden_state', 'pooler_output']);
      const out = await session.run({
        pixel_values: new ort.Tensor('float32', x, [2, 3, spec.imageSize, spec.imageSize]),
      });
      expect(out.pooler_output.dims).toEqual([2, spec.projectionSize]);
      expect(out.last_hidden_state.dims).toEqual([2, (spec.imageSize / spec.patchSize) ** 2, spec.hiddenSize]);
      outputs.push(out.pooler_output.data as Float32Array);
    }
    const [fp32, q8, fp16] = outputs;
    const cosine = (a: Float32Array, b: Float32Array) => {
      let dot = 0;
      let na = 0;
      let nb = 0;
      for (let i = 0; i < a.length; i++) {
        dot += a[i] * b[i];
        na += a[i] * a[i];
        nb += b[i] * b[i];
      }
      return dot / Math.sqrt(na * nb);
    };
    // int8 weights and activations perturb a random tiny tower noticeably, but the vectors stay aligned.
    expect(cosine(fp32, q8)).toBeGreaterThan(0.7);
    // Half-precision weights (onnxruntime runs them on the CPU too) barely move it.
    expect(cosine(fp32, fp16)).toBeGreaterThan(0.999);
  });
});
