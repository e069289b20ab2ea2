// forEachBounded: at most `limit` in progress, started in order as places free, nothing new after a stop, and
// every started task settled before it returns.
import { describe, expect, it } from 'vitest';
import { forEachBounded } from '../src/util/bounded.js';

const tick = (ms = 1) => new Promise((resolve) => setTimeout(resolve, ms));

describe('forEachBounded', () => {
  it('keeps at most `limit` tasks in progress and starts them in order', async () => {
    let running = 0;
    let most = 0;
    const started: number[] = [];
    await forEachBounded([...Array(20).keys()], 3, new AbortController().signal, async (i) => {
      started.push(i);
      most = Math.max(most, ++running);
      await tick(i % 4);
      running--;
    });
    expect(most).toBe(3);
    expect(started).toEqual([...Array(20).keys()]);
  });

  it('after a stop starts nothing new, and returns once the started tasks have settled', async () => {
    const stop = new AbortController();
    const settled: number[] = [];
    await forEachBounded([...Array(100).keys()], 4, stop.signal, async (i) => {
      if (i === 5) stop.abort();
      await tick(5);
      settled.push(i);
    });
    expect(settled.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('reports a rejected task after the others have settled', async () => {
    const settled: number[] = [];
    const run = forEachBounded([0, 1, 2], 3, new AbortController().signal, async (i) => {
      if (i === 0) throw new Error('disk full');
      await tick(5);
      settled.push(i);
    });
    await expect(run).rejects.toThrow('disk full');
    expect(settled.sort()).toEqual([1, 2]);
  });
});
