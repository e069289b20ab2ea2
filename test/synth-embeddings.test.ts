// Synthetic embeddings: determinism, shape, the planted signal (a learned linear map beats raw cosine on held-out
// pairs by a clear margin; hiding the product makes it harder; knowing a candidate's category helps, since its
// embedding hardly shows it), and the store round trip with resume.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { computeEmbeddings, writeSyntheticEmbeddings, type SynthEmbeddings } from '../src/data/synth/embeddings.js';
import { EmbeddingStore, sceneProductKey } from '../src/data/store/embeddings.js';
import { loadPairInputs } from '../src/data/store/pair-inputs.js';
import { synthesise } from '../src/data/synth/run.js';
import { Random } from '../src/util/random.js';
import { SYNTH_MODEL, workdirPaths } from '../src/data/workdir.js';
import { removeTempWorkdirs, tempWorkdir, world } from './synth-fixtures.js';

afterAll(removeTempWorkdirs);

const DIM = 48;

function rowNorm(data: Float32Array, dim: number, row: number): number {
  let s = 0;
  for (let d = 0; d < dim; d++) s += data[row * dim + d] ** 2;
  return Math.sqrt(s);
}

/** Ridge least squares W (dim × Y's width) with X W ≈ Y, by Cholesky on the normal equations. */
function leastSquares(X: Float64Array[], Y: Float64Array[], dim: number, lambda = 1): Float64Array[] {
  const cols = Y[0].length;
  const A = Array.from({ length: dim }, (_, i) => Float64Array.from({ length: dim }, (_, j) => (i === j ? lambda : 0)));
  const B = Array.from({ length: dim }, () => new Float64Array(cols));
  X.forEach((x, n) => {
    for (let i = 0; i < dim; i++) {
      for (let j = 0; j < dim; j++) A[i][j] += x[i] * x[j];
      for (let j = 0; j < cols; j++) B[i][j] += x[i] * Y[n][j];
    }
  });
  const Lc = Array.from({ length: dim }, () => new Float64Array(dim)); // A = L Lᵀ
  for (let i = 0; i < dim; i++)
    for (let j = 0; j <= i; j++) {
      let s = A[i][j];
      for (let k = 0; k < j; k++) s -= Lc[i][k] * Lc[j][k];
      Lc[i][j] = i === j ? Math.sqrt(s) : s / Lc[j][j];
    }
  const W = Array.from({ length: dim }, () => new Float64Array(cols));
  for (let c = 0; c < cols; c++) {
    const y = new Float64Array(dim);
    for (let i = 0; i < dim; i++) {
      let s = B[i][c];
      for (let k = 0; k < i; k++) s -= Lc[i][k] * y[k];
      y[i] = s / Lc[i][i];
    }
    for (let i = dim - 1; i >= 0; i--) {
      let s = y[i];
      for (let k = i + 1; k < dim; k++) s -= Lc[k][i] * W[k][c];
      W[i][c] = s / Lc[i][i];
    }
  }
  return W;
}

const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + v * b[i], 0);

/** Seed-protocol recall@10: each query against every held-out pair's product, rank of its own. */
function recallAt10(queries: Float64Array[], products: Float64Array[]): number {
  let hits = 0;
  queries.forEach((q, i) => {
    const own = dot(q, products[i]);
    let rank = 0;
    for (const p of products) if (dot(q, p) > own) rank++;
    if (rank < 10) hits++;
  });
  return hits / queries.length;
}

