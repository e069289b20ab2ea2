// Images for a synthetic world (`ctl data synth --images`): each product is its category's silhouette on a plain
// background, coloured and textured by its style (plus a little of its own); each scene is a backdrop (a person
// for fashion) and clutter in tints of its style's palette, like a styled shoot, and its products painted at their
// boxes with the same colours and textures. So an image embedding model sees the planted structure even at a few
// dozen pixels, where the small items blur away, and hiding a product's box really hides it.
// Painted into raw RGB buffers here, encoded by sharp. Every image is a function of its signature and the world.
import { open, mkdir } from 'node:fs/promises';
import pLimit from 'p-limit';
import sharp from 'sharp';
import type { SynthProduct, SynthScene, SynthWorld } from './world.js';
import type { Silhouette } from './taxonomy.js';
import { Random } from '../../util/random.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { Progress } from '../../util/progress.js';
import { workdirPaths } from '../workdir.js';
import { sniffFormat, type SynthImageFormat } from '../image-format.js';

type RGB = [number, number, number];

/** An RGB raster. */
class Raster {
  readonly data: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
    fill: RGB,
  ) {
    this.data = new Uint8Array(width * height * 3);
    for (let i = 0; i < this.data.length; i += 3) {
      this.data[i] = fill[0];
      this.data[i + 1] = fill[1];
      this.data[i + 2] = fill[2];
    }
  }

  /** Paint `paint(u, v)` over the pixels of a box (pixel coordinates) where `mask(u, v)`; u, v in 0..1 of the box. */
  fillBox(x0: number, y0: number, x1: number, y1: number, mask: Mask, paint: (u: number, v: number) => RGB): void {
    const w = Math.max(1e-6, x1 - x0);
    const h = Math.max(1e-6, y1 - y0);
    const ya = Math.max(0, Math.floor(y0));
    const yb = Math.min(this.height, Math.ceil(y1));
    const xa = Math.max(0, Math.floor(x0));
    const xb = Math.min(this.width, Math.ceil(x1));
    for (let y = ya; y < yb; y++) {
      const v = (y + 0.5 - y0) / h;
      for (let x = xa; x < xb; x++) {
        const u = (x + 0.5 - x0) / w;
        if (u < 0 || u > 1 || v < 0 || v > 1 || !mask(u, v)) continue;
        const colour = paint(u, v);
        const o = (y * this.width + x) * 3;
        this.data[o] = colour[0];
        this.data[o + 1] = colour[1];
        this.data[o + 2] = colour[2];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Silhouettes: masks over the unit box of an item.

type Mask = (u: number, v: number) => boolean;

const rect = (u: number, v: number, x0: number, y0: number, x1: number, y1: number) =>
  u >= x0 && u <= x1 && v >= y0 && v <= y1;
const ellipse = (u: number, v: number, cx: number, cy: number, rx: number, ry: number) =>
  ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2 <= 1;
const ring = (u: number, v: number, cx: number, cy: number, r0: number, r1: number) => {
  const d = Math.hypot(u - cx, v - cy);
  return d >= r0 && d <= r1;
};
/** Between two x-ranges that vary linearly from top (y0) to bottom (y1). */
const trapezoid = (u: number, v: number, y0: number, y1: number, topHalf: number, bottomHalf: number) => {
  if (v < y0 || v > y1) return false;
  const half = topHalf + ((v - y0) / (y1 - y0)) * (bottomHalf - topHalf);
  return Math.abs(u - 0.5) <= half;
};

const SILHOUETTES: Record<Silhouette, Mask> = {
  shoe: (u, v) =>
    rect(u, v, 0.08, 0.55, 0.95, 0.85) || rect(u, v, 0.08, 0.15, 0.42, 0.6) || ellipse(u, v, 0.8, 0.7, 0.18, 0.16),
  top: (u, v) => rect(u, v, 0.25, 0.12, 0.75, 1) || trapezoid(u, v, 0.12, 0.45, 0.3, 0.48),
  pants: (u, v) => rect(u, v, 0.18, 0, 0.82, 0.22) || rect(u, v, 0.18, 0.2, 0.48, 1) || rect(u, v, 0.52, 0.2, 0.82, 1),
  bag: (u, v) => rect(u, v, 0.08, 0.38, 0.92, 0.98) || (v < 0.42 && ring(u, v, 0.5, 0.42, 0.2, 0.3)),
  coat: (u, v) => (rect(u, v, 0.2, 0.05, 0.8, 1) && Math.abs(u - 0.5) > 0.015) || trapezoid(u, v, 0.05, 0.8, 0.3, 0.5),
  sunglasses: (u, v) =>
    ellipse(u, v, 0.25, 0.5, 0.22, 0.42) || ellipse(u, v, 0.75, 0.5, 0.22, 0.42) || rect(u, v, 0.4, 0.3, 0.6, 0.42),
  shorts: (u, v) =>
    rect(u, v, 0.15, 0, 0.85, 0.4) || rect(u, v, 0.15, 0.35, 0.47, 1) || rect(u, v, 0.53, 0.35, 0.85, 1),
  skirt: (u, v) => trapezoid(u, v, 0, 1, 0.28, 0.5),
  earring: (u, v) => ring(u, v, 0.5, 0.18, 0.08, 0.17) || ellipse(u, v, 0.5, 0.68, 0.35, 0.3),
  necklace: (u, v) => (v > 0.1 && ring(u, v, 0.5, 0.1, 0.38, 0.48)) || ellipse(u, v, 0.5, 0.78, 0.14, 0.2),
  chair: (u, v) =>
    rect(u, v, 0.15, 0, 0.35, 0.6) ||
    rect(u, v, 0.15, 0.5, 0.9, 0.62) ||
    rect(u, v, 0.15, 0.6, 0.25, 1) ||
    rect(u, v, 0.8, 0.6, 0.9, 1),
  stool: (u, v) =>
    ellipse(u, v, 0.5, 0.08, 0.45, 0.08) ||
    rect(u, v, 0.2, 0.1, 0.3, 1) ||
    rect(u, v, 0.7, 0.1, 0.8, 1) ||
    rect(u, v, 0.2, 0.6, 0.8, 0.66),
  sofa: (u, v) =>
    rect(u, v, 0.05, 0.1, 0.95, 0.55) ||
    rect(u, v, 0, 0.4, 0.12, 0.9) ||
    rect(u, v, 0.88, 0.4, 1, 0.9) ||
    rect(u, v, 0.1, 0.5, 0.9, 0.85),
  faucet: (u, v) =>
    rect(u, v, 0.35, 0.3, 0.55, 1) ||
    rect(u, v, 0.35, 0.2, 0.95, 0.35) ||
    rect(u, v, 0.8, 0.2, 0.95, 0.5) ||
    ellipse(u, v, 0.45, 0.15, 0.2, 0.08),
  vase: (u, v) => ellipse(u, v, 0.5, 0.65, 0.4, 0.35) || rect(u, v, 0.35, 0.05, 0.65, 0.4),
  mirror: (u, v) => ellipse(u, v, 0.5, 0.5, 0.5, 0.5) && !ellipse(u, v, 0.5, 0.5, 0.38, 0.4),
  rug: (u, v) => rect(u, v, 0, 0, 1, 1) && !(rect(u, v, 0.1, 0.15, 0.9, 0.85) && !rect(u, v, 0.2, 0.3, 0.8, 0.7)),
  pillow: (u, v) => ellipse(u, v, 0.5, 0.5, 0.5, 0.5) || rect(u, v, 0.12, 0.12, 0.88, 0.88),
  curtain: (u, v) => rect(u, v, 0, 0, 1, 1) && Math.sin(u * 6 * Math.PI) > -0.7,
  lamp: (u, v) =>
    trapezoid(u, v, 0, 0.4, 0.22, 0.45) || rect(u, v, 0.46, 0.4, 0.54, 0.92) || rect(u, v, 0.25, 0.9, 0.75, 1),
  'ceiling-light': (u, v) =>
    rect(u, v, 0.48, 0, 0.52, 0.4) || trapezoid(u, v, 0.4, 0.85, 0.08, 0.5) || ellipse(u, v, 0.5, 0.88, 0.12, 0.1),
};

// ---------------------------------------------------------------------------------------------------------------
// Colours and textures: a style fixes a palette and a pattern; a product varies them a little.

type Texture = 'solid' | 'stripes' | 'dots' | 'checks' | 'gradient';
const TEXTURES: Texture[] = ['solid', 'stripes', 'dots', 'checks', 'gradient'];

interface Look {
  base: RGB;
  accent: RGB;
  texture: Texture;
  frequency: number;
  angle: number;
}

function hsl(h: number, s: number, l: number): RGB {
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => {
    const k = (n + h * 12) % 12;
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

interface StylePalette {
  hue: number;
  accentHue: number;
  saturation: number;
  lightness: number;
  texture: Texture;
  frequency: number;
}

function stylePalette(world: SynthWorld, style: number): StylePalette {
  const r = new Random(`synth-style/${world.options.seed}/${style}`);
  return {
    hue: r.uniform(),
    accentHue: r.uniform(),
    saturation: r.range(0.35, 0.9),
    lightness: r.range(0.3, 0.65),
    texture: r.pick(TEXTURES),
    frequency: r.range(3, 9),
  };
}

function productLook(world: SynthWorld, product: SynthProduct): Look {
  const palette = stylePalette(world, product.style);
  const r = new Random(`synth-look/${product.sig}`);
  const categoryShift = (product.category / world.taxonomy.length - 0.5) * 0.16;
  const hue = (palette.hue + categoryShift + r.range(-0.03, 0.03) + 1) % 1;
  const lightness = Math.min(0.85, Math.max(0.15, palette.lightness + r.range(-0.08, 0.08)));
  return {
    base: hsl(hue, palette.saturation, lightness),
    accent: hsl(palette.accentHue, palette.saturation * 0.8, Math.min(0.9, lightness + 0.25)),
    texture: r.bernoulli(0.85) ? palette.texture : r.pick(TEXTURES),
    frequency: palette.frequency * r.range(0.8, 1.25),
    angle: r.range(0, Math.PI),
  };
}

function painter(look: Look): (u: number, v: number) => RGB {
  const { base, accent, frequency: f } = look;
  const cos = Math.cos(look.angle);
  const sin = Math.sin(look.angle);
  // A gradient in 32 steps, computed once, so painting a pixel allocates nothing.
  const steps: RGB[] = Array.from({ length: 33 }, (_, i) => {
    const t = i / 32;
    return [0, 1, 2].map((c) => Math.round(base[c] + (accent[c] - base[c]) * t)) as RGB;
  });
  const mix = (t: number): RGB => steps[Math.max(0, Math.min(32, Math.round(t * 32)))];
  switch (look.texture) {
    case 'solid':
      return () => base;
    case 'stripes':
      return (u, v) => (Math.floor((u * cos + v * sin) * f * 2) % 2 === 0 ? base : accent);
    case 'dots':
      return (u, v) => (Math.hypot(((u * f) % 1) - 0.5, ((v * f) % 1) - 0.5) < 0.22 ? accent : base);
    case 'checks':
      return (u, v) => ((Math.floor(u * f) + Math.floor(v * f)) % 2 === 0 ? base : accent);
    case 'gradient':
      return (u, v) => mix(0.5 + 0.7 * ((u - 0.5) * cos + (v - 0.5) * sin));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Product and scene images.

/** A product shot: its silhouette centred on a plain light background; 96..224 px square. */
export function paintProduct(world: SynthWorld, product: SynthProduct): Raster {
  const r = new Random(`synth-product-image/${product.sig}`);
  const size = 96 + 16 * r.int(9);
  const tint = r.range(0.9, 1);
  const raster = new Raster(size, size, [Math.round(245 * tint), Math.round(244 * tint), Math.round(240 * tint)]);
  const margin = size * r.range(0.08, 0.16);
  const mask = SILHOUETTES[world.taxonomy[product.category].silhouette];
  raster.fillBox(margin, margin, size - margin, size - margin, mask, painter(productLook(world, product)));
  return raster;
}

/** A scene: backdrop, clutter, (a person), then its products at their boxes, back to front. */
export function paintScene(world: SynthWorld, scene: SynthScene): Raster {
  const r = new Random(`synth-scene-image/${scene.sig}`);
  const fashion = world.options.domain === 'fashion';
  const [width, height] = fashion ? [144 + 8 * r.int(4), 224] : [224, 144 + 8 * r.int(4)];
  const palette = stylePalette(world, scene.style);
  const wall = hsl((palette.hue + 0.5) % 1, 0.4, r.range(0.75, 0.92));
  const floor = hsl((palette.accentHue + 0.5) % 1, 0.45, r.range(0.45, 0.7));
  const raster = new Raster(width, height, wall);
  const horizon = height * r.range(0.7, 0.82);
  raster.fillBox(
    0,
    horizon,
    width,
    height,
    () => true,
    () => floor,
  );
  for (let i = 0, n = 3 + r.int(4); i < n; i++) {
    const w = width * r.range(0.05, 0.25);
    const h = height * r.range(0.05, 0.25);
    const x = r.range(-0.1, 1) * width;
    const y = r.range(-0.1, 1) * height;
    const hue = (r.bernoulli(0.5) ? palette.hue : palette.accentHue) + r.range(-0.04, 0.04) + 1;
    const colour = hsl(hue % 1, r.range(0.1, 0.6), r.range(0.3, 0.8));
    const shape: Mask = r.bernoulli(0.5) ? () => true : (u, v) => ellipse(u, v, 0.5, 0.5, 0.5, 0.5);
    raster.fillBox(x, y, x + w, y + h, shape, () => colour);
  }
  if (fashion) paintPerson(raster, r);
  const items = [...scene.items].sort(
    (a, b) =>
      world.taxonomy[world.products[a.product].category].z - world.taxonomy[world.products[b.product].category].z,
  );
  for (const item of items) {
    const product = world.products[item.product];
    const [left, top, right, bottom] = item.bbox;
    const mask = SILHOUETTES[world.taxonomy[product.category].silhouette];
    raster.fillBox(
      left * width,
      top * height,
      right * width,
      bottom * height,
      mask,
      painter(productLook(world, product)),
    );
  }
  return raster;
}

function paintPerson(raster: Raster, r: Random): void {
  const { width: W, height: H } = raster;
  const skin = hsl(r.range(0.04, 0.1), r.range(0.3, 0.6), r.range(0.3, 0.8));
  const paint = () => skin;
  raster.fillBox(W * 0.4, H * 0.05, W * 0.6, H * 0.21, (u, v) => ellipse(u, v, 0.5, 0.5, 0.5, 0.5), paint);
  raster.fillBox(W * 0.46, H * 0.19, W * 0.54, H * 0.25, () => true, paint);
  raster.fillBox(W * 0.3, H * 0.24, W * 0.7, H * 0.55, (u, v) => trapezoid(u, v, 0, 1, 0.5, 0.34), paint);
  raster.fillBox(
    W * 0.38,
    H * 0.5,
    W * 0.62,
    H * 0.92,
    (u, v) => rect(u, v, 0, 0, 0.45, 1) || rect(u, v, 0.55, 0, 1, 1),
    paint,
  );
}

export async function encodeRaster(raster: Raster, format: SynthImageFormat): Promise<Buffer> {
  const image = sharp(raster.data, { raw: { width: raster.width, height: raster.height, channels: 3 } });
  return format === 'png' ? image.png({ compressionLevel: 6 }).toBuffer() : image.jpeg({ quality: 90 }).toBuffer();
}

/** An image from an earlier run with the same format: complete files only exist (atomic writes), so its head is enough. */
async function alreadyWritten(path: string, format: SynthImageFormat): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return false;
  }
  try {
    const head = new Uint8Array(8);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return sniffFormat(head.subarray(0, bytesRead)) === format;
  } finally {
    await handle.close();
  }
}

export interface ImageReport {
  written: number;
  skipped: number;
  bytes: number;
}

/**
 * Write every product and scene image as workdir/images/{products,scenes}/<sig>.jpg (the layout's names; with
 * `png`, the files hold PNG bytes: decoders go by content). Images already there in that format are kept, so a
 * killed run resumes and a second run does no work.
 */
export async function writeSyntheticImages(
  workdir: string,
  world: SynthWorld,
  format: SynthImageFormat,
  concurrency = 4,
): Promise<ImageReport> {
  const paths = workdirPaths(workdir);
  await mkdir(paths.images('products'), { recursive: true });
  await mkdir(paths.images('scenes'), { recursive: true });
  const jobs: { path: string; paint: () => Raster }[] = [
    ...world.products.map((p) => ({ path: paths.imageFile('products', p.sig), paint: () => paintProduct(world, p) })),
    ...world.scenes.map((s) => ({ path: paths.imageFile('scenes', s.sig), paint: () => paintScene(world, s) })),
  ];
  const report: ImageReport = { written: 0, skipped: 0, bytes: 0 };
  const progress = new Progress('images', jobs.length, { unit: 'images' });
  const limit = pLimit(concurrency);
  await Promise.all(
    jobs.map((job) =>
      limit(async () => {
        if (await alreadyWritten(job.path, format)) report.skipped++;
        else {
          const bytes = await encodeRaster(job.paint(), format);
          await writeFileAtomic(job.path, bytes);
          report.written++;
          report.bytes += bytes.length;
        }
        progress.tick(1, `written ${report.written} kept ${report.skipped}`);
      }),
    ),
  );
  progress.finish();
  return report;
}
