// Check a received image and write it into place, on a worker thread: the checks (a JPEG's whole entropy-coded
// data is read) and the file-system calls then never hold up the event loop that keeps the downloads flowing, and
// each image costs one message to the worker and one back instead of a thread-pool round trip per fs call.
import { readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, getPriority, setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { tempPathFor } from '../util/atomic.js';
import { RunError } from '../util/errors.js';
import {
  InvalidImage,
  SNIFF_BYTES,
  checkDecodes,
  checkEnd,
  type ImageFormat,
  type ValidationMode,
} from './validate.js';

/**
 * Validate `data` (already known to start as `format`) and write it to `dest` through a temp file and a rename,
 * so `dest` is whole or absent after a kill. Throws InvalidImage for an image we refuse, RunError when the disk fails.
 * Synchronous fs calls: this runs on a worker thread (or inline in tests).
 */
export async function checkAndSave(
  data: Uint8Array,
  format: ImageFormat,
  dest: string,
  validation: ValidationMode,
): Promise<void> {
  if (validation === 'full') await checkDecodes(data, format);
  else checkEnd(format, data.subarray(0, SNIFF_BYTES), data.subarray(-SNIFF_BYTES), data.length);
  const tmp = tempPathFor(dest);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, dest);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new RunError(`cannot write ${dest}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

interface SaveRequest {
  id: number;
  data: Uint8Array;
  format: ImageFormat;
  dest: string;
  validation: ValidationMode;
}

type SaveReply = { id: number; ok: true } | { id: number; ok: false; invalid?: string; error?: string };

const WORKER_TAG = 'ctl-download-save-image';

/**
 * Hands images to worker threads, or saves them inline where no worker can run. Requests and replies travel in
 * batches (all those of one event-loop turn in one message): a message costs more than checking a small image.
 */
export class ImageSaver {
  private nextId = 0;
  private readonly pending = new Map<number, { worker: number; resolve: () => void; reject: (err: Error) => void }>();
  /** Requests given to each worker and not answered yet. */
  private readonly load: number[];
  /** Requests waiting for the next flush, per worker. */
  private outbox: SaveRequest[][];
  private flushing = false;
  private failure: Error | undefined;

  private constructor(private readonly workers: Worker[]) {
    this.load = workers.map(() => 0);
    this.outbox = workers.map(() => []);
    for (const worker of workers) {
      worker.on('message', (replies: SaveReply[]) => replies.forEach((reply) => this.settle(reply)));
      worker.on('error', (err) => this.fail(new RunError(`image worker failed: ${err.message}`)));
      worker.on('exit', (code) => this.fail(new RunError(`image worker exited (code ${code})`)));
    }
  }

  /**
   * `workers` threads (default: one per core, at most 2: the main thread mostly waits on the network, and each
   * worker checks thousands of images a second). Under vitest this module is TypeScript source that a worker
   * cannot load: then it saves inline.
   */
  static start(workers = Math.min(2, availableParallelism())): ImageSaver {
    const script = new URL(import.meta.url);
    if (!fileURLToPath(script).endsWith('.js')) workers = 0;
    return new ImageSaver(Array.from({ length: workers }, () => new Worker(script, { workerData: WORKER_TAG })));
  }

  /** checkAndSave on a worker. `data` is handed over (its memory moves to the worker): do not use it afterwards. */
  save(data: Uint8Array, format: ImageFormat, dest: string, validation: ValidationMode): Promise<void> {
    if (this.workers.length === 0) return checkAndSave(data, format, dest, validation);
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const worker = this.load.indexOf(Math.min(...this.load)); // the least busy
    this.load[worker]++;
    // Only a buffer that owns its whole memory can move; a view into a bigger one (a socket read) is copied first.
    const owned = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : new Uint8Array(data);
    this.outbox[worker].push({ id, data: owned, format, dest, validation });
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => this.flush());
    }
    return new Promise<void>((resolve, reject) => this.pending.set(id, { worker, resolve, reject }));
  }

  /** Stop the workers (they keep the process alive until then). */
  async close(): Promise<void> {
    this.failure ??= new RunError('image saver closed');
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private flush(): void {
    this.flushing = false;
    if (this.failure) return;
    this.outbox.forEach((batch, i) => {
      if (batch.length > 0)
        this.workers[i].postMessage(
          batch,
          batch.map((r) => r.data.buffer as ArrayBuffer),
        );
    });
    this.outbox = this.workers.map(() => []);
  }

  private settle(reply: SaveReply): void {
    const waiting = this.pending.get(reply.id);
    this.pending.delete(reply.id);
    if (!waiting) return;
    this.load[waiting.worker]--;
    if (reply.ok) waiting.resolve();
    else if (reply.invalid !== undefined) waiting.reject(new InvalidImage(reply.invalid));
    else waiting.reject(new RunError(reply.error ?? 'image worker error'));
  }

  private fail(err: Error): void {
    if (this.failure) return; // closing, or already failed
    this.failure = err;
    for (const { reject } of this.pending.values()) reject(err);
    this.pending.clear();
  }
}

/** How many nice steps the worker threads run below the main thread (19 is the lowest priority). */
export const WORKER_PRIORITY_DROP = 10;

/**
 * Run the calling thread at a lower priority, where the OS gives threads their own (Linux: /proc/thread-self names
 * the thread, and setpriority on a thread id changes that thread only). When every core is busy, a worker woken by
 * a message would otherwise take the core from the main thread, which then stops reading responses and sending
 * requests; at a lower priority the workers use the CPU the network leaves (7% faster on 2 cores, bench/download).
 * Elsewhere, priorities stay as they are.
 */
function yieldToMainThread(): void {
  try {
    const thread = Number(readlinkSync('/proc/thread-self').split('/').pop());
    setPriority(thread, Math.min(19, getPriority(thread) + WORKER_PRIORITY_DROP)); // a thread starts at its creator's
  } catch {
    // no /proc/thread-self (not Linux), or priorities locked down: equal priorities work too, a little slower
  }
}

// The worker thread: save what the main thread sends, answer in batches too.
if (!isMainThread && workerData === WORKER_TAG) {
  yieldToMainThread();
  let replies: SaveReply[] = [];
  const flush = () => {
    parentPort!.postMessage(replies);
    replies = [];
  };
  parentPort!.on('message', async (requests: SaveRequest[]) => {
    for (const { id, data, format, dest, validation } of requests) {
      try {
        await checkAndSave(data, format, dest, validation);
        replies.push({ id, ok: true });
      } catch (err) {
        if (err instanceof InvalidImage) replies.push({ id, ok: false, invalid: err.reason });
        else replies.push({ id, ok: false, error: err instanceof Error ? err.message : String(err) });
      }
      if (replies.length === 1) setImmediate(flush);
    }
  });
}
