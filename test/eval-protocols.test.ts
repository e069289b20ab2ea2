import { describe, expect, it } from 'vitest';
import { aucFromRank, mrr, meanRank, medianRank, recallAtK, summariseRanks } from '../src/eval/metrics.js';
import { evaluateProtocol, type Metrics } from '../src/eval/protocols.js';
import { bruteForce, intVectors, tinyDataset } from './eval-fixtures.js';

describe('metrics', () => {
  it('match their definitions on a hand case', () => {
    const ranks = [1, 3, 7, 60, 2];
    expect(recallAtK(ranks, 1)).toBe(0.2);
    expect(recallAtK(ranks, 5)).toBe(0.6);
    expect(recallAtK(ranks, 50)).toBe(0.8);
    expect(mrr(ranks)).toBeCloseTo((1 + 1 / 3 + 1 / 7 + 1 / 60 + 1 / 2) / 5, 12);
    expect(medianRank(ranks)).toBe(3);
    expect(medianRank([4, 1, 2, 10])).toBe(3);
    expect(meanRank(ranks)).toBe(73 / 5);
    expect(aucFromRank(1, 10)).toBe(1);
    expect(aucFromRank(11, 10)).toBe(0);
    expect(Number.isNaN(aucFromRank(1, 0))).toBe(true);
  });
});

/** Recompute Metrics from brute-force ranks. */
function expected(protocol: 'seed' | 'catalog' | 'category', input: ReturnType<typeof intVectors>) {
  const { ranks, negatives } = bruteForce(protocol, input);
  const s = summariseRanks(ranks);
  const aucs = ranks.map((r, i) => aucFromRank(r, negatives[i])).filter((a) => !Number.isNaN(a));
  return { ranks, summary: s, auc: aucs.reduce((a, b) => a + b, 0) / aucs.length };
}

function checkAgainstBruteForce(
  protocol: 'seed' | 'catalog' | 'category',
  m: Metrics,
  input: ReturnType<typeof intVectors>,
) {
  const want = expected(protocol, input);
  expect(m.queries).toBe(input.pairs.length);
  expect(m.recall).toEqual(want.summary.recall);
  expect(m.mrr).toBeCloseTo(want.summary.mrr, 12);
  expect(m.medianRank).toBe(want.summary.medianRank);
  expect(m.meanRank).toBeCloseTo(want.summary.meanRank, 9);
  if (protocol === 'category') expect(m.auc).toBeCloseTo(want.auc, 12);
}

describe('protocols vs brute force (ties, several products per scene)', () => {
  for (const seed of [1, 2, 3]) {
    for (const perPair of [false, true]) {
      const dataset = tinyDataset({
        seed,
        scenes: 40,
        products: 60,
        categories: 4,
        maxItems: 4,
        duplicatePair: seed === 2,
      });
      // Values in {-1, 0, 1}, dim 3: many exact ties.
      const input = intVectors(dataset, 3, seed * 7, 3, perPair);
      for (const protocol of ['seed', 'catalog', 'category'] as const) {
        for (const engine of ['onnx', 'js'] as const) {
          it(`${protocol}, ${engine} engine, seed ${seed}, ${perPair ? 'one vector per pair' : 'one vector per scene'}`, async () => {
            checkAgainstBruteForce(protocol, await evaluateProtocol(protocol, input, { engine }), input);
          });
        }
      }
    }
  }

  it('evaluates a subset of pairs in the given order', async () => {
    const dataset = tinyDataset({ seed: 9, scenes: 30, products: 40, categories: 3, maxItems: 3 });
    const full = intVectors(dataset, 4, 5, 5);
    const keep = full.pairs.filter((_, i) => i % 3 !== 1).reverse();
    const sub = {
      ...full,
      pairs: keep,
      sceneVectors: Float32Array.from(keep.flatMap((p) => Array.from(full.sceneVectors.subarray(p * 4, p * 4 + 4)))),
    };
    for (const protocol of ['seed', 'catalog', 'category'] as const)
      checkAgainstBruteForce(protocol, await evaluateProtocol(protocol, sub), sub);
  });
});

describe('catalog protocol', () => {
  it('merges identical scene rows but not different ones', async () => {
    const dataset = tinyDataset({ seed: 4, scenes: 25, products: 50, categories: 2, maxItems: 4 });
    const perScene = await evaluateProtocol('catalog', intVectors(dataset, 8, 1, 7, false));
    const perPair = await evaluateProtocol('catalog', intVectors(dataset, 8, 1, 7, true));
    expect(perScene.sceneRows).toBe(dataset.scenes.length);
    expect(perPair.sceneRows).toBe(dataset.pairs.length);
  });

  it("filters exactly the scene's other positives", async () => {
    // One scene with products 0, 1, 2; the scene vector prefers 0 > 1 > 2 > 3 > 4 ...
    const dim = 1;
    const dataset = tinyDataset({ seed: 1, scenes: 1, products: 6, categories: 1, maxItems: 1 });
    dataset.scenes = [
      {
        sig: dataset.scenes[0].sig,
        items: [0, 1, 2].map((j) => ({ product: dataset.products[j].sig, bbox: [0, 0, 1, 1] })),
      },
    ];
    dataset.pairs = dataset.scenes[0].items.map((it) => ({
      scene: dataset.scenes[0].sig,
      product: it.product,
      bbox: it.bbox,
    }));
    const productVectors = Float32Array.from([6, 5, 4, 3, 2, 1]);
    const input = { dataset, pairs: [0, 1, 2], sceneVectors: Float32Array.from([1, 1, 1]), productVectors, dim };
    const m = await evaluateProtocol('catalog', input);
    // Every target ranks first once the other two positives are gone.
    expect(m.meanRank).toBe(1);
    // A pair's product is a positive of its scene even where the scene's items leave it out.
    const unlisted = { ...dataset, scenes: [{ ...dataset.scenes[0], items: dataset.scenes[0].items.slice(1) }] };
    expect((await evaluateProtocol('catalog', { ...input, dataset: unlisted })).meanRank).toBe(1);
    // Take product 0 out of the scene: a negative scored above them, products 1 and 2 now rank 2nd.
    dataset.scenes[0].items = dataset.scenes[0].items.slice(1);
    dataset.pairs = dataset.pairs.slice(1);
    const m2 = await evaluateProtocol('catalog', { ...input, pairs: [0, 1], sceneVectors: Float32Array.from([1, 1]) });
    expect(m2.meanRank).toBe(2);
  });
});