describe('computeEmbeddings', () => {
  const w = world({ scenes: 2000, products: 2500, seed: 5 });
  const e = computeEmbeddings(w, DIM);

  it('has one L2-normalised, finite row per product, scene and pair, in the store id conventions', () => {
    expect(e.products.ids).toEqual(w.products.map((p) => p.sig));
    expect(e.scenesFull.ids).toEqual(w.scenes.map((s) => s.sig));
    expect(e.scenesHideProduct.ids).toHaveLength(w.pairOrder.length);
    expect(e.scenesHideProduct.ids[0]).toBe(
      sceneProductKey(w.scenes[0].sig, w.products[w.scenes[0].items[0].product].sig),
    );
    for (const m of [e.products, e.scenesFull, e.scenesHideProduct]) {
      expect(m.data.length).toBe(m.ids.length * DIM);
      expect(m.data.every(Number.isFinite)).toBe(true);
      for (const row of [0, m.ids.length >> 1, m.ids.length - 1]) expect(rowNorm(m.data, DIM, row)).toBeCloseTo(1, 5);
    }
  });

  it('is deterministic: same world and dim, same bytes; another seed, other vectors', () => {
    const again = computeEmbeddings(w, DIM);
    expect(Buffer.from(again.scenesHideProduct.data.buffer).equals(Buffer.from(e.scenesHideProduct.data.buffer))).toBe(
      true,
    );
    const other = computeEmbeddings(world({ scenes: 2000, products: 2500, seed: 6 }), DIM);
    expect(Buffer.from(other.products.data.buffer).equals(Buffer.from(e.products.data.buffer))).toBe(false);
  });

  it('plants a signal a learned map finds and raw cosine mostly misses; hiding the product weakens it', () => {
    // Pairs in a seeded random order: 90% to fit the map, 10% held out (the reference's seed protocol shape).
    const pairs = new Random(1).shuffle(
      w.scenes.flatMap((s, t) => s.items.map((item, j) => ({ t, j, p: item.product }))),
    );
    const hideRow = new Map<string, number>(e.scenesHideProduct.ids.map((id, i) => [id, i]));
    const row = (data: Float32Array, i: number) => Float64Array.from(data.subarray(i * DIM, (i + 1) * DIM));
    const views = (v: SynthEmbeddings['scenesFull'], key: (pair: (typeof pairs)[0]) => number) =>
      pairs.map((pair) => row(v.data, key(pair)));
    const full = views(e.scenesFull, (pair) => pair.t);
    const hide = views(e.scenesHideProduct, (pair) =>
      hideRow.get(sceneProductKey(w.scenes[pair.t].sig, w.products[pair.p].sig))!,
    );
    const products = pairs.map((pair) => row(e.products.data, pair.p));
    const cut = Math.floor(pairs.length * 0.9);
    const heldProducts = products.slice(cut);
    const normalise = (v: Float64Array) => v.map((x) => x / Math.sqrt(dot(v, v)));
    const learned = (X: Float64Array[]) => {
      const W = leastSquares(X.slice(0, cut), products.slice(0, cut), DIM);
      return X.slice(cut).map((x) =>
        normalise(Float64Array.from({ length: DIM }, (_, c) => x.reduce((s, v, i) => s + v * W[i][c], 0))),
      );
    };
    const zeroShot = recallAt10(full.slice(cut), heldProducts);
    const linearFull = recallAt10(learned(full), heldProducts);
    const linearHide = recallAt10(learned(hide), heldProducts);
    expect(zeroShot).toBeLessThan(0.25);
    expect(linearFull).toBeGreaterThan(zeroShot + 0.04);
    expect(linearHide).toBeLessThan(linearFull - 0.04);
    expect(linearHide).toBeGreaterThan(0.01);

    // Category: a product's embedding says little of its category (a linear probe does not get far above always
    // guessing the biggest category), but a scene shows which kinds of item it holds and sees each item through its
    // category's view: a map that also knows a candidate's category (v2's category embedding, in linear form)
    // beats the same map without it.
    const categories = w.taxonomy.length;
    const oneHot = (k: number, scale: number) =>
      Float64Array.from({ length: categories }, (_, c) => (c === k ? scale : 0));
    const category = pairs.map((pair) => w.products[pair.p].category);
    const probe = leastSquares(
      products.slice(0, cut),
      category.slice(0, cut).map((k) => oneHot(k, 1)),
      DIM,
      0.1,
    );
    const guess = (x: Float64Array) => {
      const score = Array.from({ length: categories }, (_, c) => x.reduce((s, v, i) => s + v * probe[i][c], 0));
      return score.indexOf(Math.max(...score));
    };
    const probeAccuracy = heldProducts.filter((x, i) => guess(x) === category[cut + i]).length / heldProducts.length;
    const counts = Array.from({ length: categories }, (_, k) => category.filter((c) => c === k).length);
    const majority = Math.max(...counts) / category.length;
    expect(probeAccuracy).toBeLessThan(majority + 0.1);
    const withCategory = products.map((p, i) => Float64Array.from([...p, ...oneHot(category[i], 0.3)]));
    const Wc = leastSquares(full.slice(0, cut), withCategory.slice(0, cut), DIM);
    const width = withCategory[0].length;
    const queries = full
      .slice(cut)
      .map((x) => Float64Array.from({ length: width }, (_, c) => x.reduce((s, v, i) => s + v * Wc[i][c], 0)));
    const linearCategory = recallAt10(queries, withCategory.slice(cut));
    expect(linearCategory).toBeGreaterThan(linearFull + 0.04);
  });
});

