import { describe, expect, test } from 'vitest';
import { bboxToPixels, cropImage, hideBox, largestRegionOutside, maskImage, type RgbImage } from '../src/embed/hide.js';

/** A w×h RGB image whose pixel (x, y) is [x, y, 7]. */
function coordImage(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([x, y, 7], (y * width + x) * 3);
  return { data, width, height, channels: 3 };
}

/** A box or region: `left, top, width, height` in pixels. */
const rect = (left: number, top: number, width: number, height: number) => ({ left, top, width, height });

const pixel = (img: RgbImage, x: number, y: number) =>
  Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

describe('bboxToPixels', () => {
  test('rounds outwards: a partly covered pixel is covered', () => {
    // 96×64: left 0.05*96 = 4.8 → 4, top 0.1*64 = 6.4 → 6, right 0.45*96 = 43.2 → 44, bottom 0.9*64 = 57.6 → 58.
    expect(bboxToPixels([0.05, 0.1, 0.45, 0.9], 96, 64)).toEqual({ left: 4, top: 6, width: 40, height: 52 });
  });
  test('exact edges stay exact', () => {
    expect(bboxToPixels([0.25, 0.5, 0.75, 1], 100, 10)).toEqual({ left: 25, top: 5, width: 50, height: 5 });
  });
  test('clips to the image and is empty outside it', () => {
    expect(bboxToPixels([-0.2, -0.1, 1.3, 0.5], 10, 10)).toEqual({ left: 0, top: 0, width: 10, height: 5 });
    expect(bboxToPixels([1.2, 0, 1.5, 1], 10, 10).width).toBe(0);
  });
});

describe('largestRegionOutside', () => {
  test('picks the largest of the four strips beside the box', () => {
    // Box x 4..44 of 96: right strip 52×64 beats left 4×64, top 96×6, bottom 96×6.
    expect(largestRegionOutside({ left: 4, top: 6, width: 40, height: 52 }, 96, 64)).toEqual(rect(44, 0, 52, 64));
    // A wide box at the top: the strip below wins.
    expect(largestRegionOutside({ left: 0, top: 0, width: 100, height: 30 }, 100, 100)).toEqual(rect(0, 30, 100, 70));
    // Box near the bottom-right: left strip 60×100 = 6000 vs top 100×55 = 5500.
    expect(largestRegionOutside({ left: 60, top: 55, width: 30, height: 40 }, 100, 100)).toEqual(rect(0, 0, 60, 100));
  });
  test('the region never overlaps the box', () => {
    for (let i = 0; i < 200; i++) {
      const w = 20 + (i % 17);
      const h = 15 + (i % 11);
      const left = i % w;
      const top = (i * 7) % h;
      const box = { left, top, width: Math.max(1, (i * 3) % (w - left)), height: Math.max(1, (i * 5) % (h - top)) };
      const r = largestRegionOutside(box, w, h);
      if (!r) continue;
      const separated =
        r.left + r.width <= box.left ||
        box.left + box.width <= r.left ||
        r.top + r.height <= box.top ||
        box.top + box.height <= r.top;
      expect(separated).toBe(true);
      expect(r.left >= 0 && r.top >= 0 && r.left + r.width <= w && r.top + r.height <= h).toBe(true);
    }
  });
  test('ties go to the first of left, right, top, bottom', () => {
    expect(largestRegionOutside({ left: 40, top: 0, width: 20, height: 100 }, 100, 100)).toEqual(rect(0, 0, 40, 100));
  });
  test('null when the box covers the image; the whole image when the box is empty', () => {
    expect(largestRegionOutside({ left: 0, top: 0, width: 10, height: 10 }, 10, 10)).toBeNull();
    expect(largestRegionOutside({ left: 3, top: 3, width: 0, height: 4 }, 10, 10)).toEqual(rect(0, 0, 10, 10));
  });
});

describe('crop and mask', () => {
  test('cropImage copies exactly the rectangle', () => {
    const img = coordImage(12, 9);
    const out = cropImage(img, { left: 5, top: 2, width: 4, height: 3 });
    expect([out.width, out.height]).toEqual([4, 3]);
    expect(pixel(out, 0, 0)).toEqual([5, 2, 7]);
    expect(pixel(out, 3, 2)).toEqual([8, 4, 7]);
  });
  test('maskImage paints the box with the image mean and leaves the rest', () => {
    const img = coordImage(10, 4); // mean x = 4.5 → 5 (rounded), mean y = 1.5 → 2
    const out = maskImage(img, { left: 2, top: 1, width: 3, height: 2 });
    expect(pixel(out, 2, 1)).toEqual([5, 2, 7]);
    expect(pixel(out, 4, 2)).toEqual([5, 2, 7]);
    expect(pixel(out, 5, 2)).toEqual(pixel(img, 5, 2));
    expect(pixel(out, 1, 1)).toEqual(pixel(img, 1, 1));
    expect(pixel(img, 2, 1)).toEqual([2, 1, 7]); // the input is untouched
  });
  test('hideBox crops, and masks when the box covers everything', () => {
    const img = coordImage(96, 64);
    const cropped = hideBox(img, [0.05, 0.1, 0.45, 0.9], 'crop');
    expect(cropped.fellBack).toBe(false);
    expect([cropped.image.width, cropped.image.height, pixel(cropped.image, 0, 0)[0]]).toEqual([52, 64, 44]);
    const masked = hideBox(img, [0.05, 0.1, 0.45, 0.9], 'mask');
    expect([masked.image.width, masked.image.height]).toEqual([96, 64]);
    const full = hideBox(img, [0, 0, 1, 1], 'crop');
    expect(full.fellBack).toBe(true);
    expect([full.image.width, full.image.height]).toEqual([96, 64]);
  });
});
