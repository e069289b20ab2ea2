// Reading one image of a job from the workdir: file → decoded RGB (sharp, off the main thread) → product hidden
// when the job asks. Problems become an `ImageProblem` with a reason the summary can count and list.
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import type { BBox, Signature } from '../data/types.js';
import { hideBox, type HideMode, type RgbImage } from './hide.js';
import { firstLineOf } from '../util/errors.js';

/** One row to embed: an image file, and for hide-product rows the box to hide. */
export interface ImageJob {
  /** Row id in the store: a signature, or sceneProductKey(scene, product). */
  id: string;
  /** The signature of the image file (what `--shard` splits on). */
  sig: Signature;
  file: string;
  hide?: { bbox: BBox; mode: HideMode };
  /**
   * Turn the image upright by its EXIF orientation, as a browser shows it: for uploads (phone photos). Dataset
   * images are read as stored, as the reference's PIL reads them.
   */
  upright?: boolean;
}

/**
 * Why an image was skipped. The http provider's: `refused`, the service answered 4xx for it (asking again gives the
 * same); `service`, it failed after every retry (network errors, 429, 5xx: a re-run asks again).
 */
export type ProblemReason = 'missing' | 'undecodable' | 'refused' | 'service';

export class ImageProblem extends Error {
  constructor(
    readonly reason: ProblemReason,
    message: string,
  ) {
    super(message);
    this.name = 'ImageProblem';
  }
}

/** The file's bytes; a missing file is an ImageProblem (not downloaded, or removed). */
export async function readImageFile(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ImageProblem('missing', 'file not found');
    throw new ImageProblem('missing', (err as Error).message);
  }
}

/**
 * Decode to 8-bit RGB (grey and palette images expanded, alpha dropped, as PIL's convert('RGB') does); `upright`
 * applies the EXIF orientation.
 */
export async function decodeRgb(bytes: Uint8Array, upright = false): Promise<RgbImage> {
  try {
    const decoder = sharp(bytes, { failOn: 'truncated' });
    const { data, info } = await (upright ? decoder.rotate() : decoder)
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      width: info.width,
      height: info.height,
      channels: info.channels,
    };
  } catch (err) {
    throw new ImageProblem('undecodable', firstLineOf(err));
  }
}

/** Decoded, with the product hidden for hide-product jobs; `fellBack` when crop had to mask instead. */
export async function loadJobImage(job: ImageJob): Promise<{ image: RgbImage; fellBack: boolean }> {
  const image = await decodeRgb(await readImageFile(job.file), job.upright);
  if (!job.hide) return { image, fellBack: false };
  return hideBox(image, job.hide.bbox, job.hide.mode);
}

/** RGB pixels back to a JPEG (what the http provider sends for a hidden-product scene). */
export async function encodeJpeg(image: RgbImage, quality = 95): Promise<Buffer> {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels as 3 } })
    .jpeg({ quality })
    .toBuffer();
}
