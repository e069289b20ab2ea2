// Decoded RGB → the model's pixel values, as transformers.js's image processor makes them for a SigLIP-style
// config (squash-resize to a fixed size, rescale, normalise, HWC → CHW), but in one pass and callable on any
// thread. Same sharp call for the resize, same float32 rounding at each step: bit-identical to the processor.
// (sharp's resize() would be cheaper, but it filters when shrinking where affine() does not: other pixel values.)
import sharp from 'sharp';
import type { RgbImage } from './hide.js';

/** The steps of a processor config this module reproduces (`pixelRecipe` says whether a config is one). */
export interface PixelRecipe {
  width: number;
  height: number;
  interpolator: 'nearest' | 'bilinear' | 'bicubic';
  /** Multiplies each 0..255 value, or null to skip. */
  rescale: number | null;
  /** Per channel, or null to skip normalising. */
  mean: number[] | null;
  std: number[] | null;
}

/** PIL's resample codes, as transformers.js maps them to sharp's affine interpolators. */
const INTERPOLATORS: Record<string, PixelRecipe['interpolator']> = {
  0: 'nearest',
  2: 'bilinear',
  3: 'bicubic',
  nearest: 'nearest',
  bilinear: 'bilinear',
  bicubic: 'bicubic',
};

/** Options whose steps this module does not take: a config that sets any of them stays with transformers.js. */
const UNSUPPORTED = [
  'do_thumbnail',
  'do_center_crop',
  'do_crop_margin',
  'do_pad',
  'do_flip_channel_order',
  'do_convert_grayscale',
  'keep_aspect_ratio',
  'size_divisibility',
  'size_divisor',
];

const perChannel = (v: unknown): number[] | null =>
  Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number')
    ? v
    : typeof v === 'number'
      ? [v, v, v]
      : null;

/**
 * The recipe for a SigLIP image processor's config, or null for anything else (another processor class, or an
 * option this module does not reproduce). Defaults as transformers.js's ImageProcessor constructor sets them.
 */
export function pixelRecipe(processorClass: string, config: Record<string, unknown>): PixelRecipe | null {
  if (processorClass !== 'SiglipImageProcessor') return null;
  if (UNSUPPORTED.some((key) => config[key])) return null;
  if (config.do_convert_rgb === false || config.do_resize === false) return null;
  const size = (config.size ?? config.image_size) as { width?: unknown; height?: unknown } | undefined;
  const { width, height } = size ?? {};
  if (!Number.isInteger(width) || !Number.isInteger(height) || Object.keys(size!).length !== 2) return null;
  const interpolator = INTERPOLATORS[String(config.resample ?? 2)];
  if (!interpolator) return null;
  const rescale = config.do_rescale === false ? null : ((config.rescale_factor as number | undefined) ?? 1 / 255);
  let mean = null;
  let std = null;
  if (config.do_normalize) {
    mean = perChannel(config.image_mean ?? config.mean);
    std = perChannel(config.image_std ?? config.std);
    if (!mean || !std) return null;
  }
  return { width: width as number, height: height as number, interpolator, rescale, mean, std };
}

/** Pixel values [3, height, width] of an RGB image. */
export async function toPixelValues(image: RgbImage, recipe: PixelRecipe): Promise<Float32Array> {
  if (image.channels !== 3) throw new Error(`expected 3 channels, got ${image.channels}`);
  const { width, height } = recipe;
  let rgb = image.data;
  if (image.width !== width || image.height !== height)
    rgb = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
      .affine([width / image.width, 0, 0, height / image.height], { interpolator: recipe.interpolator })
      .raw()
      .toBuffer();
  if (rgb.length !== width * height * 3)
    throw new Error(`resize gave ${rgb.length} bytes, expected ${width}×${height}×3`);
  // Each step rounds to float32 as the processor's Float32Array does between its passes.
  const f = Math.fround;
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const mean = recipe.mean?.[c];
    const std = recipe.std?.[c];
    for (let p = 0; p < plane; p++) {
      let v = rgb[p * 3 + c];
      if (recipe.rescale !== null) v = f(recipe.rescale * v);
      if (mean !== undefined) v = (v - mean) / std!;
      out[c * plane + p] = v;
    }
  }
  return out;
}
