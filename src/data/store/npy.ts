// NumPy .npy (format 1.0) for float32 C-order matrices: what `numpy.load` reads without any extra package.
import { InputError } from '../../util/errors.js';
import { elementCount, float32sOf } from '../../util/matrix.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export interface NpyHeader {
  shape: number[];
  /** Byte offset where the raw data starts. */
  dataOffset: number;
}

/** The header bytes for a little-endian float32 C-order array of `shape`. */
function npyHeader(shape: number[]): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // The whole preamble (10 bytes + dict + '\n') is padded to a multiple of 64, as numpy writes it.
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  dict = dict.padEnd(total - 10 - 1, ' ') + '\n';
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[6] = 1; // major
  out[7] = 0; // minor
  new DataView(out.buffer).setUint16(8, dict.length, true);
  out.set(new TextEncoder().encode(dict), 10);
  return out;
}

/** A whole .npy file for `data` of `shape`. */
export function encodeNpy(data: Float32Array, shape: number[]): Uint8Array {
  const expected = elementCount(shape);
  if (data.length !== expected) throw new Error(`npy: ${data.length} values do not fill shape [${shape}]`);
  const header = npyHeader(shape);
  const out = new Uint8Array(header.length + data.byteLength);
  out.set(header, 0);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), header.length);
  return out;
}

/** Parse the header of a float32 C-order .npy (the only kind this project writes). `name` is for messages. */
export function parseNpyHeader(bytes: Uint8Array, name = 'npy'): NpyHeader {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new InputError(`${name}: not a .npy file`);
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [lenBytes, start] = major === 1 ? [view.getUint16(8, true), 10] : [view.getUint32(8, true), 12];
  if (bytes.length < start + lenBytes) throw new InputError(`${name}: truncated header`);
  const dict = new TextDecoder().decode(bytes.subarray(start, start + lenBytes));
  if (!/'descr':\s*'<f4'/.test(dict)) throw new InputError(`${name}: descr: expected '<f4' (float32)`);
  if (/'fortran_order':\s*True/.test(dict)) throw new InputError(`${name}: fortran_order: expected False`);
  const shapeMatch = /'shape':\s*\(([^)]*)\)/.exec(dict);
  if (!shapeMatch) throw new InputError(`${name}: shape: missing`);
  const shape = shapeMatch[1]
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  return { shape, dataOffset: start + lenBytes };
}

/** Decode a whole float32 .npy file (copies into an aligned Float32Array). */
export function decodeNpy(bytes: Uint8Array, name = 'npy'): { data: Float32Array; shape: number[] } {
  const { shape, dataOffset } = parseNpyHeader(bytes, name);
  const count = elementCount(shape);
  if (bytes.length - dataOffset < count * 4) throw new InputError(`${name}: data: expected ${count} float32 values`);
  return { data: float32sOf(bytes.subarray(dataOffset), count), shape };
}
