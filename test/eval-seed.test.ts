// The `seed` protocol against what the reference project's code computes: sim = scenes @ products.T over the
// evaluated pairs (n × n, duplicates included), rank = position of the diagonal in a descending argsort + 1.
// Computed here by NumPy (and PyTorch where installed) in a child python3; skipped where python3 + numpy are absent.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { Dataset } from '../src/data/dataset.js';
import { summariseRanks } from '../src/eval/metrics.js';
import { evaluateProtocol } from '../src/eval/protocols.js';
import { tinyDataset } from './eval-fixtures.js';

const PYTHONS = ['/usr/bin/python3', 'python3'];
const python = PYTHONS.find((p) => spawnSync(p, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0);

const REFERENCE = `
import json, sys
import numpy as np
try:
    import torch
except ImportError:
    torch = None
results = []
for case in json.load(sys.stdin):
    scenes = np.array(case["scenes"], dtype=np.float32)
    products = np.array(case["products"], dtype=np.float32)
    sim = scenes @ products.T
    order = np.argsort(-sim, axis=1)
    out = {"numpy": [int(np.where(order[i] == i)[0][0]) + 1 for i in range(len(sim))]}
    if torch is not None:
        order = torch.argsort(torch.from_numpy(sim), dim=1, descending=True)
        out["torch"] = [int((order[i] == i).nonzero()[0][0]) + 1 for i in range(len(sim))]
    results.append(out)
print(json.dumps(results))
`;

/** The reference's ranks for each case's vectors (scene row i, product row i); one python3 start for all. */
function referenceRanks(
  cases: { scenes: number[][]; products: number[][] }[],
): { numpy: number[]; torch?: number[] }[] {
  const p = spawnSync(python!, ['-c', REFERENCE], { input: JSON.stringify(cases), encoding: 'utf8' });
  if (p.status !== 0) throw new Error(p.stderr);
  return JSON.parse(p.stdout);
}

/** A dataset whose pairs are exactly (scene i, product productOfPair[i]). */
function pairsDataset(productOfPair: number[], numProducts: number): Dataset {
  const d = tinyDataset({ seed: 1, scenes: 1, products: numProducts, categories: 2, maxItems: 1 });
  const sig = (i: number) => `5${i.toString(16)}`.padStart(32, '0');
  d.scenes = productOfPair.map((j, i) => ({
    sig: sig(i),
    items: [{ product: d.products[j].sig, bbox: [0, 0, 1, 1] }],
  }));
  d.pairs = productOfPair.map((j, i) => ({ scene: sig(i), product: d.products[j].sig, bbox: [0, 0, 1, 1] }));
  return d;
}

// Case 1: six distinct products, no exact tie anywhere.
const distinct = {
  productVectors: [
    [3, 0],
    [0, 3],
    [2, 2],
    [1, -1],
    [-2, 1],
    [1, 2],
  ],
  sceneOfPair: [
    [1, 0],
    [0, 1],
    [1, 1.5],
    [2, -1],
    [-1, 2],
    [1, 3],
  ],
  productOfPair: [0, 1, 2, 3, 4, 5],
};
// Case 2: 20 pairs over products 0..14, five of them repeated (duplicated columns tie the diagonal exactly).
const repeated = (() => {
  let x = 7;
  const next = () => ((x = (x * 48271) % 2147483647), (x % 13) - 6);
  const productOfPair = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 2, 5, 7, 11, 13];
  const productVectors = Array.from({ length: 15 }, () => [next(), next(), next(), next()]);
  const sceneOfPair = productOfPair.map(() => [next(), next(), next(), next()]);
  return { productVectors, sceneOfPair, productOfPair };
})();
let cached: ReturnType<typeof referenceRanks> | undefined;
const reference = () =>
  (cached ??= referenceRanks(
    [distinct, repeated].map((c) => ({
      scenes: c.sceneOfPair,
      products: c.productOfPair.map((j) => c.productVectors[j]),
    })),
  ));

describe.skipIf(!python)('seed protocol vs the reference argsort', () => {
  it('gives the same ranks when no column ties the diagonal', async () => {
    const { productVectors, sceneOfPair, productOfPair } = distinct;
    const m = await evaluateProtocol('seed', {
      dataset: pairsDataset(productOfPair, productVectors.length),
      pairs: productOfPair.map((_, i) => i),
      sceneVectors: Float32Array.from(sceneOfPair.flat()),
      productVectors: Float32Array.from(productVectors.flat()),
      dim: 2,
    });
    const ref = reference()[0];
    expect(m.ties).toBe(0);
    for (const refRanks of [ref.numpy, ...(ref.torch ? [ref.torch] : [])]) {
      const want = summariseRanks(refRanks);
      expect(m.recall).toEqual(want.recall);
      expect(m.mrr).toBeCloseTo(want.mrr, 12);
      expect(m.medianRank).toBe(want.medianRank);
      expect(m.meanRank).toBeCloseTo(want.meanRank, 12);
    }
  });

  it('matches exactly on distinct products, and brackets the reference on ties', async () => {
    const { productVectors, sceneOfPair, productOfPair } = repeated;
    const numProducts = productVectors.length;
    const dataset = pairsDataset(productOfPair, numProducts);
    const input = {
      dataset,
      pairs: productOfPair.map((_, i) => i),
      sceneVectors: Float32Array.from(sceneOfPair.flat()),
      productVectors: Float32Array.from(productVectors.flat()),
      dim: 4,
    };
    const ours = await evaluateProtocol('seed', input);
    const ref = reference()[1];
    // Recompute per-query ranks from the protocol's definition to compare one by one.
    const dot = (a: number[], b: number[]) => a.reduce((s, v, d) => s + v * b[d], 0);
    const references = [ref.numpy, ...(ref.torch ? [ref.torch] : [])];
    for (const refRanks of references) {
      for (let i = 0; i < productOfPair.length; i++) {
        const own = dot(sceneOfPair[i], productVectors[productOfPair[i]]);
        const scores = productOfPair.map((j) => dot(sceneOfPair[i], productVectors[j]));
        const ahead = scores.filter((s, j) => j !== i && s > own).length;
        const tied = scores.filter((s, j) => j !== i && s === own).length;
        if (tied === 0) expect(refRanks[i]).toBe(1 + ahead);
        else {
          expect(refRanks[i]).toBeGreaterThanOrEqual(1 + ahead);
          expect(refRanks[i]).toBeLessThanOrEqual(1 + ahead + tied);
        }
      }
      const refMrr = refRanks.reduce((a, r) => a + 1 / r, 0) / refRanks.length;
      expect(refMrr).toBeGreaterThanOrEqual(ours.mrr - 1e-12);
      expect(refMrr).toBeLessThanOrEqual(ours.tiesBehind!.mrr + 1e-12);
    }
    expect(ours.ties).toBeGreaterThanOrEqual(10);
  });
});
