// The shared worker pool (src/util/worker-pool.ts), built (run `npm run build` first), with real worker threads:
// answers, spreading over the workers, transfers, a handler's throw, a worker that dies, and the inline mode.
import { describe, expect, test } from 'vitest';

const script = new URL('./fixtures/worker-pool-echo.js', import.meta.url).href;
// The built module (its workers load dist/), typed by its source; a path in a variable keeps tsc out of dist/.
const built = '../dist/util/worker-pool.js';
const { WorkerPool }: typeof import('../src/util/worker-pool.js') = await import(built);
const { handle } = await import('./fixtures/worker-pool-echo.js');

describe('WorkerPool', () => {
  test('answers every request on worker threads, spread over the least busy', async () => {
    const pool = WorkerPool.start(script, 'test-echo', handle, 2);
    try {
      const replies = await Promise.all(Array.from({ length: 6 }, (_, n) => pool.run({ n, delay: 20 })));
      expect(replies.map((r: any) => r.n)).toEqual([0, 1, 2, 3, 4, 5]);
      const threads = new Set(replies.map((r: any) => r.thread));
      expect(threads.size).toBe(2);
      expect(threads.has(0)).toBe(false); // 0 is the main thread
    } finally {
      await pool.close();
    }
  });

  test('a transferred buffer moves to the worker', async () => {
    const pool = WorkerPool.start(script, 'test-echo', handle, 1);
    try {
      const data = new Uint8Array(1000);
      const reply: any = await pool.run({ n: 0, data }, [data.buffer]);
      expect(reply.bytes).toBe(1000);
      expect(data.byteLength).toBe(0); // detached here
    } finally {
      await pool.close();
    }
  });

  test("a handler's throw rejects that request only; a worker that dies rejects what it held and all later requests", async () => {
    const pool = WorkerPool.start(script, 'test-echo', handle, 1);
    try {
      await expect(pool.run({ kind: 'throw', n: 7 })).rejects.toThrow('test-echo worker: bad request 7');
      expect(await pool.run({ n: 8 })).toMatchObject({ n: 8 });
      const dying = pool.run({ kind: 'exit' });
      const queued = pool.run({ n: 9 });
      await expect(dying).rejects.toThrow('test-echo worker exited (code 3)');
      await expect(queued).rejects.toThrow('test-echo worker exited (code 3)');
      await expect(pool.run({ n: 10 })).rejects.toThrow('test-echo worker exited (code 3)');
    } finally {
      await pool.close();
    }
  });

  test('a script that is not JavaScript (TypeScript source under vitest) is answered inline', async () => {
    const pool = WorkerPool.start('file:///src/some-module.ts', 'test-echo', handle);
    expect(await pool.run({ n: 1 })).toMatchObject({ n: 1, thread: 0 });
    await pool.close();
  });
});
