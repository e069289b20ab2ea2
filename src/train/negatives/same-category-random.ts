// `same-category-random` (the reference v2): per row, a random product of its positive's category that is not
// one of its scene's products.
import { keyedRandom } from '../../util/random.js';
import type { Random } from '../../util/random.js';
import type { SamplerContext, NegativeSampler } from '../negatives.js';
import { isPositive, type NegativeIndex } from './negative-index.js';

export function sameCategoryRandomSampler({ index, seed }: SamplerContext): NegativeSampler {
  return {
    sample(rows, step) {
      const rng = keyedRandom(seed, 'negatives', step);
      return { negatives: Int32Array.from(rows, (r) => sameCategoryRandom(index, r, rng)), hardCandidates: null };
    },
  };
}

/** A random product of the row's positive's category that is not one of its scene's products; -1 if none. */
export function sameCategoryRandom(index: NegativeIndex, row: number, rng: Random): number {
  const candidates = index.byCategory[index.productCategory[index.rowProduct[row]]];
  if (candidates.length === 0) return -1;
  for (let attempt = 0; attempt < 16; attempt++) {
    const product = candidates[rng.int(candidates.length)];
    if (!isPositive(index, row, product)) return product;
  }
  // Nearly all of the category is this scene's: scan from a random start.
  const start = rng.int(candidates.length);
  for (let k = 0; k < candidates.length; k++) {
    const product = candidates[(start + k) % candidates.length];
    if (!isPositive(index, row, product)) return product;
  }
  return -1;
}
