// Split properties: the scene split is scene-disjoint, seeded, near its fractions and stable when rows are
// reordered or added; the seed split follows CPython's shuffle over file rows and drops skipped rows in place.
import { describe, expect, it } from 'vitest';
import { PythonRandom } from '../src/data/stl/python-random.js';
import { sceneHash, sceneSplit, seedSplit } from '../src/data/stl/splits.js';
import type { Pair, Split } from '../src/data/types.js';
import { makeRaw } from './data-fixtures.js';

function partOfScenes(pairs: Pair[], split: Split): Map<string, string> {
  const parts = new Map<string, string>();
  for (const [part, indices] of Object.entries(split.parts))
    for (const i of indices) {
      const scene = pairs[i]!.scene;
      if ((parts.get(scene) ?? part) !== part) throw new Error(`scene ${scene} in two parts`);
      parts.set(scene, part);
    }
  return parts;
}

describe('sceneSplit', () => {
  const { pairs } = makeRaw(6000, 2000, 3);

  it('hashes a scene as Python would: int(sha256(f"{seed}:{sig}").hexdigest()[:12], 16) / 2**48', () => {
    expect(sceneHash('a'.repeat(32), 42)).toBe(0.22773496074571753);
  });

  it('puts every pair in exactly one part, in file order, with each scene in one part', () => {
    const split = sceneSplit(pairs, 42);
    expect(split.scheme).toBe('scene');
    const all = [...split.parts.train!, ...split.parts.val!, ...split.parts.test!].sort((a, b) => a - b);
    expect(all).toEqual(pairs.map((_, i) => i));
    for (const indices of Object.values(split.parts)) expect(indices).toEqual([...indices].sort((a, b) => a - b));
    const parts = partOfScenes(pairs, split);
    expect(parts.size).toBe(6000);
  });

  it('is close to 80/10/10 of the scenes', () => {
    const parts = [...partOfScenes(pairs, sceneSplit(pairs, 42)).values()];
    const share = (p: string) => parts.filter((x) => x === p).length / parts.length;
    // 6000 scenes: one binomial standard deviation is ~0.5% (train) and ~0.4% (val, test).
    expect(Math.abs(share('train') - 0.8)).toBeLessThan(0.025);
    expect(Math.abs(share('val') - 0.1)).toBeLessThan(0.02);
    expect(Math.abs(share('test') - 0.1)).toBeLessThan(0.02);
  });

  it('honours other fractions', () => {
    const parts = [...partOfScenes(pairs, sceneSplit(pairs, 42, { train: 0.5, val: 0.5, test: 0 })).values()];
    expect(parts.includes('test')).toBe(false);
    expect(Math.abs(parts.filter((p) => p === 'train').length / parts.length - 0.5)).toBeLessThan(0.03);
  });

  it('keeps every scene in its part when rows are reordered or more data is added', () => {
    const before = partOfScenes(pairs, sceneSplit(pairs, 42));
    const reordered = new PythonRandom(7).shuffle([...pairs]);
    expect(partOfScenes(reordered, sceneSplit(reordered, 42))).toEqual(before);
    const more = [...makeRaw(500, 100, 99).pairs, ...pairs];
    const after = partOfScenes(more, sceneSplit(more, 42));
    expect([...before].filter(([scene, part]) => after.get(scene) !== part)).toEqual([]);
  });

  it('depends on the seed', () => {
    const a = partOfScenes(pairs, sceneSplit(pairs, 42));
    const b = partOfScenes(pairs, sceneSplit(pairs, 43));
    const moved = [...a].filter(([scene, part]) => b.get(scene) !== part).length;
    expect(moved).toBeGreaterThan(500);
  });
});

describe('seedSplit', () => {
  it('is the reference split: shuffle(range(n)) with seed 42, first int(0.9 n) train', () => {
    const split = seedSplit(
      Array.from({ length: 20 }, (_, i) => i),
      20,
      42,
    );
    expect(split).toEqual({
      scheme: 'seed',
      seed: 42,
      parts: { train: [19, 5, 14, 4, 9, 13, 15, 18, 6, 12, 17, 10, 1, 11, 2, 16, 7, 8], val: [0, 3] },
    });
    // int() truncates: 0.9 * 15 = 13.5 puts 13 rows in train, not 14.
    const odd = seedSplit(
      Array.from({ length: 15 }, (_, i) => i),
      15,
      42,
    );
    expect([odd.parts.train!.length, odd.parts.val!.length]).toEqual([13, 2]);
  });

  it('shuffles file rows, so skipped rows leave the other pairs where the reference put them', () => {
    // Rows 5 and 7 were skipped: pair i is row i for i < 5, row i+1 for 5 <= i < 6, row i+2 above.
    const rowOfPair = Array.from({ length: 20 }, (_, r) => r).filter((r) => r !== 5 && r !== 7);
    const pairOfRow = (r: number) => rowOfPair.indexOf(r);
    const split = seedSplit(rowOfPair, 20, 42);
    const shuffledRows = [19, 5, 14, 4, 9, 13, 15, 18, 6, 12, 17, 10, 1, 11, 2, 16, 7, 8, 0, 3];
    const keep = (rows: number[]) => rows.map(pairOfRow).filter((p) => p >= 0);
    expect(split.parts.train).toEqual(keep(shuffledRows.slice(0, 18)));
    expect(split.parts.val).toEqual(keep(shuffledRows.slice(18)));
    expect(split.parts.train!.length + split.parts.val!.length).toBe(18);
  });
});
