// Uploads: the photo's type from its first bytes, and the run's image model (the one its embeddings were made
// with, through the project's local encoder) to embed it. A run trained on synthetic embeddings has no image
// model: uploads are off and the page offers dataset scenes instead.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { EmbeddingStore } from '../data/store/embeddings.js';
import { SYNTH_MODEL, workdirPaths } from '../data/workdir.js';
import type { Encoder } from '../embed/encoder.js';
import { ImageProblem } from '../embed/images.js';
import { firstLineOf, InputError } from '../util/errors.js';
import { DeviceUnavailable, type Device } from '../embed/device.js';
import { loadLocalEncoder } from '../embed/local-encoder.js';
import type { Dtype } from '../embed/dtype.js';
import { sniffFormat } from '../data/image-format.js';
import { isGeneratedPreset } from '../embed/generated-models.js';
import { checkModelFiles, resolveModel } from '../embed/model-source.js';
import { isDirectory } from '../util/fs.js';

export const MAX_UPLOAD_BYTES = 10 * 1024 * 1024;

/** An upload the server cannot use: wrong type (415) or too large (413). */
class UploadError extends Error {
  constructor(
    readonly statusCode: 413 | 415,
    message: string,
  ) {
    super(message);
    this.name = 'UploadError';
  }
}

export interface UploadEmbedder {
  model: string;
  device: string;
  /** The photo's L2-normalised image embedding. Throws UploadError for a file that is not a usable image. */
  embed(bytes: Uint8Array): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/** The largest upload decoded (the towers see it at a few hundred pixels; phone photos are up to ~50 MP). */
const MAX_UPLOAD_PIXELS = 50_000_000;

export type UploadSupport = { enabled: true; embedder: UploadEmbedder } | { enabled: false; reason: string };

/**
 * Open the image model a run's embeddings were made with, from the workdir (never the network). The dtype and
 * preprocessing are the store's, so an upload is embedded as the dataset's images were (one image a call: its bits
 * may differ from a batched row's by ~1e-8).
 */
export async function openUploadEmbedder(workdir: string, model: string, device: Device): Promise<UploadSupport> {
  if (model === SYNTH_MODEL)
    return {
      enabled: false,
      reason: 'this run was trained on synthetic embeddings (no image model): pick one of the dataset scenes',
    };
  // An upload passes through a file in the temporary folder: one that cannot be written would fail every upload.
  const scratchProblem = await mkdtemp(join(tmpdir(), 'ctl-upload-'))
    .then((dir) => rm(dir, { recursive: true, force: true }))
    .then(
      () => null,
      (err: Error) => `the temporary folder cannot be written (${firstLineOf(err)}): set TMPDIR to a writable folder`,
    );
  if (scratchProblem !== null) {
    if (device === 'cuda') throw new InputError(`--device cuda: uploads are off: ${scratchProblem}`);
    return { enabled: false, reason: `${scratchProblem}; pick one of the dataset scenes` };
  }
  const paths = workdirPaths(workdir);
  try {
    const store = await EmbeddingStore.open(paths.embeddings(model, 'products'));
    const dtype = (store.meta.preprocessing?.dtype as Dtype | undefined) ?? 'fp32';
    // A hub model at the revision the store was embedded with (generated presets carry their own).
    const revision = isGeneratedPreset(model) ? undefined : store.meta.revision;
    // A local folder where the store says it was, while it is there (a moved folder, a workdir copied to another
    // machine, or a store of an earlier version: looked for by its name, in the current folder).
    const { location } = store.meta;
    const where = location !== undefined && (await isDirectory(location)) ? location : model;
    const source = await resolveModel(where, { modelsDir: paths.modelsDir, revision });
    await checkModelFiles(source, dtype, { modelsDir: paths.modelsDir, offline: true });
    const encoder = await loadLocalEncoder(source, { device, dtype, offline: true, modelsDir: paths.modelsDir });
    return { enabled: true, embedder: uploadEmbedder(encoder as Encoder) };
  } catch (err) {
    // Uploads on the GPU were asked for by name: not having them is an error, not a fallback.
    if (device === 'cuda')
      throw err instanceof DeviceUnavailable
        ? err
        : new InputError(
            `--device cuda: the image model '${model}' for uploads could not be opened offline (${firstLineOf(err)})`,
          );
    return {
      enabled: false,
      reason: `the image model '${model}' could not be opened offline (${(err as Error).message}): pick one of the dataset scenes`,
    };
  }
}

function uploadEmbedder(encoder: Encoder): UploadEmbedder {
  return {
    model: encoder.model,
    device: encoder.device,
    async embed(bytes) {
      // JPEG, PNG or WebP by magic bytes; anything else is refused before decoding.
      const format = sniffFormat(bytes);
      if (!format || format === 'gif') throw new UploadError(415, 'the upload is not a JPEG, PNG or WebP image');
      // A few kilobytes of PNG can declare a canvas of gigabytes: the header's size is checked before decoding.
      const { width = 0, height = 0 } = await sharp(bytes, { limitInputPixels: false }) // the header only: any size
        .metadata()
        .catch(() => ({ width: 0, height: 0 })); // an unreadable header: the decode below says why
      if (width * height > MAX_UPLOAD_PIXELS)
        throw new UploadError(
          413,
          `the image is ${width}×${height} pixels, over the ${MAX_UPLOAD_PIXELS / 1e6} megapixel upload limit`,
        );
      // The encoder reads its jobs from files, as the embed stage does: the upload goes through the same path. A
      // folder per upload, removed when answered: none lives between uploads for a /tmp cleaner to take away, or for
      // a killed server to leave behind.
      const scratch = await mkdtemp(join(tmpdir(), 'ctl-upload-'));
      const file = join(scratch, 'upload');
      try {
        await writeFile(file, bytes);
        const job = { id: 'upload', sig: 'upload', file, upright: true };
        const [vector] = await encoder.embed([await encoder.prepare(job)], [job]);
        if (vector instanceof ImageProblem) throw vector;
        return vector;
      } catch (err) {
        if (err instanceof ImageProblem) throw new UploadError(415, `the image could not be decoded (${err.message})`);
        throw err;
      } finally {
        await rm(scratch, { recursive: true, force: true });
      }
    },
    dispose: () => encoder.dispose(),
  };
}
