// The zip container of torch.save files and NumPy .npz files: read any entry (stored or deflated, zip64 too) and
// write stored entries with their data aligned to 64 bytes, as PyTorch's writer does (so readers can map tensors
// in place).
import { crc32, inflateRawSync } from 'node:zlib';
import { InputError } from '../../util/errors.js';

export interface ZipEntry {
  name: string;
  data: Uint8Array;
}

const LOCAL_HEADER = 0x04034b50;
const CENTRAL_HEADER = 0x02014b50;
const END_OF_CENTRAL_DIR = 0x06054b50;
const ZIP64_END_OF_CENTRAL_DIR = 0x06064b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EXTRA = 0x0001;

/** Does `bytes` start as a zip archive: its first entry, or the end record of an empty archive? */
export function isZip(bytes: Uint8Array): boolean {
  const first = bytes.length >= 4 ? new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true) : 0;
  return first === LOCAL_HEADER || first === END_OF_CENTRAL_DIR;
}

/** Every entry of a zip archive, by name. `source` names the file in messages. */
export function readZip(bytes: Uint8Array, source: string): Map<string, Uint8Array> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (message: string): never => {
    throw new InputError(`${source}: ${message}`);
  };
  const u16 = (at: number) => (at + 2 <= bytes.length ? view.getUint16(at, true) : fail('truncated zip'));
  const u32 = (at: number) => (at + 4 <= bytes.length ? view.getUint32(at, true) : fail('truncated zip'));
  const u64 = (at: number) => (at + 8 <= bytes.length ? Number(view.getBigUint64(at, true)) : fail('truncated zip'));

  // The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.
  let end = -1;
  for (let at = bytes.length - 22; at >= Math.max(0, bytes.length - 22 - 0xffff); at--)
    if (view.getUint32(at, true) === END_OF_CENTRAL_DIR) {
      end = at;
      break;
    }
  if (end < 0) fail('not a zip archive (no end-of-central-directory record)');
  let count = u16(end + 10);
  let dirOffset = u32(end + 16);
  if (end >= 20 && u32(end - 20) === ZIP64_LOCATOR) {
    const zip64End = u64(end - 20 + 8);
    if (u32(zip64End) !== ZIP64_END_OF_CENTRAL_DIR) fail('broken zip64 end-of-central-directory record');
    count = u64(zip64End + 32);
    dirOffset = u64(zip64End + 48);
  }

  const entries = new Map<string, Uint8Array>();
  let at = dirOffset;
  for (let i = 0; i < count; i++) {
    if (u32(at) !== CENTRAL_HEADER) fail(`broken central directory at byte ${at}`);
    const method = u16(at + 10);
    let compressedSize = u32(at + 20);
    let size = u32(at + 24);
    const nameLength = u16(at + 28);
    const extraLength = u16(at + 30);
    const commentLength = u16(at + 32);
    let localOffset = u32(at + 42);
    const name = new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLength));
    // zip64: the fields saturated at 0xffffffff follow in the extra field, in this order.
    for (let x = at + 46 + nameLength; x < at + 46 + nameLength + extraLength; x += 4 + u16(x + 2)) {
      if (u16(x) !== ZIP64_EXTRA) continue;
      let field = x + 4;
      const next = () => {
        const v = u64(field);
        field += 8;
        return v;
      };
      if (size === 0xffffffff) size = next();
      if (compressedSize === 0xffffffff) compressedSize = next();
      if (localOffset === 0xffffffff) localOffset = next();
    }
    at += 46 + nameLength + extraLength + commentLength;

    if (u32(localOffset) !== LOCAL_HEADER) fail(`${name}: broken local header`);
    const dataStart = localOffset + 30 + u16(localOffset + 26) + u16(localOffset + 28);
    if (dataStart + compressedSize > bytes.length) fail(`${name}: truncated entry`);
    const raw = bytes.subarray(dataStart, dataStart + compressedSize);
    if (method === 0) entries.set(name, raw);
    else if (method === 8) entries.set(name, new Uint8Array(inflateRawSync(raw)));
    else fail(`${name}: compression method ${method} (only stored and deflate are read)`);
    if (entries.get(name)!.length !== size) fail(`${name}: size ${entries.get(name)!.length}, expected ${size}`);
  }
  return entries;
}

const ALIGNMENT = 64;
/** PyTorch pads its local headers with an extra field of this id ("FB") so that data starts aligned. */
const PADDING_EXTRA = 0x4246;

/** A zip archive of stored (uncompressed) entries, each entry's data aligned to 64 bytes. Sizes below 4 GiB. */
export function writeZip(entries: ZipEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const { name, data } of entries) {
    const nameBytes = new TextEncoder().encode(name);
    const crc = crc32(data);
    // The padding extra field has a 4-byte header, so the smallest padding is 4 bytes.
    const headerEnd = offset + 30 + nameBytes.length + 4;
    const padding = (ALIGNMENT - (headerEnd % ALIGNMENT)) % ALIGNMENT;
    const local = new Uint8Array(30 + nameBytes.length + 4 + padding);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, LOCAL_HEADER, true);
    lv.setUint16(4, 20, true); // version needed
    lv.setUint16(8, 0, true); // stored
    lv.setUint32(14, crc, true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, nameBytes.length, true);
    lv.setUint16(28, 4 + padding, true);
    local.set(nameBytes, 30);
    lv.setUint16(30 + nameBytes.length, PADDING_EXTRA, true);
    lv.setUint16(32 + nameBytes.length, padding, true);
    local.fill(0x5a, 34 + nameBytes.length); // 'Z', as PyTorch pads

    const record = new Uint8Array(46 + nameBytes.length);
    const cv = new DataView(record.buffer);
    cv.setUint32(0, CENTRAL_HEADER, true);
    cv.setUint16(4, 20, true); // version made by
    cv.setUint16(6, 20, true); // version needed
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint32(42, offset, true);
    record.set(nameBytes, 46);

    parts.push(local, data);
    central.push(record);
    offset += local.length + data.length;
    if (offset > 0xffffffff) throw new Error('zip: archive above 4 GiB (zip64 is not written)');
  }
  const centralSize = central.reduce((n, r) => n + r.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, END_OF_CENTRAL_DIR, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, centralSize, true);
  ev.setUint32(16, offset, true);

  const out = new Uint8Array(offset + centralSize + end.length);
  let at = 0;
  for (const part of [...parts, ...central, end]) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
