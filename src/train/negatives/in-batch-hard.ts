// `in-batch-hard`: each row's negative is the batch product of its positive's category (not one of its scene's)
// that the scene currently scores highest. The sampler marks the allowed columns; the loss picks the hardest
// (gradients.ts), since only it knows the scores.
import type { SamplerContext, NegativeSampler } from '../negatives.js';
import { columnsBy, type NegativeIndex } from './negative-index.js';

export function inBatchHardSampler({ index }: SamplerContext): NegativeSampler {
  return { sample: (rows) => ({ negatives: null, hardCandidates: inBatchCandidates(index, rows) }) };
}

/**
 * For a batch of training rows, the [B, B] 0/1 matrix of allowed in-batch negatives: column j may be row i's
 * negative when batch product j has the category of row i's positive and is not one of scene i's products.
 * Filled from the columns of each category, then cleared at the scene's products (not by testing all B² pairs).
 */
export function inBatchCandidates(index: NegativeIndex, rows: ArrayLike<number>): Uint8Array {
  const n = rows.length;
  const allowed = new Uint8Array(n * n);
  const categoryOf = (j: number) => index.productCategory[index.rowProduct[rows[j]]];
  const byCategory = columnsBy(n, categoryOf);
  const byProduct = columnsBy(n, (j) => index.rowProduct[rows[j]]);
  for (let i = 0; i < n; i++) {
    for (const j of byCategory.get(categoryOf(i))!) allowed[i * n + j] = 1;
    for (const product of index.scenePositives[index.rowScene[rows[i]]])
      for (const j of byProduct.get(product) ?? []) allowed[i * n + j] = 0;
  }
  return allowed;
}

/** Per row, the allowed column with the highest similarity; -1 when none is allowed. */
export function hardestAllowed(sims: Float32Array, allowed: Uint8Array, n: number): Int32Array {
  const picked = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    let best = -Infinity;
    for (let j = 0; j < n; j++) {
      const k = i * n + j;
      if (allowed[k] && sims[k] > best) {
        best = sims[k];
        picked[i] = j;
      }
    }
  }
  return picked;
}
