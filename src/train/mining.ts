// Mining for the `mined` negative strategy: score each training row's scene against the products of its
// positive's category (encoded with the current towers), and keep a few products from a rank window of the
// non-positives (negatives.ts, rankWindowPicks). The products are scored by the evaluation's score engine
// (onnxruntime's multi-threaded MatMul when it loads).
import { createScoreEngine } from '../eval/engines.js';
import { keyedRandom } from '../util/random.js';
import { MinedPool, rankWindowPicks, type NegativeIndex } from './negatives.js';

export interface MiningOptions {
  window: [number, number];
  poolSize: number;
  seed: number;
  step: number;
}

/**
 * A pool of mined negatives for every training row, from the rows' encoded scenes [rows, dim] and the encoded
 * catalog [products, dim].
 */
export async function minePool(
  index: NegativeIndex,
  scenes: Float32Array,
  products: Float32Array,
  dim: number,
  options: MiningOptions,
): Promise<MinedPool> {
  const rows = index.rowProduct.length;
  const pool = new Int32Array(rows * options.poolSize).fill(-1);
  const rowsOfCategory = new Map<number, number[]>();
  for (let r = 0; r < rows; r++) {
    const c = index.productCategory[index.rowProduct[r]];
    const members = rowsOfCategory.get(c) ?? [];
    members.push(r);
    rowsOfCategory.set(c, members);
  }
  const block = 256;
  for (const [category, members] of rowsOfCategory) {
    const candidates = index.byCategory[category];
    if (candidates.length === 0) continue;
    const candidateVectors = new Float32Array(candidates.length * dim);
    candidates.forEach((j, k) => candidateVectors.set(products.subarray(j * dim, (j + 1) * dim), k * dim));
    const engine = await createScoreEngine('auto', candidateVectors, candidates.length, dim);
    const buffer = new Float32Array(block * candidates.length);
    try {
      for (let b = 0; b < members.length; b += block) {
        const chunk = members.slice(b, b + block);
        const queries = new Float32Array(chunk.length * dim);
        chunk.forEach((r, i) => queries.set(scenes.subarray(r * dim, (r + 1) * dim), i * dim));
        const scores = await engine.score(queries, buffer);
        chunk.forEach((r, i) => {
          const rng = keyedRandom(options.seed, 'mine', options.step, r);
          const sims = scores.subarray(i * candidates.length, (i + 1) * candidates.length);
          const picks = rankWindowPicks(index, r, candidates, sims, options.window, options.poolSize, rng);
          pool.set(picks, r * options.poolSize);
        });
      }
    } finally {
      await engine.dispose();
    }
  }
  return new MinedPool(pool, options.poolSize, options.step);
}
