import { describe, expect, it } from 'vitest';
import { rankTargets, toCsr, type RankTask } from '../src/eval/rank.js';
import { rng } from './eval-fixtures.js';

/** Integer vectors (exact sums in float32 on any engine), several targets and filtered candidates per row. */
function task(seed: number, rows: number, candidates: number, dim: number, topK: number): RankTask {
  const rand = rng(seed);
  const draw = () => Math.floor(rand() * 7) - 3;
  const targets: number[][] = [];
  const exclude: number[][] = [];
  for (let r = 0; r < rows; r++) {
    const own = new Set<number>();
    const count = 1 + Math.floor(rand() * 4);
    while (own.size < count) own.add(Math.floor(rand() * candidates));
    const list = [...own];
    targets.push(list.slice(0, Math.max(1, list.length - 1))); // the last positive is filtered but not a target
    exclude.push(list);
  }
  return {
    queries: Float32Array.from({ length: rows * dim }, draw),
    candidates: Float32Array.from({ length: candidates * dim }, draw),
    dim,
    targets: toCsr(targets),
    exclude: toCsr(exclude),
    topK,
  };
}

function bruteForce(t: RankTask) {
  const { queries, candidates, dim, targets, exclude } = t;
  const n = candidates.length / dim;
  const score = (q: number, c: number) => {
    let s = 0;
    for (let d = 0; d < dim; d++) s += queries[q * dim + d] * candidates[c * dim + d];
    return s;
  };
  const ranks: number[] = [];
  const ranksTiesBehind: number[] = [];
  const top: number[][] = [];
  for (let q = 0; q + 1 < targets.offsets.length; q++) {
    const scores = Array.from({ length: n }, (_, c) => score(q, c));
    const filtered = new Set(exclude!.ids.subarray(exclude!.offsets[q], exclude!.offsets[q + 1]));
    for (const t of targets.ids.subarray(targets.offsets[q], targets.offsets[q + 1])) {
      ranks.push(1 + scores.filter((s, c) => c !== t && !filtered.has(c) && s >= scores[t]).length);
      ranksTiesBehind.push(1 + scores.filter((s, c) => c !== t && !filtered.has(c) && s > scores[t]).length);
    }
    // Best first, ties by lower index.
    top.push(
      scores
        .map((s, c) => [s, c])
        .sort((a, b) => b[0] - a[0] || a[1] - b[1])
        .slice(0, t.topK)
        .map(([, c]) => c),
    );
  }
  return { ranks, ranksTiesBehind, top };
}

describe('rankTargets', () => {
  for (const engine of ['onnx', 'js'] as const) {
    for (const blockRows of [1, 7, 64]) {
      it(`${engine} engine, blocks of ${blockRows} rows: ranks (both tie rules) and top-k match brute force`, async () => {
        const t = task(blockRows, 50, 300, 24, 10);
        const want = bruteForce(t);
        const got = await rankTargets({ ...t, tiesBehind: true }, { engine, blockRows });
        expect(Array.from(got.ranks)).toEqual(want.ranks);
        expect(Array.from(got.ranksTiesBehind!)).toEqual(want.ranksTiesBehind);
        const top = Array.from({ length: 50 }, (_, q) => Array.from(got.topIds!.subarray(q * 10, q * 10 + 10)));
        expect(top).toEqual(want.top);
      });
    }
  }

  it('ties: everything equal ranks every target last among the unfiltered', async () => {
    const t = task(3, 5, 40, 4, 0);
    t.queries.fill(1);
    t.candidates.fill(1);
    const got = await rankTargets(t);
    for (let q = 0; q < 5; q++) {
      const filtered = t.exclude!.offsets[q + 1] - t.exclude!.offsets[q];
      for (let k = t.targets.offsets[q]; k < t.targets.offsets[q + 1]; k++)
        expect(got.ranks[k]).toBe(40 - filtered + 1);
    }
  });

  it('ranks a target scored NaN last, not first', async () => {
    const t = task(5, 4, 30, 4, 0);
    const target = t.targets.ids[t.targets.offsets[2]];
    t.candidates[target * 4] = NaN;
    const got = await rankTargets(t, { engine: 'js' });
    expect(got.ranks[t.targets.offsets[2]]).toBe(30);
  });

  it('handles fewer candidates than k and no rows', async () => {
    const t = task(4, 3, 5, 4, 10);
    const got = await rankTargets(t);
    expect(got.topIds!.length).toBe(3 * 5);
    const empty = await rankTargets({ ...t, queries: new Float32Array(0), targets: toCsr([]), exclude: toCsr([]) });
    expect(empty.ranks.length).toBe(0);
  });
});

describe('scan kernels', () => {
  it('count and find on every length and alignment, negative and subnormal thresholds included', async () => {
    const { createScanKernels } = await import('../src/eval/scan-kernels.js');
    const k = createScanKernels(4096 * 4);
    const rand = rng(8);
    const values = new Float32Array(k.memory.buffer, 4 * 3, 2000);
    for (let i = 0; i < values.length; i++) values[i] = i % 97 === 0 ? 1e-45 : Math.round((rand() - 0.5) * 40) / 8;
    for (const len of [0, 1, 3, 16, 17, 63, 64, 65, 130, 2000]) {
      for (const offset of [0, 1, 5]) {
        const view = values.subarray(offset, offset + Math.min(len, values.length - offset));
        for (const t of [-2.5, 0, 1e-45, 0.125, 3, Infinity]) {
          const threshold = Math.fround(t);
          expect(k.countGe(view.byteOffset, view.length, threshold)).toBe(view.filter((v) => v >= threshold).length);
          for (const start of [0, 2, 70]) {
            let first = view.length;
            for (let i = start; i < view.length; i++)
              if (view[i] > threshold) {
                first = i;
                break;
              }
            expect(Math.min(k.firstAbove(view.byteOffset, start, view.length, threshold), view.length)).toBe(first);
          }
        }
      }
    }
  });
});
