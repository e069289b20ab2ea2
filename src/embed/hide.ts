// Hiding a product in its scene (`--scene-view hide-product`), so a model must complete the look from the rest of
// the outfit instead of finding the item itself. Pure box arithmetic plus pixel painting on decoded RGB.
import type { BBox } from '../data/types.js';

export const HIDE_MODES = ['crop', 'mask'] as const;
export type HideMode = (typeof HIDE_MODES)[number];

/** A pixel rectangle: columns [left, left + width), rows [top, top + height). */
export interface PixelRect {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Decoded pixels, row-major, interleaved channels. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/**
 * The pixels a normalised bbox touches, rounded outwards (a partly covered pixel counts as covered) and clipped
 * to the image. Empty (width or height 0) when the box lies outside the image.
 */
export function bboxToPixels(bbox: BBox, width: number, height: number): PixelRect {
  const clamp = (v: number, max: number) => Math.min(max, Math.max(0, v));
  const left = clamp(Math.floor(bbox[0] * width), width);
  const top = clamp(Math.floor(bbox[1] * height), height);
  const right = clamp(Math.ceil(bbox[2] * width), width);
  const bottom = clamp(Math.ceil(bbox[3] * height), height);
  return { left, top, width: Math.max(0, right - left), height: Math.max(0, bottom - top) };
}

/**
 * The largest rectangle of the image that does not overlap `box`. Two axis-aligned rectangles that do not overlap
 * are separated left/right or above/below, so the answer is the largest of the four strips beside the box (ties go
 * to the first of left, right, top, bottom). Null when the box covers the whole image.
 */
export function largestRegionOutside(box: PixelRect, width: number, height: number): PixelRect | null {
  if (box.width === 0 || box.height === 0) return { left: 0, top: 0, width, height };
  const strips: PixelRect[] = [
    { left: 0, top: 0, width: box.left, height },
    { left: box.left + box.width, top: 0, width: width - box.left - box.width, height },
    { left: 0, top: 0, width, height: box.top },
    { left: 0, top: box.top + box.height, width, height: height - box.top - box.height },
  ];
  let best: PixelRect | null = null;
  for (const s of strips)
    if (s.width > 0 && s.height > 0 && (!best || s.width * s.height > best.width * best.height)) best = s;
  return best;
}

/** A copy of the pixels inside `rect`. */
export function cropImage(image: RgbImage, rect: PixelRect): RgbImage {
  const { channels } = image;
  const rowBytes = rect.width * channels;
  const data = new Uint8Array(rect.height * rowBytes);
  for (let y = 0; y < rect.height; y++) {
    const from = ((rect.top + y) * image.width + rect.left) * channels;
    data.set(image.data.subarray(from, from + rowBytes), y * rowBytes);
  }
  return { data, width: rect.width, height: rect.height, channels };
}

/** A copy of the image with `rect` painted in the image's mean colour (per channel, over the whole image). */
export function maskImage(image: RgbImage, rect: PixelRect): RgbImage {
  const { channels, width } = image;
  const sums = new Float64Array(channels);
  for (let i = 0; i < image.data.length; i++) sums[i % channels] += image.data[i];
  const pixels = image.width * image.height;
  const mean = Array.from(sums, (s) => Math.round(s / Math.max(1, pixels)));
  const data = Uint8Array.from(image.data);
  for (let y = rect.top; y < rect.top + rect.height; y++)
    for (let x = rect.left; x < rect.left + rect.width; x++)
      for (let c = 0; c < channels; c++) data[(y * width + x) * channels + c] = mean[c];
  return { ...image, data };
}

/**
 * The scene with the product's box hidden. `crop` keeps the largest region clear of the box, and falls back to
 * `mask` when the box covers the whole image (reported as `fellBack`).
 */
export function hideBox(image: RgbImage, bbox: BBox, mode: HideMode): { image: RgbImage; fellBack: boolean } {
  const box = bboxToPixels(bbox, image.width, image.height);
  if (mode === 'crop') {
    const region = largestRegionOutside(box, image.width, image.height);
    if (region) return { image: cropImage(image, region), fellBack: false };
    return { image: maskImage(image, box), fellBack: true };
  }
  return { image: maskImage(image, box), fellBack: false };
}
