// `mined` (ours): every `refreshSteps` steps, encode the training scenes (each distinct one once) and the catalog
// with the current towers, rank each row's same-category non-positives by similarity to its scene and keep
// `poolSize` products from the rank window [lo, hi) (semi-hard: below the top, which may be unlabelled positives,
// above the easy tail); each step draws one of the row's pool. Before the first mining, and for rows with an empty
// pool, the negative is same-category-random. The products are scored by the evaluation's score engine
// (onnxruntime's multi-threaded MatMul when it loads).
import { createScoreEngine } from '../../eval/engines.js';
import { keyedRandom } from '../../util/random.js';
import { formatDuration, log } from '../../util/log.js';
import type { Random } from '../../util/random.js';
import type { NegativeSampler, SamplerContext, SamplerState } from '../negatives.js';
import { columnsBy, isPositive, type NegativeIndex } from './negative-index.js';
import { gatherRows } from '../../util/matrix.js';
import { sameCategoryRandom } from './same-category-random.js';

export function minedSampler({ index, config, seed }: SamplerContext, saved: SamplerState | null): NegativeSampler {
  let pool = saved ? new MinedPool(saved.table, saved.width, saved.step) : null;
  return {
    sample(rows, step) {
      const rng = keyedRandom(seed, 'negatives', step);
      const negatives = Int32Array.from(rows, (r) => {
        const random = () => sameCategoryRandom(index, r, rng);
        return pool ? pool.sample(r, rng, random) : random();
      });
      return { negatives, hardCandidates: null };
    },
    async refresh(step, towers) {
      if (step === 0 || step % config.refreshSteps !== 0 || pool?.step === step) return;
      const started = performance.now();
      const scenes = await towers.encode('trainScenes');
      const products = await towers.encode('products');
      // Both are [rows, out]: one row per distinct training scene, one per dataset product.
      const dim = products.length / index.productCategory.length;
      pool = await minePool(index, scenes, products, dim, {
        window: config.rankWindow,
        poolSize: config.poolSize,
        seed,
        step,
      });
      log(
        `mined negatives at step ${step} (ranks ${config.rankWindow.join('..')}, ${formatDuration((performance.now() - started) / 1000)})`,
      );
    },
    state: () => pool && { step: pool.step, table: pool.pool, width: pool.poolSize },
  };
}

/** Mined negatives: per training row, `poolSize` products drawn from a rank window; -1 pads short pools. */
export class MinedPool {
  constructor(
    readonly pool: Int32Array,
    readonly poolSize: number,
    /** The step the pool was mined at. */
    readonly step: number,
  ) {}

  /** One of the row's mined products, or the fallback when its pool is empty. */
  sample(row: number, rng: Random, fallback: () => number): number {
    const base = row * this.poolSize;
    let filled = 0;
    while (filled < this.poolSize && this.pool[base + filled] >= 0) filled++;
    return filled === 0 ? fallback() : this.pool[base + rng.int(filled)];
  }
}

export interface MiningOptions {
  window: [number, number];
  poolSize: number;
  seed: number;
  step: number;
}

/**
 * A pool of mined negatives for every training row, from the encoded training scenes [distinct scenes, dim] (a row's
 * is row index.trainSceneRow[row]) and the encoded catalog [products, dim].
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
  const rowsOfCategory = columnsBy(rows, (r) => index.productCategory[index.rowProduct[r]]);
  const block = 256;
  for (const [category, members] of rowsOfCategory) {
    const candidates = index.byCategory[category];
    if (candidates.length === 0) continue;
    const candidateVectors = gatherRows(products, candidates, dim);
    const engine = await createScoreEngine('auto', candidateVectors, candidates.length, dim);
    const buffer = new Float32Array(block * candidates.length);
    try {
      for (let b = 0; b < members.length; b += block) {
        const chunk = members.slice(b, b + block);
        const chunkScenes = chunk.map((r) => index.trainSceneRow[r]);
        const scores = await engine.score(gatherRows(scenes, chunkScenes, dim), buffer);
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

/**
 * Keep the products ranked [lo, hi) among a row's non-positives, given their similarities. `candidates` are the
 * category's products, `sims` the row's similarity to each; returns up to `poolSize` distinct picks.
 */
export function rankWindowPicks(
  index: NegativeIndex,
  row: number,
  candidates: Int32Array,
  sims: Float32Array,
  window: [number, number],
  poolSize: number,
  rng: Random,
): number[] {
  const [lo, hi] = window;
  // The top `hi` non-positives by similarity, kept sorted descending (hi is small: insertion is cheap).
  const top: number[] = [];
  const topSims: number[] = [];
  for (let k = 0; k < candidates.length; k++) {
    const s = sims[k];
    if (top.length === hi && s <= topSims[hi - 1]) continue;
    const product = candidates[k];
    if (isPositive(index, row, product)) continue;
    let at = top.length === hi ? hi - 1 : top.length;
    if (top.length === hi) {
      top.pop();
      topSims.pop();
    }
    while (at > 0 && topSims[at - 1] < s) at--;
    top.splice(at, 0, product);
    topSims.splice(at, 0, s);
  }
  const window_ = top.slice(Math.min(lo, top.length));
  // When the category is small, fall back to whatever non-positives exist.
  const source = window_.length > 0 ? window_ : top;
  return rng.shuffle(source.slice()).slice(0, poolSize);
}
