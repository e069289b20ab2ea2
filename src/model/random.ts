// Seeded randomness without hidden state. Every random draw of a run is a pure function of (seed, purpose,
// counter): the init from (seed, "init"), an epoch's shuffle from (seed, "shuffle", epoch), a step's negatives
// from (seed, "negatives", step), a dropout mask from (seed, step, layer, row, col). So a run resumed from any
// epoch boundary draws exactly what the uninterrupted run drew, and a batch split over worker threads gets the
// same dropout masks as the whole batch on one thread.
import { Random } from '../util/random.js';

/** A 32-bit avalanche hash (lowbias32). */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Hash a few integers (or short strings) into one 32-bit key. */
export function hashKey(...parts: (number | string)[]): number {
  let h = 0x9e3779b9;
  for (const part of parts) {
    if (typeof part === 'number') h = mix32(h ^ mix32(part >>> 0) ^ mix32(Math.floor(part / 2 ** 32) + 0x632be5ab));
    else for (let i = 0; i < part.length; i++) h = mix32(h ^ part.charCodeAt(i));
  }
  return h;
}

/** A generator for one purpose of a run, e.g. `keyedRandom(seed, 'shuffle', epoch)`. */
export function keyedRandom(...key: (number | string)[]): Random {
  return new Random(hashKey(...key));
}

/**
 * An inverted-dropout mask for rows whose global indices in the step's batch are `rowIds`: entries are 0
 * (dropped, with probability `rate`) or 1/(1-rate). Entry (row, col) depends only on (key, global row, col).
 */
export function dropoutMask(key: number, rowIds: ArrayLike<number>, cols: number, rate: number): Float32Array {
  const mask = new Float32Array(rowIds.length * cols);
  const threshold = Math.floor(rate * 2 ** 32);
  const keep = 1 / (1 - rate);
  for (let r = 0; r < rowIds.length; r++) {
    const rowKey = mix32(key ^ mix32(rowIds[r] + 0x5bd1e995));
    const base = r * cols;
    for (let c = 0; c < cols; c++)
      mask[base + c] = mix32((rowKey + Math.imul(c, 0x9e3779b9)) | 0) >= threshold ? keep : 0;
  }
  return mask;
}
