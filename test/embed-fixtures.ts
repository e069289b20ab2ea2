// A small STL-shaped workdir for the embed tests: a dataset with a few scenes and products, and generated images
// (JPEG scenes, PNG products) with distinct patterns, so different images give different vectors.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { expect } from 'vitest';
import { EmbeddingStore } from '../src/data/store/embeddings.js';
import type { Dataset } from '../src/data/dataset.js';
import { saveDataset } from '../src/data/stl/dataset-io.js';
import type { BBox, Pair } from '../src/data/types.js';
import { workdirPaths, type EmbeddingView } from '../src/data/workdir.js';
import type { EmbedOptions } from '../src/embed/run.js';

export const sig = (prefix: string, i: number) => `${prefix}${i.toString(16).padStart(32 - prefix.length, '0')}`;

/** An RGB pattern that depends on `seed`: stripes, a block and a gradient, so images differ in many pixels. */
export async function patternImage(
  seed: number,
  width: number,
  height: number,
  format: 'jpeg' | 'png',
): Promise<Buffer> {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      const stripe = Math.floor((x + seed * 7) / (4 + (seed % 5))) % 2;
      data[o] = (seed * 53 + x * 3) % 256;
      data[o + 1] = stripe ? 220 : (seed * 31 + y * 2) % 256;
      data[o + 2] = x > width / 3 && x < width / 2 && y > height / 4 ? 30 : (seed * 97 + x + y) % 256;
    }
  const img = sharp(data, { raw: { width, height, channels: 3 } });
  return format === 'jpeg' ? img.jpeg({ quality: 92 }).toBuffer() : img.png().toBuffer();
}

export interface Fixture {
  workdir: string;
  dataset: Dataset;
}

const created: string[] = [];

/** Remove every workdir `makeFixture` made (call from afterAll). */
export async function removeFixtures(): Promise<void> {
  await Promise.all(created.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
}

/** `scenes` scenes with two products each (boxes on the left and right halves), all images on disk. */
export async function makeFixture(scenes = 3): Promise<Fixture> {
  const workdir = await mkdtemp(join(tmpdir(), 'ctl-embed-'));
  created.push(workdir);
  const boxes: BBox[] = [
    [0.05, 0.1, 0.45, 0.9],
    [0.55, 0.2, 0.95, 0.8],
  ];
  const pairs: Pair[] = [];
  for (let s = 0; s < scenes; s++)
    for (let k = 0; k < 2; k++) pairs.push({ scene: sig('a', s), product: sig('b', s * 2 + k), bbox: boxes[k] });
  const productSigs = [...new Set(pairs.map((p) => p.product))].sort();
  const dataset: Dataset = {
    version: 1,
    domain: 'fashion',
    source: 'synthetic',
    categories: [{ index: 0, name: 'Shoes', path: 'Apparel & Accessories|Shoes' }],
    products: productSigs.map((s) => ({ sig: s, category: 0 })),
    scenes: Array.from({ length: scenes }, (_, s) => ({
      sig: sig('a', s),
      items: pairs.filter((p) => p.scene === sig('a', s)).map((p) => ({ product: p.product, bbox: p.bbox })),
    })),
    pairs,
    splits: {
      scene: { scheme: 'scene', seed: 0, parts: { train: pairs.map((_, i) => i) } },
      seed: { scheme: 'seed', seed: 42, parts: { train: pairs.map((_, i) => i) } },
    },
    skipped: {},
  };
  await saveDataset(workdir, dataset);
  const paths = workdirPaths(workdir);
  for (const [i, scene] of dataset.scenes.entries())
    await writeImage(paths.imageFile('scenes', scene.sig), await patternImage(i, 96, 64, 'jpeg'));
  for (const [i, p] of dataset.products.entries())
    await writeImage(paths.imageFile('products', p.sig), await patternImage(100 + i, 40, 48, 'png'));
  return { workdir, dataset };
}

export async function writeImage(file: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, bytes);
}

/** `ctl embed`'s options for a test run: the generated `tiny` model, locally on the CPU, all kinds, no progress. */
export const embedOptions = (workdir: string, over: Partial<EmbedOptions> = {}): EmbedOptions => ({
  workdir,
  domain: 'fashion',
  model: 'tiny',
  offline: true,
  provider: 'local',
  device: 'cpu',
  dtype: 'fp32',
  threads: 1,
  batch: 4,
  prefetch: 2,
  commitEvery: 1,
  kind: 'all',
  sceneView: 'full',
  hide: 'crop',
  progress: false,
  ...over,
});

/**
 * How far `--dtype fp16` may be from fp32, per L2-normalised vector (the README documents it): measured 7e-5 on the
 * CPU provider (which runs most fp16 ops in float32) and 1.7e-3 on WebGPU (true half-precision arithmetic) for the
 * generated ViT-B/16, cosine ≥ 0.99998.
 */
export const FP16_TOLERANCE = { maxAbs: 5e-3, minCosine: 0.9995 };

/** The largest coordinate difference and the smallest cosine between matching rows of two vector sets. */
export function compareVectors(
  a: Map<string, Float32Array>,
  b: Map<string, Float32Array>,
): { maxAbs: number; minCosine: number } {
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  let maxAbs = 0;
  let minCosine = 1;
  for (const [id, x] of a) {
    const y = b.get(id)!;
    let dot = 0;
    for (let i = 0; i < x.length; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(x[i] - y[i]));
      dot += x[i] * y[i];
    }
    minCosine = Math.min(minCosine, dot);
  }
  return { maxAbs, minCosine };
}

/** Every row of one view of a workdir's store, by id. */
export async function storeRows(
  workdir: string,
  view: EmbeddingView,
  model = 'tiny',
): Promise<Map<string, Float32Array>> {
  const store = await EmbeddingStore.open(workdirPaths(workdir).embeddings(model, view));
  const { ids, data } = await store.readAll();
  return new Map(ids.map((id, i) => [id, data.subarray(i * store.dim, (i + 1) * store.dim)]));
}
