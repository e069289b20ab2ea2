// Every negative strategy, on random catalogs with crowded categories: never a positive, always the positive's
// category, hardest = highest allowed similarity, mined = inside the rank window.
import { describe, expect, it } from 'vitest';
import { keyedRandom } from '../src/util/random.js';
import { inBatchFalseNegatives, isPositive, type NegativeIndex } from '../src/train/negatives/negative-index.js';
import { sameCategoryRandom } from '../src/train/negatives/same-category-random.js';
import { hardestAllowed, inBatchCandidates } from '../src/train/negatives/in-batch-hard.js';
import { MinedPool, minePool, rankWindowPicks } from '../src/train/negatives/mined.js';
import { NEGATIVE_STRATEGIES, createNegativeSampler } from '../src/train/negatives.js';
import type { NegativesConfig } from '../src/train/config.js';
import { gatherRows } from '../src/util/matrix.js';

/** Scenes with 1-5 products, few categories, products shared between scenes. */
function randomIndex(seed: number, products = 60, scenes = 40, categories = 3): NegativeIndex {
  const rng = keyedRandom(seed, 'index');
  const productCategory = Int32Array.from({ length: products }, () => rng.int(categories));
  const scenePositives = Array.from({ length: scenes }, () =>
    Int32Array.from(new Set(Array.from({ length: 1 + rng.int(5) }, () => rng.int(products)))),
  );
  const rowScene: number[] = [];
  const rowProduct: number[] = [];
  scenePositives.forEach((ps, s) => ps.forEach((p) => (rowScene.push(s), rowProduct.push(p))));
  const byCategory = Array.from({ length: categories }, (_, c) =>
    Int32Array.from(productCategory.reduce<number[]>((a, k, j) => (k === c ? [...a, j] : a), [])),
  );
  return {
    productCategory,
    byCategory,
    scenePositives,
    rowScene: Int32Array.from(rowScene),
    rowProduct: Int32Array.from(rowProduct),
    // The training scenes are the scenes, each once: a row's is its scene's.
    trainSceneRow: Int32Array.from(rowScene),
  };
}

const category = (index: NegativeIndex, row: number) => index.productCategory[index.rowProduct[row]];

describe('same-category-random', () => {
  it('never returns a positive, always the category of the positive', () => {
    for (let seed = 0; seed < 20; seed++) {
      const index = randomIndex(seed);
      const rng = keyedRandom(seed);
      for (let row = 0; row < index.rowProduct.length; row++) {
        const j = sameCategoryRandom(index, row, rng);
        if (j < 0) continue;
        expect(isPositive(index, row, j)).toBe(false);
        expect(index.productCategory[j]).toBe(category(index, row));
      }
    }
  });

  it("returns -1 when the whole category is the scene's", () => {
    const index: NegativeIndex = {
      productCategory: Int32Array.from([0, 0, 1]),
      byCategory: [Int32Array.from([0, 1]), Int32Array.from([2])],
      scenePositives: [Int32Array.from([0, 1])],
      rowScene: Int32Array.from([0, 0]),
      rowProduct: Int32Array.from([0, 1]),
      trainSceneRow: Int32Array.from([0, 0]),
    };
    expect(sameCategoryRandom(index, 0, keyedRandom(1))).toBe(-1);
  });
});