describe('writeSyntheticEmbeddings', () => {
  it('round-trips through the store, resumes a lost shard, and replaces a store of other options', async () => {
    const workdir = await tempWorkdir();
    const w = world({ scenes: 300, products: 380, seed: 2 });
    const provenance = { generator: 1, seed: 2 };
    const first = await writeSyntheticEmbeddings(workdir, w, 16, provenance);
    expect(first.map((r) => r.view)).toEqual(['products', 'scenes-full', 'scenes-hide-product']);
    expect(first.map((r) => r.appended)).toEqual([w.products.length, w.scenes.length, w.pairOrder.length]);

    const expected = computeEmbeddings(w, 16);
    const store = await EmbeddingStore.open(workdirPaths(workdir).embeddings(SYNTH_MODEL, 'scenes-hide-product'));
    expect(store.meta).toMatchObject({
      model: 'synthetic',
      dim: 16,
      view: 'scenes-hide-product',
      preprocessing: { synthetic: provenance },
    });
    const { data, missing } = await store.read(expected.scenesHideProduct.ids);
    expect(missing).toEqual([]);
    expect(Array.from(data)).toEqual(Array.from(expected.scenesHideProduct.data));
    expect((await store.verify()).ok).toBe(true);

    // Same options: nothing to do.
    expect((await writeSyntheticEmbeddings(workdir, w, 16, provenance)).map((r) => r.appended)).toEqual([0, 0, 0]);

    // A shard lost (a run killed before it was committed): only its rows are written again.
    const productsDir = workdirPaths(workdir).embeddings(SYNTH_MODEL, 'products');
    const shard = (await readdir(join(productsDir, 'shards'))).find((n) => n.endsWith('.npy'))!;
    await rm(join(productsDir, 'shards', shard));
    await rm(join(productsDir, 'shards', shard.replace(/\.npy$/, '.ids.json')));
    const resumed = await writeSyntheticEmbeddings(workdir, w, 16, provenance);
    expect(resumed.map((r) => r.appended)).toEqual([w.products.length, 0, 0]);

    // Another dim or other options: the old store is replaced, not mixed.
    const other = await writeSyntheticEmbeddings(workdir, w, 8, provenance);
    expect(other.map((r) => r.rows)).toEqual([w.products.length, w.scenes.length, w.pairOrder.length]);
    expect((await EmbeddingStore.open(productsDir)).dim).toBe(8);
    const reseeded = await writeSyntheticEmbeddings(workdir, w, 8, { ...provenance, seed: 3 });
    expect(reseeded.map((r) => r.appended)).toEqual([w.products.length, w.scenes.length, w.pairOrder.length]);
  });

  it('removes stores of another world when the dataset is redone without --dim', async () => {
    const workdir = await tempWorkdir();
    const dir = workdirPaths(workdir).embeddings(SYNTH_MODEL, 'products');
    await synthesise(workdir, { scenes: 40, products: 50, seed: 1, domain: 'fashion', dim: 8 });
    await synthesise(workdir, { scenes: 40, products: 50, seed: 1, domain: 'fashion' });
    expect((await EmbeddingStore.open(dir)).size).toBe(50); // same world: kept
    await synthesise(workdir, { scenes: 40, products: 50, seed: 2, domain: 'fashion' });
    await expect(EmbeddingStore.open(dir)).rejects.toThrow(/no embedding store here/);
  });

  it("a missing store's error says the command that makes it", async () => {
    const workdir = await tempWorkdir();
    const { dataset } = await synthesise(workdir, { scenes: 20, products: 20, seed: 1, domain: 'fashion' });
    await expect(loadPairInputs(workdir, dataset, SYNTH_MODEL, 'full', [])).rejects.toThrow(
      /no embedding store here \(run `ctl data synth --dim D` first\)/,
    );
    await expect(loadPairInputs(workdir, dataset, 'Org/clip', 'full', [])).rejects.toThrow(
      /products: no embedding store here \(run `ctl embed --model Org\/clip` first\)/,
    );
  });
});
