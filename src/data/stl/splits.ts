// The two split schemes.
//   scene: scene-disjoint train/val/test. Each scene's part comes from a hash of (seed, scene signature) alone, so
//          adding, removing or reordering other rows never moves a scene to another part.
//   seed:  the reference project's split, bit-exact: `random.seed(42); random.shuffle(pairs)` over the rows in file
//          order, first `int(0.9 * n)` train, the rest validation. It leaks scenes between parts (comparison only).
import * as crypto from 'node:crypto';
import type { Pair, Signature, Split, SplitPart } from '../types.js';
import { PythonRandom } from './python-random.js';

export const DEFAULT_SPLIT_SEED = 42;
const SCENE_SPLIT_FRACTIONS: Record<SplitPart, number> = { train: 0.8, val: 0.1, test: 0.1 };
/** The reference's `split = int(0.9 * len(pairs))`. */
const SEED_SPLIT_TRAIN_FRACTION = 0.9;

// One-shot crypto.hash (Node >= 20.12) where there is one: no Hash object per scene, the same digest.
const sha256Hex: (text: string) => string =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'hex')
    : (text) => crypto.createHash('sha256').update(text).digest('hex');

/** A scene's position in [0, 1): the first 48 bits of sha256("seed:signature"). */
export function sceneHash(scene: Signature, seed: number): number {
  return parseInt(sha256Hex(`${seed}:${scene}`).slice(0, 12), 16) / 2 ** 48;
}

/** Scene-disjoint split; each part lists its pairs in file order. */
export function sceneSplit(
  pairs: Pair[],
  seed = DEFAULT_SPLIT_SEED,
  fractions: Record<SplitPart, number> = SCENE_SPLIT_FRACTIONS,
): Split {
  const total = fractions.train + fractions.val + fractions.test;
  const trainEnd = fractions.train / total;
  const valEnd = (fractions.train + fractions.val) / total;
  const partOfScene = new Map<Signature, SplitPart>();
  const parts: Record<SplitPart, number[]> = { train: [], val: [], test: [] };
  pairs.forEach((pair, i) => {
    let part = partOfScene.get(pair.scene);
    if (!part) {
      const h = sceneHash(pair.scene, seed);
      part = h < trainEnd ? 'train' : h < valEnd ? 'val' : 'test';
      partOfScene.set(pair.scene, part);
    }
    parts[part].push(i);
  });
  return { scheme: 'scene', seed, parts };
}

/**
 * The reference's split. The shuffle runs over every record of the file (`totalRows`), as the reference read
 * them; rows that failed validation are then dropped from their part, so the valid pairs keep exactly the
 * reference's order and sides. `rowOfPair[i]` is the record index of pair i.
 */
export function seedSplit(rowOfPair: number[], totalRows: number, seed = DEFAULT_SPLIT_SEED): Split {
  const order = Array.from({ length: totalRows }, (_, i) => i);
  new PythonRandom(seed).shuffle(order);
  const pairOfRow = new Int32Array(totalRows).fill(-1);
  rowOfPair.forEach((row, pair) => (pairOfRow[row] = pair));
  // Python's int() truncates toward zero; the product is the same IEEE double in both languages.
  const cut = Math.trunc(SEED_SPLIT_TRAIN_FRACTION * totalRows);
  const pairsOf = (rows: number[]) => rows.map((row) => pairOfRow[row]!).filter((pair) => pair >= 0);
  return { scheme: 'seed', seed, parts: { train: pairsOf(order.slice(0, cut)), val: pairsOf(order.slice(cut)) } };
}