describe('in-batch-hard', () => {
  it('picks the highest-scoring allowed column, never a positive', () => {
    for (let seed = 0; seed < 20; seed++) {
      const index = randomIndex(seed);
      const rng = keyedRandom(seed, 'batch');
      const rows = Int32Array.from({ length: 24 }, () => rng.int(index.rowProduct.length));
      const n = rows.length;
      const allowed = inBatchCandidates(index, rows);
      const sims = Float32Array.from({ length: n * n }, () => rng.uniform());
      const picked = hardestAllowed(sims, allowed, n);
      for (let i = 0; i < n; i++) {
        const options = Array.from({ length: n }, (_, j) => j).filter((j) => allowed[i * n + j]);
        if (options.length === 0) {
          expect(picked[i]).toBe(-1);
          continue;
        }
        const product = index.rowProduct[rows[picked[i]]];
        expect(isPositive(index, rows[i], product)).toBe(false);
        expect(index.productCategory[product]).toBe(category(index, rows[i]));
        expect(sims[i * n + picked[i]]).toBe(Math.max(...options.map((j) => sims[i * n + j])));
      }
    }
  });

  // Both masks against their definitions, pair by pair, on batches that repeat rows and products.
  for (const [what, build, definition] of [
    [
      'false negatives: off the diagonal, batch products of the scene',
      inBatchFalseNegatives,
      (index: NegativeIndex, rows: Int32Array, i: number, j: number) =>
        i !== j && isPositive(index, rows[i], index.rowProduct[rows[j]]),
    ],
    [
      "allowed in-batch-hard negatives: the positive's category, not the scene's",
      inBatchCandidates,
      (index: NegativeIndex, rows: Int32Array, i: number, j: number) =>
        index.productCategory[index.rowProduct[rows[j]]] === category(index, rows[i]) &&
        !isPositive(index, rows[i], index.rowProduct[rows[j]]),
    ],
  ] as const)
    it(`marks ${what}`, () => {
      for (let seed = 0; seed < 10; seed++) {
        const index = randomIndex(seed);
        const rng = keyedRandom(seed, 'mask batch');
        const rows = Int32Array.from({ length: 48 }, () => rng.int(index.rowProduct.length));
        const n = rows.length;
        const expected = Uint8Array.from({ length: n * n }, (_, k) =>
          definition(index, rows, Math.floor(k / n), k % n) ? 1 : 0,
        );
        expect(expected.includes(1)).toBe(true);
        expect(build(index, rows)).toEqual(expected);
      }
    });
});

describe('mined', () => {
  it('keeps picks from the rank window of non-positives', () => {
    const index = randomIndex(5, 200, 20, 2);
    const rng = keyedRandom(9);
    for (let row = 0; row < index.rowProduct.length; row++) {
      const candidates = index.byCategory[category(index, row)];
      const sims = Float32Array.from(candidates, () => rng.uniform());
      const picks = rankWindowPicks(index, row, candidates, sims, [3, 10], 4, rng);
      const ranked = Array.from(candidates)
        .map((j, k) => ({ j, s: sims[k] }))
        .filter(({ j }) => !isPositive(index, row, j))
        .sort((a, b) => b.s - a.s)
        .map(({ j }) => j);
      // The window [3, 10) of the ranking, or, when the category is too small for it, whatever non-positives exist.
      const source = ranked.length > 3 ? ranked.slice(3, 10) : ranked;
      expect(picks.length).toBe(Math.min(4, source.length));
      for (const j of picks) expect(source).toContain(j);
      // A pool as large as the window holds all of it.
      const whole = rankWindowPicks(index, row, candidates, sims, [3, 10], 10, rng);
      expect(whole.sort((a, b) => a - b)).toEqual(source.slice().sort((a, b) => a - b));
    }
  });

  it('mines pools over encoded vectors that never contain a positive', async () => {
    const index = randomIndex(7, 80, 50, 3);
    const dim = 8;
    const rng = keyedRandom(2);
    const scenes = Float32Array.from({ length: index.scenePositives.length * dim }, () => rng.normal());
    const products = Float32Array.from({ length: 80 * dim }, () => rng.normal());
    const pool = await minePool(index, scenes, products, dim, { window: [1, 6], poolSize: 3, seed: 1, step: 10 });
    expect(pool.step).toBe(10);
    for (let row = 0; row < index.rowProduct.length; row++) {
      for (let k = 0; k < 3; k++) {
        const j = pool.pool[row * 3 + k];
        if (j < 0) continue;
        expect(isPositive(index, row, j)).toBe(false);
        expect(index.productCategory[j]).toBe(category(index, row));
      }
      const drawn = pool.sample(row, rng, () => -7);
      if (drawn !== -7) expect(isPositive(index, row, drawn)).toBe(false);
    }
    // Each mining draws anew from the window: the same vectors mined at another step give other pools.
    const later = await minePool(index, scenes, products, dim, { window: [1, 6], poolSize: 3, seed: 1, step: 20 });
    expect(later.pool).not.toEqual(pool.pool);
  });

  it("scores each row with its scene's vector: the pools of one encoded row per training row", async () => {
    const index = randomIndex(8, 80, 50, 3);
    expect(index.rowProduct.length).toBeGreaterThan(index.scenePositives.length);
    const dim = 8;
    const rng = keyedRandom(3);
    const scenes = Float32Array.from({ length: index.scenePositives.length * dim }, () => rng.normal());
    const products = Float32Array.from({ length: 80 * dim }, () => rng.normal());
    const options = { window: [1, 6] as [number, number], poolSize: 3, seed: 1, step: 10 };
    const perRow = { ...index, trainSceneRow: Int32Array.from(index.rowScene.keys()) };
    const want = await minePool(perRow, gatherRows(scenes, index.trainSceneRow, dim), products, dim, options);
    expect((await minePool(index, scenes, products, dim, options)).pool).toEqual(want.pool);
  });

  it("falls back when a row's pool is empty, and never draws a partly filled pool's padding", () => {
    const pool = new MinedPool(Int32Array.from([-1, -1]), 2, 0);
    expect(pool.sample(0, keyedRandom(1), () => 42)).toBe(42);
    // A partly filled pool draws only from what it holds, never its -1 padding.
    const partial = new MinedPool(Int32Array.from([5, 9, -1, -1]), 4, 0);
    const rng = keyedRandom(2);
    const drawn = new Set(Array.from({ length: 50 }, () => partial.sample(0, rng, () => 42)));
    expect([...drawn].sort((a, b) => a - b)).toEqual([5, 9]);
  });
});

