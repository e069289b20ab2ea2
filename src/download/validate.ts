// What makes a downloaded body an image we keep: an image content type, the magic bytes of a format the later
// stages read, not an HTML error page, not empty, under the size cap, and decodable by sharp.
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { sniffFormat, type ImageFormat } from '../data/image-format.js';
import { firstLineOf } from '../util/errors.js';

/** Bytes needed at the start of a body to recognise its format, and kept from its end for `checkEnd`. */
export const SNIFF_BYTES = 16;

/**
 * full: decode every image completely with sharp (checkDecodes). fast: no decode; a body cut short is still caught
 * by its Content-Length and its format's end marker, but corrupt data inside a whole file passes (the embed stage
 * will meet it).
 */
export type ValidationMode = 'full' | 'fast';

/** A body that is not an image we keep; `reason` goes to the manifest. */
export class InvalidImage extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'InvalidImage';
  }
}

/** Error pages served with status 200 (captive portals, soft 404s) start with markup. */
function looksLikeHtml(head: Uint8Array): boolean {
  const text = Buffer.from(head).toString('latin1').trimStart().toLowerCase();
  return text.startsWith('<!doctype') || text.startsWith('<html');
}

/**
 * Check the first bytes of a body: throws InvalidImage with the reason, else returns the format.
 * `head` holds at least SNIFF_BYTES bytes, or the whole body when it is shorter.
 */
export function checkHead(head: Uint8Array): ImageFormat {
  if (head.length === 0) throw new InvalidImage('empty body');
  if (looksLikeHtml(head)) throw new InvalidImage('html page');
  const format = sniffFormat(head);
  if (!format) throw new InvalidImage('not an image (unknown magic bytes)');
  return format;
}

/**
 * Response content types we accept: any image/*, and the generic binary types plain mirrors (S3, static servers)
 * serve; the magic bytes and the decode are what really decide.
 */
export function checkContentType(contentType: string | undefined): void {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (type.startsWith('image/') || type === 'application/octet-stream' || type === 'binary/octet-stream') return;
  if (type === 'text/html') throw new InvalidImage('html page (content-type text/html)');
  throw new InvalidImage(`content-type ${type || 'missing'}`);
}

/**
 * Does the body end as its format says a whole file ends? JPEG: an EOI marker (FF D9) in the last bytes; PNG:
 * the IEND chunk; GIF: the trailer byte; WebP: the RIFF size matches. For the fast mode only: a JPEG with
 * trailing data after its EOI is valid, and full decoding accepts it.
 */
export function checkEnd(format: ImageFormat, head: Uint8Array, tail: Uint8Array, bytes: number): void {
  const ends =
    format === 'jpeg'
      ? Buffer.from(tail).includes(Buffer.from([0xff, 0xd9]))
      : format === 'png'
        ? Buffer.from(tail).subarray(-8, -4).toString('latin1') === 'IEND'
        : format === 'gif'
          ? tail[tail.length - 1] === 0x3b
          : Buffer.from(head).readUInt32LE(4) + 8 === bytes;
  if (!ends) throw new InvalidImage(`truncated ${format} (no end marker)`);
}

/** Above this many pixels sharp decodes a thumbnail (memory), below it the whole image. */
const FULL_DECODE_PIXELS = 40e6;

/**
 * Is the image decodable? A complete decode by sharp (libvips and its libjpeg), failing on any warning:
 * libjpeg only warns about corrupt entropy-coded data, and about a file cut short whose end marker is put back, and
 * decodes on, so sharp's less sensitive levels ('error', 'truncated') let those through. At full size: JPEG
 * shrink-on-load (what a small thumbnail uses) hides libjpeg's corrupt-data warnings, so a thumbnail is only for
 * images too big to expand in memory.
 */
export async function checkDecodes(data: Uint8Array): Promise<void> {
  try {
    const { width = 0, height = 0 } = await sharp(data).metadata();
    const image = sharp(data, { failOn: 'warning', sequentialRead: true });
    if (width * height > FULL_DECODE_PIXELS) image.resize(4096, 4096, { fit: 'inside' });
    await image.raw().toBuffer();
  } catch (err) {
    throw new InvalidImage(`not decodable: ${firstLineOf(err)}`);
  }
}

/** Validate an image already on disk (reconciliation at start): head, size cap, decode. */
export async function validateImageFile(
  path: string,
  maxBytes: number,
): Promise<{ format: ImageFormat; bytes: number }> {
  const data = await readFile(path);
  if (data.length > maxBytes) throw new InvalidImage(`too large (> ${maxBytes} bytes)`);
  const format = checkHead(data.subarray(0, SNIFF_BYTES));
  await checkDecodes(data);
  return { format, bytes: data.length };
}
