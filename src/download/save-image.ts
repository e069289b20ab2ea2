// Check a received image and write it into place, on worker threads (one per core): sharp's decode and the
// file-system calls then never hold up the event loop that keeps the downloads flowing.
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { tempPathFor } from '../util/atomic.js';
import { cannotWrite, RunError } from '../util/errors.js';
import { serveRequests, WorkerPool } from '../util/worker-pool.js';
// validate.js loads sharp in this thread too, before any worker starts: on glibc Linux the main thread must hold
// libvips loaded until the workers that use it are gone.
import { InvalidImage, SNIFF_BYTES, checkDecodes, checkEnd, type ValidationMode } from './validate.js';
import type { ImageFormat } from '../data/image-format.js';

/**
 * Validate `data` (already known to start as `format`) and write it to `dest` through a temp file and a rename,
 * so `dest` is whole or absent after a kill. Throws InvalidImage for an image we refuse, RunError when the disk fails.
 * Synchronous fs calls: this runs on a worker thread (or inline in tests).
 */
async function checkAndSave(
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
    throw cannotWrite(dest, err);
  }
}

interface SaveRequest {
  data: Uint8Array;
  format: ImageFormat;
  dest: string;
  validation: ValidationMode;
}

/** Refusals travel as the InvalidImage reason; disk failures as a message. */
type SaveReply = { ok: true } | { ok: false; invalid?: string; error?: string };

const WORKER_TAG = 'ctl-download-save-image';

/** checkAndSave, with its outcome as a reply a worker can post. */
async function answer({ data, format, dest, validation }: SaveRequest): Promise<SaveReply> {
  try {
    await checkAndSave(data, format, dest, validation);
    return { ok: true };
  } catch (err) {
    if (err instanceof InvalidImage) return { ok: false, invalid: err.reason };
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

serveRequests(WORKER_TAG, answer);

/** Hands images to worker threads (one per core by default), each checking one image at a time. */
export class ImageSaver {
  private constructor(private readonly pool: WorkerPool<SaveRequest, SaveReply>) {}

  static start(workers?: number): ImageSaver {
    return new ImageSaver(WorkerPool.start(import.meta.url, WORKER_TAG, answer, workers));
  }

  /** checkAndSave on a worker. `data` is handed over (its memory moves to the worker): do not use it afterwards. */
  async save(data: Uint8Array, format: ImageFormat, dest: string, validation: ValidationMode): Promise<void> {
    // Only a buffer that owns its whole memory can move; a view into a bigger one (a socket read) is copied first.
    const owned = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : new Uint8Array(data);
    const reply = await this.pool.run({ data: owned, format, dest, validation }, [owned.buffer as ArrayBuffer]);
    if (reply.ok) return;
    if (reply.invalid !== undefined) throw new InvalidImage(reply.invalid);
    throw new RunError(reply.error ?? 'image worker error');
  }

  /** Stop the workers (they keep the process alive until then). Call it once every save has settled. */
  close(): Promise<void> {
    return this.pool.close();
  }
}
