// pixels.ts against transformers.js's own image processor: for SigLIP configs the pixel values must be the same
// float32 bits, on the generated images the embed tests use (JPEG and PNG scenes, grey and alpha PNGs, hidden
// products, up- and down-scaling, an image already at the model's size). Other configs stay with transformers.js.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, test } from 'vitest';
import { ensureGeneratedModel } from '../src/embed/generated-models.js';
import { hideBox, type RgbImage } from '../src/embed/hide.js';
import { decodeRgb } from '../src/embed/images.js';
import { pixelRecipe, toPixelValues } from '../src/embed/pixels.js';
import { patternImage } from './embed-fixtures.js';

const hf = await import('@huggingface/transformers');

const modelsDir = await mkdtemp(join(tmpdir(), 'ctl-pixels-'));
afterAll(() => rm(modelsDir, { recursive: true, force: true }));
/** The generated tiny model's processor config (SigLIP's), at another size and with overrides. */
const tinyConfig = JSON.parse(
  await readFile(join(await ensureGeneratedModel(modelsDir, 'tiny'), 'preprocessor_config.json'), 'utf8'),
);
const siglip = (size: number, over: Record<string, unknown> = {}) => ({
  ...tinyConfig,
  size: { height: size, width: size },
  ...over,
});

/** The images: decoded as `ctl embed` decodes them, some with a product hidden. */
async function images(): Promise<[string, RgbImage][]> {
  const grey = await sharp(await patternImage(3, 50, 70, 'png'))
    .greyscale()
    .png()
    .toBuffer();
  const alpha = await sharp(await patternImage(4, 33, 41, 'png'))
    .ensureAlpha(0.5)
    .png()
    .toBuffer();
  const scene = await decodeRgb(await patternImage(1, 400, 533, 'jpeg'));
  return [
    ['jpeg scene 400×533', scene],
    ['png product 40×48', await decodeRgb(await patternImage(100, 40, 48, 'png'))],
    ['grey png', await decodeRgb(grey)],
    ['png with alpha', await decodeRgb(alpha)],
    ['already 32×32', await decodeRgb(await patternImage(5, 32, 32, 'png'))],
    ['hide crop', hideBox(scene, [0.05, 0.1, 0.45, 0.9], 'crop').image],
    ['hide mask', hideBox(scene, [0.55, 0.2, 0.95, 0.8], 'mask').image],
    ['a 1-pixel-wide crop', hideBox(scene, [0.002, 0, 1, 1], 'crop').image],
  ];
}

async function processorValues(config: Record<string, unknown>, image: RgbImage): Promise<Float32Array> {
  const processor = new hf.SiglipImageProcessor(config);
  const { pixel_values } = await processor(new hf.RawImage(image.data, image.width, image.height, 3));
  return pixel_values.data as Float32Array;
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('pixel values (pixels.ts) = transformers.js SigLIP processor', () => {
  const configs: [string, Record<string, unknown>][] = [
    ['tiny (32 px, bicubic)', siglip(32)],
    ['ViT-B/16 (224 px, bicubic)', siglip(224)],
    [
      'bilinear, other mean/std',
      siglip(64, { resample: 2, image_mean: [0.48, 0.46, 0.41], image_std: [0.27, 0.26, 0.28] }),
    ],
    ['nearest, scalar mean/std', siglip(48, { resample: 0, image_mean: 0.5, image_std: 0.25 })],
    ['no normalise', siglip(32, { do_normalize: false })],
    ['no rescale', siglip(32, { do_rescale: false })],
    ['default rescale factor (1/255)', siglip(32, { rescale_factor: undefined })],
    ['non-square', { ...siglip(0), size: { height: 40, width: 24 } }],
  ];
  for (const [name, config] of configs)
    test(`${name}: bit-identical on every image`, async () => {
      const recipe = pixelRecipe('SiglipImageProcessor', config);
      expect(recipe).not.toBeNull();
      for (const [label, image] of await images()) {
        const want = await processorValues(config, image);
        const got = await toPixelValues(image, recipe!);
        expect(got.length, label).toBe(want.length);
        expect(bits(got).equals(bits(want)), label).toBe(true);
      }
    });

  test("the tiny model's config is SigLIP's: 32 px squash, bicubic, [-1, 1]", () => {
    expect(pixelRecipe('SiglipImageProcessor', tinyConfig)).toEqual({
      width: 32,
      height: 32,
      interpolator: 'bicubic',
      rescale: 1 / 255,
      mean: [0.5, 0.5, 0.5],
      std: [0.5, 0.5, 0.5],
    });
  });

  test('configs with steps pixels.ts does not take stay with transformers.js (null recipe)', () => {
    expect(pixelRecipe('CLIPImageProcessor', siglip(32))).toBeNull();
    expect(pixelRecipe('SiglipImageProcessor', siglip(32, { do_convert_rgb: false }))).toBeNull();
    expect(pixelRecipe('SiglipImageProcessor', { ...siglip(32), size: { shortest_edge: 32 } })).toBeNull();
    expect(pixelRecipe('SiglipImageProcessor', siglip(32, { do_center_crop: true, crop_size: 32 }))).toBeNull();
    expect(pixelRecipe('SiglipImageProcessor', siglip(32, { do_pad: true }))).toBeNull();
    expect(pixelRecipe('SiglipImageProcessor', siglip(32, { resample: 1 }))).toBeNull(); // lanczos: sharp resize
    expect(pixelRecipe('SiglipImageProcessor', siglip(32, { do_normalize: true, image_mean: [0.5] }))).toBeNull();
  });
});
