// Synthetic images: they decode with sharp at the documented sizes, are deterministic, show the product where its
// box says, and a second run keeps what is there.
import { readdir, readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeRaster, paintProduct, paintScene, writeSyntheticImages } from '../src/data/synth/images.js';
import { workdirPaths } from '../src/data/workdir.js';
import { removeTempWorkdirs, tempWorkdir, world } from './synth-fixtures.js';

afterAll(removeTempWorkdirs);

const small = () => world({ scenes: 8, products: 12, seed: 9 });

describe('synthetic images', () => {
  it('writes every product and scene as a decodable JPEG of 96..224 px, named <sig>.jpg', async () => {
    const workdir = await tempWorkdir();
    const w = small();
    const report = await writeSyntheticImages(workdir, w, 'jpeg', 2);
    expect(report.written).toBe(w.products.length + w.scenes.length);
    const paths = workdirPaths(workdir);
    expect((await readdir(paths.images('products'))).sort()).toEqual(w.products.map((p) => `${p.sig}.jpg`).sort());
    for (const p of w.products) {
      const meta = await sharp(paths.imageFile('products', p.sig)).metadata();
      expect(meta.format).toBe('jpeg');
      expect(meta.width).toBe(meta.height);
      expect(meta.width).toBeGreaterThanOrEqual(96);
      expect(meta.width).toBeLessThanOrEqual(224);
    }
    for (const s of w.scenes) {
      const meta = await sharp(paths.imageFile('scenes', s.sig)).metadata();
      expect(meta.format).toBe('jpeg');
      expect(meta.height).toBe(224); // fashion scenes are portrait
      expect(meta.width).toBeGreaterThanOrEqual(96);
      expect(meta.width).toBeLessThan(224);
    }
    // A second run finds everything in place.
    const again = await writeSyntheticImages(workdir, w, 'jpeg', 2);
    expect(again).toEqual({ written: 0, skipped: report.written, bytes: 0 });
    // Another format is redone.
    const png = await writeSyntheticImages(workdir, w, 'png', 2);
    expect(png.written).toBe(report.written);
    expect((await sharp(paths.imageFile('scenes', w.scenes[0].sig)).metadata()).format).toBe('png');
  });

  it('is deterministic, byte for byte', async () => {
    const w = small();
    const a = await encodeRaster(paintScene(w, w.scenes[0]), 'jpeg');
    const b = await encodeRaster(paintScene(w, w.scenes[0]), 'jpeg');
    expect(a.equals(b)).toBe(true);
    const p = await encodeRaster(paintProduct(w, w.products[0]), 'png');
    expect(p.equals(await encodeRaster(paintProduct(w, w.products[0]), 'png'))).toBe(true);
    const other = world({ scenes: 8, products: 12, seed: 10 });
    expect(p.equals(await encodeRaster(paintProduct(other, other.products[0]), 'png'))).toBe(false);
  });

  it("paints a scene's product inside its box in the product's own colours", async () => {
    const w = small();
    // The biggest item of any scene, so its box holds many pixels.
    const [scene, item] = w.scenes
      .flatMap((s) => s.items.map((i) => [s, i] as const))
      .sort((a, b) => area(b[1].bbox) - area(a[1].bbox))[0];
    const sceneRaster = paintScene(w, scene);
    const productRaster = paintProduct(w, w.products[item.product]);
    const productColours = new Set<number>();
    for (let i = 0; i < productRaster.data.length; i += 3) productColours.add(rgb(productRaster.data, i));
    const [l, t, r, b] = item.bbox;
    let inside = 0;
    let matching = 0;
    for (let y = Math.ceil(t * sceneRaster.height); y < Math.floor(b * sceneRaster.height); y++)
      for (let x = Math.ceil(l * sceneRaster.width); x < Math.floor(r * sceneRaster.width); x++) {
        inside++;
        if (productColours.has(rgb(sceneRaster.data, (y * sceneRaster.width + x) * 3))) matching++;
      }
    expect(inside).toBeGreaterThan(50);
    expect(matching / inside).toBeGreaterThan(0.3);
  });

  it('encodes PNG when asked, still under the layout name', async () => {
    const workdir = await tempWorkdir();
    const w = small();
    await writeSyntheticImages(workdir, w, 'png', 2);
    const bytes = await readFile(workdirPaths(workdir).imageFile('products', w.products[0].sig));
    expect([...bytes.subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);
  });
});

const area = (b: number[]) => (b[2] - b[0]) * (b[3] - b[1]);
const rgb = (data: Uint8Array, i: number) => (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
