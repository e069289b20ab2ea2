// The seeded PRNG the synthetic data (and anything else reproducible) draws from.
import { describe, expect, it } from 'vitest';
import { Random } from '../src/util/random.js';

const draws = (r: Random, n: number) => Array.from({ length: n }, () => r.nextUint32());

describe('Random', () => {
  it('repeats from a seed; other seeds and forks give other streams', () => {
    expect(draws(new Random(42), 5)).toEqual(draws(new Random(42), 5));
    expect(draws(new Random(42), 5)).not.toEqual(draws(new Random(43), 5));
    expect(draws(new Random('42'), 5)).not.toEqual(draws(new Random(42), 5));
    const a = new Random(1);
    const forkA = a.fork('x');
    const b = new Random(1);
    b.fork('y');
    // A fork does not advance its parent, and a label names its own stream.
    expect(draws(a, 3)).toEqual(draws(b, 3));
    expect(draws(forkA, 3)).toEqual(draws(new Random(1).fork('x'), 3));
    expect(draws(forkA, 3)).not.toEqual(draws(new Random(1).fork('y'), 3));
  });

  it('fillMask writes the draws nextUint32 gives, thresholded, and leaves the generator where they leave it', () => {
    const [filled, looped] = [new Random(9), new Random(9)];
    const threshold = Math.floor(0.3 * 2 ** 32);
    for (const out of [new Float32Array(1000), new Uint8Array(1000)]) {
      filled.fillMask(out, 100, 800, threshold, 2.5);
      const expected = Array.from({ length: 1000 }, (_, i) =>
        i < 100 || i >= 900 ? 0 : looped.nextUint32() >= threshold ? (out instanceof Uint8Array ? 2 : 2.5) : 0,
      );
      expect(Array.from(out)).toEqual(expected);
      expect(Math.abs(out.filter((v) => v === 0).length - 200 - 0.3 * 800)).toBeLessThan(60);
    }
    expect(draws(filled.fork('f'), 3)).toEqual(draws(looped.fork('f'), 3));
    expect(draws(filled, 3)).toEqual(draws(looped, 3));
  });

  it('draws uniform, integer, normal and approximate normal values with the right moments', () => {
    const r = new Random(7);
    const n = 50_000;
    const u = Array.from({ length: n }, () => r.uniform());
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    expect(mean(u)).toBeCloseTo(0.5, 2);
    const counts = new Array(7).fill(0);
    for (let i = 0; i < n; i++) counts[r.int(7)]++;
    for (const c of counts) expect(Math.abs(c / n - 1 / 7)).toBeLessThan(0.01);
    const z = r.fillNormal(new Float32Array(n), 2);
    expect(mean(z)).toBeCloseTo(0, 1);
    expect(Math.sqrt(mean(Array.from(z, (v) => v * v)))).toBeCloseTo(2, 1);
    const a = r.fillApproxNormal(new Float32Array(n), 0.5);
    expect(mean(a)).toBeCloseTo(0, 2);
    expect(Math.sqrt(mean(Array.from(a, (v) => v * v)))).toBeCloseTo(0.5, 2);
    expect(Math.max(...Array.from(a, Math.abs))).toBeLessThanOrEqual(0.5 * Math.sqrt(12) + 1e-6);
    expect(() => r.int(0)).toThrow(RangeError);
  });

  it('samples by weight, shuffles into a permutation, and writes signatures as hex', () => {
    const r = new Random(3);
    const weights = [0, 1, 3, 0, 6];
    const sample = r.weightedSampler(weights);
    const counts = new Array(weights.length).fill(0);
    for (let i = 0; i < 30_000; i++) counts[sample()]++;
    expect(counts[0]).toBe(0);
    expect(counts[3]).toBe(0);
    expect(counts[4] / 30_000).toBeCloseTo(0.6, 1);
    expect(counts[2] / 30_000).toBeCloseTo(0.3, 1);
    const single = new Array(weights.length).fill(0);
    for (let i = 0; i < 3_000; i++) single[r.weighted(weights)]++;
    expect(single[0] + single[3]).toBe(0);
    const items = Array.from({ length: 100 }, (_, i) => i);
    const shuffled = r.shuffle([...items]);
    expect(shuffled).not.toEqual(items);
    expect([...shuffled].sort((x, y) => x - y)).toEqual(items);
    expect(r.hex(16)).toMatch(/^[0-9a-f]{32}$/);
    expect(r.hex(3)).toMatch(/^[0-9a-f]{6}$/);
  });
});

function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s / values.length;
}
