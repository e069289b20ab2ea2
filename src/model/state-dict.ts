// Between our flat parameter vector and the reference PyTorch state_dict (names and layouts): linear weights
// are [in, out] here and [out, in] in PyTorch; everything else has the same layout. The same mapping converts
// any vector in the parameter layout (e.g. Adam's moments).
import { InputError } from '../util/errors.js';
import type { ParamEntry, ParamLayout } from './params.js';
import type { SafeTensor } from './safetensors.js';

/** PyTorch's shape of a parameter. */
export function torchShape(entry: ParamEntry): number[] {
  return entry.transposed ? [entry.shape[1], entry.shape[0]] : entry.shape;
}

function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/** Named tensors in PyTorch layout from a flat vector; `prefix` is prepended to every name. */
export function toStateDict(layout: ParamLayout, flat: Float32Array, prefix = ''): Record<string, SafeTensor> {
  const out: Record<string, SafeTensor> = {};
  for (const e of layout.entries) {
    const own = flat.subarray(e.offset, e.offset + e.size);
    const data = e.transposed ? transpose(own, e.shape[0], e.shape[1]) : own.slice();
    out[prefix + e.name] = { dtype: 'F32', shape: torchShape(e), data };
  }
  return out;
}

/** The flat vector back from named tensors in PyTorch layout; throws naming the first missing or misshapen one. */
export function fromStateDict(
  layout: ParamLayout,
  tensors: Record<string, SafeTensor>,
  source: string,
  prefix = '',
): Float32Array {
  const flat = new Float32Array(layout.size);
  for (const e of layout.entries) {
    const t = tensors[prefix + e.name];
    const expected = torchShape(e);
    if (!t) throw new InputError(`${source}: missing tensor ${prefix + e.name}`);
    if (t.dtype !== 'F32' || t.shape.join(',') !== expected.join(','))
      throw new InputError(`${source}: ${prefix + e.name} is ${t.dtype} [${t.shape}], expected F32 [${expected}]`);
    const data = t.data as Float32Array;
    flat.set(e.transposed ? transpose(data, expected[0], expected[1]) : data, e.offset);
  }
  return flat;
}
