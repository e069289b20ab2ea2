// Full validation (checkDecodes): every valid image passes, and a damaged one that libjpeg (or libpng) refuses, in
// the middle as at the end, does not.
import sharp, { type JpegOptions } from 'sharp';
import { describe, expect, it } from 'vitest';
import { checkDecodes } from '../src/download/validate.js';
import { makeJpeg } from './download-fixtures.js';

/** Does sharp decode it at full size, failing at this level ('warning': libjpeg's own verdict)? */
async function decodes(data: Buffer, failOn: 'warning' | 'error'): Promise<boolean> {
  try {
    await sharp(data, { failOn }).raw().toBuffer();
    return true;
  } catch {
    return false;
  }
}

/** JPEGs of every kind sharp writes: baseline, optimised, progressive, 4:4:4, grey, odd sizes. */
async function corpus(): Promise<Record<string, Buffer>> {
  const source = await makeJpeg(7, 120, 90);
  const write = (options: JpegOptions, width = 120, height = 90, grey = false) =>
    sharp(source).resize(width, height, { fit: 'fill' }).greyscale(grey).jpeg(options).toBuffer();
  return {
    baseline: await write({ quality: 80, optimiseCoding: false }),
    optimised: await write({ quality: 80 }),
    progressive: await write({ quality: 80, progressive: true }),
    mozjpeg: await write({ mozjpeg: true }),
    'progressive 4:4:4': await write({ quality: 90, progressive: true, chromaSubsampling: '4:4:4' }),
    'grey progressive': await write({ quality: 70, mozjpeg: true }, 77, 51, true),
    'odd size': await write({ quality: 85, mozjpeg: true }, 33, 17),
  };
}

const refusal = /^not decodable: /;

describe('full validation of JPEGs', () => {
  it('accepts every JPEG kind sharp writes', async () => {
    for (const [name, jpeg] of Object.entries(await corpus()))
      await expect(checkDecodes(jpeg).then(() => name)).resolves.toBe(name);
  });

  it('refuses a corrupt middle and a cut file whose end marker is put back: libjpeg warns, it does not fail', async () => {
    for (const [name, jpeg] of Object.entries(await corpus())) {
      const scrambled = Buffer.from(jpeg);
      for (let i = Math.floor(jpeg.length * 0.4); i < jpeg.length * 0.6; i++) scrambled[i] = (i * 31) & 255;
      const cutWithEnd = Buffer.concat([jpeg.subarray(0, jpeg.length >> 1), Buffer.from([0xff, 0xd9])]);
      for (const damaged of [scrambled, cutWithEnd]) await expect(checkDecodes(damaged), name).rejects.toThrow(refusal);
    }
    // What makes these cases worth the test: decoding that fails only on errors lets the baseline ones through.
    const { baseline } = await corpus();
    const scrambled = Buffer.from(baseline);
    for (let i = Math.floor(baseline.length * 0.4); i < baseline.length * 0.6; i++) scrambled[i] = (i * 31) & 255;
    expect(await decodes(scrambled, 'error')).toBe(true);
  });

  it('refuses broken files and says so: cut short, no end marker, bad Huffman table, no frame, not a JPEG', async () => {
    const jpeg = await makeJpeg(3);
    const sos = jpeg.indexOf(Buffer.from([0xff, 0xda]));
    const dht = jpeg.indexOf(Buffer.from([0xff, 0xc4]));
    // Two more 1-bit codes, two fewer longer ones: the 1-bit codes fill the code space, the rest cannot fit.
    const oversubscribed = Buffer.from(jpeg);
    const counts = dht + 5;
    const longer = [...Array(15).keys()].map((i) => i + 1).find((i) => jpeg[counts + i] >= 2)!;
    oversubscribed[counts] += 2;
    oversubscribed[counts + longer] -= 2;
    const cases: [string, Buffer][] = [
      ['cut in half', jpeg.subarray(0, jpeg.length >> 1)],
      ['no end marker', jpeg.subarray(0, -2)],
      ['oversubscribed Huffman table', oversubscribed],
      ['scan before any frame', Buffer.concat([jpeg.subarray(0, 2), jpeg.subarray(sos)])],
      ['not an image', Buffer.from('GIF89a....')],
    ];
    for (const [name, data] of cases) await expect(checkDecodes(data), name).rejects.toThrow(refusal);
  });

  it('accepts a big 1600x1200 image and refuses it cut in half with its end marker put back', async () => {
    const big = await makeJpeg(6, 1600, 1200); // noise-like pixels: ~1 MB of coded data
    expect(big.length).toBeGreaterThan(500_000);
    await checkDecodes(big);
    const bigCut = Buffer.concat([big.subarray(0, big.length >> 1), big.subarray(-2)]);
    await expect(checkDecodes(bigCut)).rejects.toThrow(refusal);
  });

  it('refuses corrupt data that a shrink-on-load thumbnail decode lets through', async () => {
    // libjpeg warns about the damage, but sharp's thumbnail path (JPEG decoded at 1/8 scale) does not fail on it:
    // that is why the check is not a thumbnail decode.
    const jpeg = await sharp(await makeJpeg(11, 160, 120))
      .jpeg({ quality: 80 })
      .toBuffer();
    const thumbnailAccepts = async (data: Buffer) =>
      sharp(data, { failOn: 'warning' })
        .resize(16, 16, { fit: 'inside' })
        .raw()
        .toBuffer()
        .then(
          () => true,
          () => false,
        );
    let missedByThumbnail = 0;
    for (let at = Math.floor(jpeg.length * 0.3); at < jpeg.length * 0.8; at += 149) {
      const damaged = Buffer.concat([jpeg.subarray(0, at), jpeg.subarray(at + 1 + (at % 5))]);
      if (await decodes(damaged, 'warning')) continue;
      await expect(checkDecodes(damaged)).rejects.toThrow(refusal);
      if (await thumbnailAccepts(damaged)) missedByThumbnail++;
    }
    expect(missedByThumbnail).toBeGreaterThan(0);
  });
});

describe('full validation of other formats', () => {
  it('decodes PNG, WebP and GIF in full: whole files pass, a damaged PNG does not', async () => {
    const jpeg = await makeJpeg(5, 48, 32);
    for (const format of ['png', 'webp', 'gif'] as const)
      await checkDecodes(await sharp(jpeg).toFormat(format).toBuffer());
    const png = await sharp(jpeg).png().toBuffer();
    const idat = png.indexOf('IDAT');
    const damaged = Buffer.from(png);
    for (let i = idat + 8; i < idat + 40; i++) damaged[i] ^= 0x5a; // compressed pixels scrambled, CRC now wrong
    await expect(checkDecodes(damaged)).rejects.toThrow(refusal);
  });
});