describe('strategies behind one interface', () => {
  const index = randomIndex(11, 80, 50, 3);
  const config: NegativesConfig = { strategy: 'mined', refreshSteps: 5, rankWindow: [1, 6], poolSize: 3 };
  const context = { index, config, seed: 4 };
  const rng = keyedRandom(12);
  const rows = Int32Array.from({ length: 16 }, () => rng.int(index.rowProduct.length));

  it('registers each strategy under its config name', () => {
    expect(NEGATIVE_STRATEGIES).toEqual(['none', 'same-category-random', 'in-batch-hard', 'mined']);
  });

  it('gives each strategy its kind of negatives, the same for the same (seed, step)', () => {
    const draw = (name: (typeof NEGATIVE_STRATEGIES)[number], step: number) =>
      createNegativeSampler(name, context).sample(rows, step);
    expect(draw('none', 1)).toEqual({ negatives: null, hardCandidates: null });
    expect(draw('in-batch-hard', 1)).toEqual({ negatives: null, hardCandidates: inBatchCandidates(index, rows) });
    const random = draw('same-category-random', 1);
    expect(random.hardCandidates).toBeNull();
    expect(random).toEqual(draw('same-category-random', 1));
    expect(random).not.toEqual(draw('same-category-random', 2));
    // Before its first mining, `mined` draws as same-category-random does.
    expect(draw('mined', 1)).toEqual(random);
  });

  it('mines every refreshSteps steps, and resumes from its checkpointed state drawing the same negatives', async () => {
    const dim = 8;
    // The training scenes encode to one row per distinct scene, not one per training row.
    const encoded = {
      trainScenes: Float32Array.from({ length: index.scenePositives.length * dim }, () => rng.normal()),
      products: Float32Array.from({ length: 80 * dim }, () => rng.normal()),
    };
    const towers = { encode: async (matrix: string) => encoded[matrix as keyof typeof encoded] };
    const sampler = createNegativeSampler('mined', context);
    await sampler.refresh!(0, towers);
    await sampler.refresh!(3, towers);
    expect(sampler.state!()).toBeNull();
    await sampler.refresh!(5, towers);
    const state = sampler.state!()!;
    expect(state.step).toBe(5);
    expect(state.width).toBe(3);
    const mined = await minePool(index, encoded.trainScenes, encoded.products, dim, {
      window: config.rankWindow,
      poolSize: config.poolSize,
      seed: context.seed,
      step: 5,
    });
    expect(state.table).toEqual(mined.pool);
    await sampler.refresh!(5, towers);
    expect(sampler.state!()!.table).toBe(state.table);

    const drawn = sampler.sample(rows, 7).negatives!;
    rows.forEach((r, i) => {
      const pool = Array.from(state.table.subarray(r * 3, r * 3 + 3)).filter((j) => j >= 0);
      if (pool.length > 0) expect(pool).toContain(drawn[i]);
    });
    const resumed = createNegativeSampler('mined', context, {
      step: state.step,
      table: state.table.slice(),
      width: state.width,
    });
    expect(resumed.sample(rows, 7)).toEqual(sampler.sample(rows, 7));
  });
});
