// Negatives for the triplet loss. Every strategy returns a product of the positive's category that is not one
// of the scene's true products (or -1 when the category has none); none ever returns a positive.
//   none                  no triplet term
//   same-category-random  the reference v2: a random product of the positive's category
//   in-batch-hard         the batch product of that category the scene currently scores highest
//   mined                 ours: every K steps, rank each training scene's same-category non-positives with the
//                         current towers and keep a few from a rank window (semi-hard: below the top, which may
//                         be unlabelled positives, above the easy tail); each step draws one of them
import type { Random } from '../util/random.js';

export type NegativeStrategy = 'none' | 'same-category-random' | 'in-batch-hard' | 'mined';
export const NEGATIVE_STRATEGIES: NegativeStrategy[] = ['none', 'same-category-random', 'in-batch-hard', 'mined'];

/** What the sampler needs to know about the catalog and the training rows. */
export interface NegativeIndex {
  /** Dataset product index → category index. */
  productCategory: Int32Array;
  /** Category → product indices that may be drawn (those with an embedding). */
  byCategory: Int32Array[];
  /** Scene index → its true products. */
  scenePositives: Int32Array[];
  /** Training row → scene index and positive product index. */
  rowScene: Int32Array;
  rowProduct: Int32Array;
}

export function isPositive(index: NegativeIndex, row: number, product: number): boolean {
  return index.scenePositives[index.rowScene[row]].includes(product);
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

/**
 * For a batch of training rows, the [B, B] 0/1 matrix of allowed in-batch negatives: column j may be row i's
 * negative when batch product j has the category of row i's positive and is not one of scene i's products.
 */
export function inBatchCandidates(index: NegativeIndex, rows: ArrayLike<number>): Uint8Array {
  const n = rows.length;
  const allowed = new Uint8Array(n * n);
  for (let i = 0; i < n; i++) {
    const category = index.productCategory[index.rowProduct[rows[i]]];
    for (let j = 0; j < n; j++) {
      const product = index.rowProduct[rows[j]];
      if (index.productCategory[product] === category && !isPositive(index, rows[i], product)) allowed[i * n + j] = 1;
    }
  }
  return allowed;
}

/** [B, B] 0/1: (i, j) = 1 when j ≠ i and batch product j is one of scene i's products (a false in-batch negative). */
export function inBatchFalseNegatives(index: NegativeIndex, rows: ArrayLike<number>): Uint8Array {
  const n = rows.length;
  const mask = new Uint8Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++)
      if (j !== i && isPositive(index, rows[i], index.rowProduct[rows[j]])) mask[i * n + j] = 1;
  return mask;
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
