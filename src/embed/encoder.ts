// What the pipeline needs from an embedding provider: turn a job into something ready to embed (decode,
// hide, preprocess: runs ahead of the model, concurrently), then embed a batch of those.
import type { ImageJob, ImageProblem } from './images.js';

/** Where vectors come from: the model run here (onnxruntime), or an embedding service over HTTP. */
export const PROVIDERS = ['local', 'http'] as const;
export type Provider = (typeof PROVIDERS)[number];

/** Every prepared item says whether `--hide crop` had to mask instead (the box covered the whole scene). */
export interface PreparedBase {
  fellBack: boolean;
}

export interface Encoder<Prepared extends PreparedBase = PreparedBase> {
  /** Model id recorded in the store (and the store folder's name). */
  readonly model: string;
  readonly revision?: string;
  /** A local model folder's absolute path, recorded in the store. */
  readonly location?: string;
  /** What shaped the vectors besides the model; recorded in the store's meta.json and checked on resume. */
  readonly preprocessing: Record<string, unknown>;
  /** Where it runs, for the summary ("cpu", "cuda", "http://..."). */
  readonly device: string;
  /** Throws an ImageProblem for an image that cannot be used; anything else is fatal. */
  prepare(job: ImageJob): Promise<Prepared>;
  /** One L2-normalised float32 vector per item, or the problem that kept an item from being embedded. */
  embed(batch: Prepared[], jobs: ImageJob[]): Promise<(Float32Array | ImageProblem)[]>;
  dispose(): Promise<void>;
}
