// A pool of worker threads that answer requests for one module: the module is both the main-thread side (it
// starts the pool) and the worker script (it calls `serveRequests`). Each request goes to the least busy worker;
// a worker answers its requests one at a time, in order. Under vitest a module is TypeScript source that a worker
// cannot load: the pool then answers inline, on the calling thread, through the same handler.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData, type Transferable } from 'node:worker_threads';
import { RunError } from './errors.js';

/** A handler answers every request (a refusal is part of its answer); a throw is a failure of the pool. */
export type Handler<Request, Reply> = (request: Request) => Promise<Reply>;

interface Envelope<T> {
  id: number;
  body: T;
}

type Answer<Reply> = { id: number; ok: true; body: Reply } | { id: number; ok: false; error: string };

export class WorkerPool<Request, Reply> {
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { worker: number; resolve: (r: Reply) => void; reject: (e: Error) => void }
  >();
  /** Requests given to each worker and not answered yet. */
  private readonly load: number[];
  private failure: Error | undefined;

  private constructor(
    private readonly name: string,
    private readonly workers: Worker[],
    private readonly inline: Handler<Request, Reply>,
  ) {
    this.load = workers.map(() => 0);
    for (const worker of workers) {
      worker.on('message', (answer: Answer<Reply>) => this.settle(answer));
      worker.on('error', (err) => this.fail(new RunError(`${name} worker failed: ${err.message}`)));
      worker.on('exit', (code) => this.fail(new RunError(`${name} worker exited (code ${code})`)));
    }
  }

  /**
   * `workers` threads (one per core by default) running `script` (the calling module's `import.meta.url`), which
   * serves `tag` with `handler` (and answers inline with it where no worker can run).
   */
  static start<Request, Reply>(
    script: string,
    tag: string,
    handler: Handler<Request, Reply>,
    workers = availableParallelism(),
  ): WorkerPool<Request, Reply> {
    if (!fileURLToPath(script).endsWith('.js')) workers = 0;
    const threads = Array.from({ length: workers }, () => new Worker(new URL(script), { workerData: tag }));
    return new WorkerPool(tag, threads, handler);
  }

  /** Answered by a worker; what `transfer` lists moves to the worker (do not use it afterwards). */
  run(request: Request, transfer: Transferable[] = []): Promise<Reply> {
    if (this.workers.length === 0) return this.inline(request);
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const worker = this.load.indexOf(Math.min(...this.load));
    this.load[worker]++;
    this.workers[worker].postMessage({ id, body: request } satisfies Envelope<Request>, transfer);
    return new Promise<Reply>((resolve, reject) => this.pending.set(id, { worker, resolve, reject }));
  }

  /** Stop the workers (they keep the process alive until then). Call it once every request has settled. */
  async close(): Promise<void> {
    this.failure ??= new RunError(`${this.name} pool closed`);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private settle(answer: Answer<Reply>): void {
    const waiting = this.pending.get(answer.id);
    this.pending.delete(answer.id);
    if (!waiting) return;
    this.load[waiting.worker]--;
    if (answer.ok) waiting.resolve(answer.body);
    else waiting.reject(new RunError(`${this.name} worker: ${answer.error}`));
  }

  private fail(err: Error): void {
    if (this.failure) return; // closing, or already failed
    this.failure = err;
    for (const { reject } of this.pending.values()) reject(err);
    this.pending.clear();
  }
}

/**
 * In a worker started for `tag`: answer requests with `handler`, one at a time, in the order they came.
 * `transferOf` lists what of a reply moves back instead of being copied. Does nothing on any other thread.
 */
export function serveRequests<Request, Reply>(
  tag: string,
  handler: Handler<Request, Reply>,
  transferOf: (reply: Reply) => Transferable[] = () => [],
): void {
  if (isMainThread || workerData !== tag) return;
  let queue = Promise.resolve();
  parentPort!.on('message', ({ id, body }: Envelope<Request>) => {
    queue = queue.then(async () => {
      let answer: Answer<Reply>;
      try {
        answer = { id, ok: true, body: await handler(body) };
      } catch (err) {
        answer = { id, ok: false, error: err instanceof Error ? err.message : String(err) };
      }
      parentPort!.postMessage(answer, answer.ok ? transferOf(answer.body) : []);
    });
  });
}
