// Check a received image and write it into place, on worker threads (one per core): sharp's decode and the
// file-system calls then never hold up the event loop that keeps the downloads flowing.
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { tempPathFor } from '../util/atomic.js';
import { RunError } from '../util/errors.js';
// validate.js loads sharp in this thread too, before any worker starts: on glibc Linux the main thread must hold
// libvips loaded until the workers that use it are gone.
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
  if (validation === 'full') await checkDecodes(data);
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

/** Hands images to worker threads, or saves them inline where no worker can run. */
export class ImageSaver {
  private nextId = 0;
  private readonly pending = new Map<number, { worker: number; resolve: () => void; reject: (err: Error) => void }>();
  /** Requests given to each worker and not answered yet. */
  private readonly load: number[];
  private failure: Error | undefined;

  private constructor(private readonly workers: Worker[]) {
    this.load = workers.map(() => 0);
    for (const worker of workers) {
      worker.on('message', (reply: SaveReply) => this.settle(reply));
      worker.on('error', (err) => this.fail(new RunError(`image worker failed: ${err.message}`)));
      worker.on('exit', (code) => this.fail(new RunError(`image worker exited (code ${code})`)));
    }
  }

  /**
   * `workers` threads, one per core by default; each checks one image at a time. Under vitest this module is
   * TypeScript source that a worker cannot load: then it saves inline.
   */
  static start(workers = availableParallelism()): ImageSaver {
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
    const request: SaveRequest = { id, data: owned, format, dest, validation };
    this.workers[worker].postMessage(request, [owned.buffer as ArrayBuffer]);
    return new Promise<void>((resolve, reject) => this.pending.set(id, { worker, resolve, reject }));
  }

  /** Stop the workers (they keep the process alive until then). Call it once every save has settled. */
  async close(): Promise<void> {
    this.failure ??= new RunError('image saver closed');
    await Promise.all(this.workers.map((w) => w.terminate()));
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

/** The worker's answer to one request. */
async function answer({ id, data, format, dest, validation }: SaveRequest): Promise<SaveReply> {
  try {
    await checkAndSave(data, format, dest, validation);
    return { id, ok: true };
  } catch (err) {
    if (err instanceof InvalidImage) return { id, ok: false, invalid: err.reason };
    return { id, ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

// The worker thread: one request at a time, in the order they came.
if (!isMainThread && workerData === WORKER_TAG) {
  let queue = Promise.resolve();
  parentPort!.on('message', (request: SaveRequest) => {
    queue = queue.then(async () => parentPort!.postMessage(await answer(request)));
  });
}