describe('input checks', () => {
  it('refuse a non-finite vector value (NaN or infinite), naming the row', async () => {
    const input = intVectors(tinyDataset({ seed: 3, scenes: 5, products: 8, categories: 2, maxItems: 2 }), 4, 1);
    for (const bad of [NaN, Infinity, -Infinity]) {
      const sceneVectors = input.sceneVectors.slice();
      sceneVectors[2 * 4 + 1] = bad;
      await expect(evaluateProtocol('catalog', { ...input, sceneVectors })).rejects.toThrow(
        'evaluation: scene vector row 2 has a non-finite value',
      );
    }
  });
});

describe('missing products', () => {
  it('are removed from every ranking', async () => {
    const dataset = tinyDataset({ seed: 5, scenes: 30, products: 50, categories: 3, maxItems: 3 });
    const input = intVectors(dataset, 6, 2, 7);
    const used = new Set(dataset.pairs.map((p) => p.product));
    const missing = dataset.products.flatMap((p, j) => (used.has(p.sig) ? [] : [j])).slice(0, 8);
    expect(missing.length).toBeGreaterThan(3);
    const withMissing = await evaluateProtocol('catalog', { ...input, missingProducts: missing });
    const plain = await evaluateProtocol('catalog', input);
    expect(withMissing.candidates).toBe(dataset.products.length - missing.length);
    expect(withMissing.meanRank).toBeLessThanOrEqual(plain.meanRank);
    // Brute force on the dataset without those products (no pair uses them).
    const keep = dataset.products.map((_, j) => j).filter((j) => !missing.includes(j));
    const reduced = {
      ...input,
      dataset: { ...dataset, products: keep.map((j) => dataset.products[j]) },
      productVectors: Float32Array.from(
        keep.flatMap((j) => Array.from(input.productVectors.subarray(j * 6, j * 6 + 6))),
      ),
    };
    for (const protocol of ['catalog', 'category'] as const) {
      checkAgainstBruteForce(
        protocol,
        await evaluateProtocol(protocol, { ...input, missingProducts: missing }),
        reduced,
      );
    }
  });
});

describe('per-category results', () => {
  it('add up to the overall ones', async () => {
    const dataset = tinyDataset({ seed: 11, scenes: 60, products: 80, categories: 5, maxItems: 4 });
    const input = intVectors(dataset, 6, 3, 9);
    for (const protocol of ['seed', 'catalog', 'category'] as const) {
      const m = await evaluateProtocol(protocol, input);
      const cats = Object.values(m.perCategory!);
      expect(cats.reduce((a, c) => a + c.queries, 0)).toBe(m.queries);
      for (const k of ['1', '5', '10', '50']) {
        expect(cats.reduce((a, c) => a + c.recall[k] * c.queries, 0)).toBeCloseTo(m.recall[k] * m.queries, 9);
      }
      expect(cats.reduce((a, c) => a + c.mrr * c.queries, 0)).toBeCloseTo(m.mrr * m.queries, 9);
    }
  });
});

describe('category AUC', () => {
  it('is left out, not NaN (null in a report file), where no query has a same-category negative', async () => {
    const singletons = tinyDataset({ seed: 5, scenes: 30, products: 5, categories: 5, maxItems: 3 });
    const alone = await evaluateProtocol('category', intVectors(singletons, 4, 2));
    expect(alone.auc).toBeUndefined();
    expect(Object.values(alone.perCategory!).map((c) => c.auc)).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);

    // Cat0 holds two products (0 and 5), every other category one: only Cat0's queries have an AUC.
    const mixed = tinyDataset({ seed: 5, scenes: 30, products: 6, categories: 5, maxItems: 3 });
    const m = await evaluateProtocol('category', intVectors(mixed, 4, 2));
    expect(m.auc).toBeGreaterThanOrEqual(0);
    expect(
      Object.entries(m.perCategory!)
        .filter(([, c]) => c.auc !== undefined)
        .map(([name]) => name),
    ).toEqual(['Cat0']);
    expect(JSON.parse(JSON.stringify(m)).perCategory.Cat1).not.toHaveProperty('auc');
  });
});
