// The shared row-major matrix helpers (src/util/matrix.ts).
import { describe, expect, it } from 'vitest';
import { distinctRows, gatherRows, l2NormalizeRows } from '../src/util/matrix.js';

describe('l2NormalizeRows', () => {
  it('scales each row to unit length in place and leaves a zero row zero', () => {
    const m = Float32Array.from([3, 4, 0, 0, -1, 0]);
    const out = l2NormalizeRows(m, 2);
    expect(out).toBe(m);
    expect(Array.from(m)).toEqual([Math.fround(0.6), Math.fround(0.8), 0, 0, -1, 0]);
  });
});

describe('gatherRows', () => {
  it('copies the given rows in order, a zero row for -1', () => {
    const m = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const out = gatherRows(m, [2, -1, 0, 2], 2);
    expect(Array.from(out)).toEqual([5, 6, 0, 0, 1, 2, 5, 6]);
    out[0] = 9;
    expect(m[4]).toBe(5);
  });
});

describe('distinctRows', () => {
  it("takes each key's first row, in order of first appearance, and maps every row to its key's", () => {
    const { firsts, rowOf } = distinctRows(['b', 'a', 'b', 'c', 'a']);
    expect(firsts).toEqual([0, 1, 3]);
    expect(Array.from(rowOf)).toEqual([0, 1, 0, 2, 1]);
  });
});
