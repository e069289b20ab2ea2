// A trained model's towers run on onnxruntime-node (the graph export writes) or on the tfjs forward, chosen by
// --backend: both give the same vectors for v1 and v2 (with categories), across chunk boundaries; `auto` without a
// loadable onnxruntime falls back to tfjs in one line, and `ort-cpu` named without one is an error saying so.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import * as z from 'zod';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import { loadTrainedModel } from '../src/model/load.js';
import { TwoTower, type ModelSpec } from '../src/model/two-tower.js';
import { keyedRandom } from '../src/util/random.js';
import { checkpointStateFor, TINY_V1, TINY_V2 } from './model-fixtures.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ctl-tower-encoder-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const gaussian = (n: number, seed: number) => {
  const rng = keyedRandom(seed, 'tower-encoder-test');
  return Float32Array.from({ length: n }, () => rng.normal());
};

/** A run with a `best` checkpoint of `spec`, every parameter random (LayerNorm's too, not just ones and zeros). */
async function writeRun(name: string, spec: ModelSpec): Promise<string> {
  const model = new TwoTower(spec);
  const runDir = join(dir, name);
  const state = checkpointStateFor(spec, { cat_to_idx: { Shoes: 0, Tops: 1, Bags: 2 }, num_categories: 3 });
  const params = gaussian(model.layout.size, 7).map((v) => 0.5 * v);
  await saveCheckpoint(runDir, 'best', model.layout, { state, params });
  return runDir;
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  return a.reduce((max, v, i) => Math.max(max, Math.abs(v - b[i])), 0);
}

describe('the towers on onnxruntime and on tfjs', () => {
  for (const [arch, spec] of [
    ['v1', TINY_V1],
    ['v2', TINY_V2],
  ] as const)
    it(`give the same vectors (${arch}), across the onnxruntime encoder's chunks of 8192 rows`, async () => {
      const runDir = await writeRun(arch, spec);
      const ort = await loadTrainedModel(runDir, 'best', { backend: 'ort-cpu', config: z.unknown() });
      const tfjs = await loadTrainedModel(runDir, 'best', { backend: 'wasm', config: z.unknown() });
      expect([ort.backend, tfjs.backend]).toEqual(['ort-cpu', 'wasm']);
      const rows = 8192 + 37;
      const x = gaussian(rows * spec.inputDim, 1);
      const categories = Int32Array.from({ length: rows }, (_, i) => (i * 7) % spec.numCategories);
      const scenes = await ort.encodeScenes(x, rows);
      expect(scenes.length).toBe(rows * spec.out);
      expect(maxAbsDifference(scenes, await tfjs.encodeScenes(x, rows))).toBeLessThan(1e-5);
      const products = await ort.encodeProducts(x, categories, rows);
      expect(maxAbsDifference(products, await tfjs.encodeProducts(x, categories, rows))).toBeLessThan(1e-5);
      if (spec.categoryDim > 0) {
        // The category rows reach the product tower: other rows, other vectors.
        const shifted = categories.map((c) => (c + 1) % spec.numCategories);
        expect(maxAbsDifference(products, await ort.encodeProducts(x, shifted, rows))).toBeGreaterThan(1e-3);
      }
      await Promise.all([ort.dispose(), tfjs.dispose()]);
    });
});

describe('without a loadable onnxruntime-node', () => {
  afterEach(() => {
    vi.doUnmock('onnxruntime-node');
    vi.resetModules();
  });

  it('auto runs the towers on tfjs and says why in one line; ort-cpu named is an error saying what to do', async () => {
    vi.resetModules();
    // Its import fails, as where the native library is missing (vitest words the error its own way).
    vi.doMock('onnxruntime-node', () => {
      throw new Error('libonnxruntime.so.1: cannot open shared object file');
    });
    const { loadTrainedModel: load } = await import('../src/model/load.js');
    const runDir = await writeRun('no-ort', TINY_V2);
    const lines: string[] = [];
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((s) => lines.push(String(s)) > 0);
    let model;
    try {
      model = await load(runDir, 'best', { config: z.unknown() });
    } finally {
      write.mockRestore();
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^towers: (wasm|tensorflow|cpu) \(TensorFlow\.js; --backend auto: onnxruntime-node unavailable \(.+\)\)\n$/,
    );
    expect(model.backend).not.toBe('ort-cpu');
    expect((await model.encodeScenes(gaussian(3 * TINY_V2.inputDim, 2), 3)).length).toBe(3 * TINY_V2.out);
    await expect(load(runDir, 'best', { backend: 'ort-cpu', config: z.unknown() })).rejects.toThrow(
      /^--backend ort-cpu: onnxruntime-node unavailable \(.+\); use --backend wasm$/,
    );
  });
});
