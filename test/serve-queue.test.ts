// The inference queue: one job runs, `capacity` more wait their turn in order, the next is refused at once.
import { describe, expect, it } from 'vitest';
import { InferenceQueue, QueueFullError } from '../src/serve/queue.js';

describe('InferenceQueue', () => {
  it('runs one job at a time with `capacity` waiting beside it, and refuses the next', async () => {
    const queue = new InferenceQueue(1);
    const order: string[] = [];
    let release!: () => void;
    const first = queue.run(async () => {
      await new Promise<void>((resolve) => (release = resolve));
      order.push('first');
    });
    const second = queue.run(async () => {
      order.push('second');
    });
    expect(queue.depth).toBe(2);
    expect(() => queue.run(async () => {})).toThrow(QueueFullError);
    await Promise.resolve(); // let the first job start
    release();
    await Promise.all([first, second]);
    expect(order).toEqual(['first', 'second']);
    expect(queue.depth).toBe(0);
    await expect(queue.run(async () => 'again')).resolves.toBe('again');
  });
});
