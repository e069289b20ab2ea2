// The JPEG integrity check against libjpeg itself (sharp, full-size decode, failOn 'warning'): every valid JPEG
// passes, and no damaged one that libjpeg refuses gets through.
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { checkJpeg } from '../src/download/jpeg-check.js';
import { checkDecodes, InvalidImage } from '../src/download/validate.js';
import { encodeJpeg, makeJpeg } from './download-fixtures.js';

/** libjpeg's verdict: decode at full size, failing on any warning. */
async function libjpegAccepts(data: Buffer): Promise<boolean> {
  try {
    await sharp(data, { failOn: 'warning' }).raw().toBuffer();
    return true;
  } catch {
    return false;
  }
}

/** JPEGs of every kind the check must read: baseline, optimised, progressive, 4:4:4, grey, odd sizes, restarts. */
async function corpus(): Promise<Record<string, Buffer>> {
  const source = await makeJpeg(7, 120, 90);
  const write = (options: sharp.JpegOptions, width = 120, height = 90, grey = false) =>
    sharp(source).resize(width, height, { fit: 'fill' }).greyscale(grey).jpeg(options).toBuffer();
  return {
    baseline: await write({ quality: 80, optimiseCoding: false }),
    optimised: await write({ quality: 80 }),
    progressive: await write({ quality: 80, progressive: true }),
    mozjpeg: await write({ mozjpeg: true }),
    'progressive 4:4:4': await write({ quality: 90, progressive: true, chromaSubsampling: '4:4:4' }),
    'grey progressive': await write({ quality: 70, mozjpeg: true }, 77, 51, true),
    'odd size': await write({ quality: 85, mozjpeg: true }, 33, 17),
    'restart every MCU, grey': encodeJpeg({ width: 40, height: 24, components: 1, restartInterval: 1 }),
    'restart every 3 MCUs, 4:2:0': encodeJpeg({ width: 64, height: 40, components: 3, restartInterval: 3, seed: 5 }),
  };
}

/** A reproducible damage: flip a bit, overwrite a byte, delete or insert bytes. */
function damage(data: Buffer, i: number, seed: number): Buffer {
  let x = seed;
  const random = (n: number) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 8) % n;
  const at = 2 + random(data.length - 4);
  const copy = Buffer.from(data);
  switch (i % 4) {
    case 0:
      copy[at] ^= 1 << random(8);
      return copy;
    case 1:
      copy[at] = random(256);
      return copy;
    case 2:
      return Buffer.concat([data.subarray(0, at), data.subarray(at + 1 + random(4))]);
    default:
      return Buffer.concat([data.subarray(0, at), Buffer.from([random(256)]), data.subarray(at)]);
  }
}

