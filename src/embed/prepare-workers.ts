// Preparing images on worker threads (one per core): read, decode, hide the product, and, for a processor config
// `pixels.ts` reproduces, resize and normalise. The main thread is then left to batch and run the model.
import type { RgbImage } from './hide.js';
import { ImageProblem, loadJobImage, type ImageJob, type ProblemReason } from './images.js';
import { toPixelValues, type PixelRecipe } from './pixels.js';
import { serveRequests, WorkerPool } from '../util/worker-pool.js';

interface PrepareRequest {
  job: ImageJob;
  /** Null: stop at the decoded image (the model's processor runs on the main thread). */
  recipe: PixelRecipe | null;
}

/** A prepared job: pixel values when there was a recipe, else the decoded (and hidden) image. */
export type PreparedImage = { pixels: Float32Array; fellBack: boolean } | { image: RgbImage; fellBack: boolean };

type PrepareReply = { ok: true; prepared: PreparedImage } | { ok: false; reason: ProblemReason; message: string };

const WORKER_TAG = 'ctl-embed-prepare';

async function answer({ job, recipe }: PrepareRequest): Promise<PrepareReply> {
  try {
    const { image, fellBack } = await loadJobImage(job);
    const prepared = recipe ? { pixels: await toPixelValues(image, recipe), fellBack } : { image, fellBack };
    return { ok: true, prepared };
  } catch (err) {
    if (err instanceof ImageProblem) return { ok: false, reason: err.reason, message: err.message };
    throw err;
  }
}

// Pixel values are ours alone and move back; a decoded image may sit in memory sharp shares, and is copied.
serveRequests(WORKER_TAG, answer, (reply) =>
  reply.ok && 'pixels' in reply.prepared ? [reply.prepared.pixels.buffer as ArrayBuffer] : [],
);

export class ImagePreparer {
  private constructor(
    private readonly pool: WorkerPool<PrepareRequest, PrepareReply>,
    private readonly recipe: PixelRecipe | null,
  ) {}

  static start(recipe: PixelRecipe | null, workers?: number): ImagePreparer {
    return new ImagePreparer(WorkerPool.start(import.meta.url, WORKER_TAG, answer, workers), recipe);
  }

  /** Throws an ImageProblem for an image that cannot be used. */
  async prepare(job: ImageJob): Promise<PreparedImage> {
    const reply = await this.pool.run({ job, recipe: this.recipe });
    if (!reply.ok) throw new ImageProblem(reply.reason, reply.message);
    return reply.prepared;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
