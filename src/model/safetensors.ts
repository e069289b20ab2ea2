// The safetensors format, written by hand (it is small): 8-byte little-endian header length N, N bytes of JSON
// header {"__metadata__": {string: string}, name: {dtype, shape, data_offsets: [begin, end]}}, then the raw
// little-endian tensor bytes, back to back. The header is padded with spaces to a multiple of 8 bytes.
import { InputError } from '../util/errors.js';
import { elementCount } from '../util/matrix.js';

export type SafeDtype = 'F32' | 'I32';

export interface SafeTensor {
  dtype: SafeDtype;
  shape: number[];
  data: Float32Array | Int32Array;
}

export interface SafeFile {
  tensors: Record<string, SafeTensor>;
  metadata: Record<string, string>;
}

/** Encode tensors (in the given key order) as a safetensors file. */
export function encodeSafetensors(file: SafeFile): Uint8Array[] {
  const header: Record<string, unknown> = { __metadata__: file.metadata };
  let offset = 0;
  for (const [name, t] of Object.entries(file.tensors)) {
    const count = elementCount(t.shape);
    if (count !== t.data.length)
      throw new Error(`safetensors: ${name} has shape [${t.shape}] but ${t.data.length} values`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  const chunks: Uint8Array[] = [prefix, headerBytes];
  for (const t of Object.values(file.tensors))
    chunks.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return chunks;
}

/** Parse a safetensors file; `source` names it in errors. */
export function decodeSafetensors(bytes: Uint8Array, source: string): SafeFile {
  const fail = (why: string): never => {
    throw new InputError(`${source}: not a valid safetensors file (${why})`);
  };
  if (bytes.length < 8) fail('shorter than its 8-byte header length');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (8 + headerLength > bytes.length) fail('header longer than the file');
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch {
    return fail('header is not JSON');
  }
  const { __metadata__: metadata = {}, ...entries } = header as Record<string, never>;
  const dataStart = 8 + headerLength;
  const tensors: Record<string, SafeTensor> = {};
  for (const [name, entry] of Object.entries(entries) as [
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] },
  ][]) {
    const [begin, end] = entry.data_offsets;
    if (entry.dtype !== 'F32' && entry.dtype !== 'I32')
      fail(`${name}: dtype ${entry.dtype} is not supported (F32, I32)`);
    if (dataStart + end > bytes.length || begin > end) fail(`${name}: data offsets outside the file`);
    const count = elementCount(entry.shape);
    if (end - begin !== count * 4) fail(`${name}: ${end - begin} bytes for shape [${entry.shape}]`);
    // Copy: the data may not be 4-byte aligned in the file buffer.
    const raw = bytes.slice(dataStart + begin, dataStart + end);
    const data = entry.dtype === 'F32' ? new Float32Array(raw.buffer) : new Int32Array(raw.buffer);
    tensors[name] = { dtype: entry.dtype as SafeDtype, shape: entry.shape, data };
  }
  return { tensors, metadata };
}