describe('JPEG integrity check', () => {
  it('accepts every JPEG kind sharp writes, and restart-interval JPEGs that libjpeg reads', async () => {
    for (const [name, jpeg] of Object.entries(await corpus())) {
      expect(await libjpegAccepts(jpeg), name).toBe(true);
      expect(checkJpeg(jpeg), name).toEqual({ status: 'ok' });
    }
  });

  it('never accepts a damaged JPEG that libjpeg refuses (bit flips, overwritten, deleted and inserted bytes)', async () => {
    let refusedByBoth = 0;
    for (const [name, jpeg] of Object.entries(await corpus())) {
      for (let i = 0; i < 48; i++) {
        const damaged = damage(jpeg, i, i * 7919 + name.length);
        const verdict = checkJpeg(damaged);
        if (verdict.status === 'unsupported') continue; // sharp decides those
        const libjpeg = await libjpegAccepts(damaged);
        if (!libjpeg) expect({ name, i, verdict: verdict.status }).toEqual({ name, i, verdict: 'corrupt' });
        if (!libjpeg && verdict.status === 'corrupt') refusedByBoth++;
      }
    }
    expect(refusedByBoth).toBeGreaterThan(200);
  });

  it('keeps its verdicts as its memory grows for a bigger image, and for the small ones after it', async () => {
    // The check's WebAssembly memory is sized for the images seen so far; a bigger one grows it.
    const small = await makeJpeg(5, 48, 32);
    const big = await makeJpeg(6, 1600, 1200); // noise-like pixels: ~1 MB of coded data
    expect(big.length).toBeGreaterThan(500_000);
    const bigCut = Buffer.concat([big.subarray(0, big.length >> 1), big.subarray(-2)]);
    const verdicts = [small, big, bigCut, small].map((data) => checkJpeg(data).status);
    expect(verdicts).toEqual(['ok', 'ok', 'corrupt', 'ok']);
    expect(await libjpegAccepts(bigCut)).toBe(false);
  });

  it('checks restart markers: their numbers, and the data of each interval', () => {
    const jpeg = encodeJpeg({ width: 64, height: 40, components: 3, restartInterval: 2, seed: 9 });
    const rst = [...jpeg.keys()].filter((i) => jpeg[i] === 0xff && jpeg[i + 1] >= 0xd0 && jpeg[i + 1] <= 0xd7);
    expect(rst.length).toBeGreaterThan(3);

    const renumbered = Buffer.from(jpeg);
    renumbered[rst[1] + 1] = 0xd5;
    expect(checkJpeg(renumbered)).toEqual({ status: 'corrupt', reason: 'found marker 0xd5 instead of RST1' });

    const extra = Buffer.concat([jpeg.subarray(0, rst[2]), Buffer.from([0x12, 0x34]), jpeg.subarray(rst[2])]);
    expect(checkJpeg(extra)).toEqual({ status: 'corrupt', reason: 'extraneous bytes before marker' });

    const short = Buffer.concat([jpeg.subarray(0, rst[2] - 3), jpeg.subarray(rst[2])]);
    expect(checkJpeg(short)).toMatchObject({ status: 'corrupt' });
  });

  it('names what is wrong with a broken file', async () => {
    const jpeg = await makeJpeg(3);
    const sos = jpeg.indexOf(Buffer.from([0xff, 0xda]));
    const dht = jpeg.indexOf(Buffer.from([0xff, 0xc4]));
    const scrambled = Buffer.from(jpeg);
    for (let i = Math.floor(jpeg.length * 0.4); i < jpeg.length * 0.9; i++) scrambled[i] = (i * 31) & 255;
    // Two more 1-bit codes, two fewer longer ones: the 1-bit codes fill the code space, the rest cannot fit.
    const oversubscribed = Buffer.from(jpeg);
    const counts = dht + 5;
    const longer = [...Array(15).keys()].map((i) => i + 1).find((i) => jpeg[counts + i] >= 2)!;
    oversubscribed[counts] += 2;
    oversubscribed[counts + longer] -= 2;
    const noFrame = Buffer.concat([jpeg.subarray(0, 2), jpeg.subarray(sos)]);
    const cases: [string, Buffer, RegExp][] = [
      ['cut in half', jpeg.subarray(0, jpeg.length >> 1), /^premature end of JPEG file$/],
      ['no end marker', jpeg.subarray(0, -2), /^premature end of JPEG file$/],
      [
        'scrambled data',
        scrambled,
        /^(bad Huffman code|premature end of data segment|extraneous bytes before marker)$/,
      ],
      [
        'junk before EOI',
        Buffer.concat([jpeg.subarray(0, -2), Buffer.alloc(40, 0x41), jpeg.subarray(-2)]),
        /^extraneous bytes before marker$/,
      ],
      ['oversubscribed Huffman table', oversubscribed, /^bad Huffman table$/],
      ['scan before any frame', noFrame, /^SOS marker before SOF$/],
      ['not a JPEG', Buffer.from('GIF89a....'), /^no SOI marker$/],
    ];
    for (const [name, data, reason] of cases) {
      const verdict = checkJpeg(data);
      expect(verdict.status, name).toBe('corrupt');
      expect(verdict.status === 'corrupt' && verdict.reason, name).toMatch(reason);
    }
    // A few padding bytes before the end marker (some encoders write them; libjpeg decodes the image whole) pass.
    expect(checkJpeg(Buffer.concat([jpeg.subarray(0, -2), Buffer.alloc(2), jpeg.subarray(-2)]))).toEqual({
      status: 'ok',
    });
  });

  it('leaves codings it does not read to sharp (arithmetic, 12-bit, DNL): then sharp decides', async () => {
    const jpeg = await makeJpeg(4);
    const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
    const arithmetic = Buffer.from(jpeg);
    arithmetic[sof + 1] = 0xc9;
    const twelveBit = Buffer.from(jpeg);
    twelveBit[sof + 4] = 12;
    const dnl = Buffer.from(jpeg);
    dnl.writeUInt16BE(0, sof + 5);
    expect(checkJpeg(arithmetic)).toMatchObject({ status: 'unsupported' });
    expect(checkJpeg(twelveBit)).toMatchObject({ status: 'unsupported', reason: '12-bit samples' });
    expect(checkJpeg(dnl)).toMatchObject({ status: 'unsupported' });
    for (const data of [arithmetic, twelveBit, dnl]) {
      const accepted = await checkDecodes(data, 'jpeg').then(
        () => true,
        (err) => (err instanceof InvalidImage ? false : Promise.reject(err)),
      );
      expect(accepted).toBe(await libjpegAccepts(data));
    }
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
      if (await libjpegAccepts(damaged)) continue;
      await expect(checkDecodes(damaged, 'jpeg')).rejects.toThrow(/^not decodable: /);
      if (await thumbnailAccepts(damaged)) missedByThumbnail++;
    }
    expect(missedByThumbnail).toBeGreaterThan(0);
  });
});

describe('validation of other formats', () => {
  it('leaves PNG, WebP and GIF to a full sharp decode: whole files pass, a damaged PNG does not', async () => {
    const jpeg = await makeJpeg(5, 48, 32);
    for (const format of ['png', 'webp', 'gif'] as const)
      await checkDecodes(await sharp(jpeg).toFormat(format).toBuffer(), format);
    const png = await sharp(jpeg).png().toBuffer();
    const idat = png.indexOf('IDAT');
    const damaged = Buffer.from(png);
    for (let i = idat + 8; i < idat + 40; i++) damaged[i] ^= 0x5a; // compressed pixels scrambled, CRC now wrong
    await expect(checkDecodes(damaged, 'png')).rejects.toThrow(/^not decodable: /);
  });
});
