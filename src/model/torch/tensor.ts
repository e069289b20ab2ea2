// Tensors inside torch.save archives: torch's storage types, and float32 tensors as the rest of ctl holds them.
import type { SafeTensor } from '../safetensors.js';

/** A float32 tensor in PyTorch layout (row-major, contiguous). */
export type TorchTensor = SafeTensor & { dtype: 'F32'; data: Float32Array };

export function isTorchTensor(value: unknown): value is TorchTensor {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as TorchTensor).dtype === 'F32' &&
    (value as TorchTensor).data instanceof Float32Array &&
    Array.isArray((value as TorchTensor).shape)
  );
}

/** The storage classes torch.save names (`torch.FloatStorage` ...): only float32 ones are read and written. */
export const FLOAT32_STORAGE = 'FloatStorage';
export const STORAGE_TYPES = [
  'FloatStorage',
  'DoubleStorage',
  'HalfStorage',
  'BFloat16Storage',
  'LongStorage',
  'IntStorage',
  'ShortStorage',
  'CharStorage',
  'ByteStorage',
  'BoolStorage',
  'ComplexFloatStorage',
  'ComplexDoubleStorage',
];

/** Row-major strides of `shape`, as torch computes them for a contiguous tensor. */
export function contiguousStrides(shape: number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = step;
    step *= shape[i];
  }
  return strides;
}
