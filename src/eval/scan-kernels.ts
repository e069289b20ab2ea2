// The ranking scan's two WebAssembly SIMD kernels, written in scan-kernels.wat and compiled by `npm run build`
// (scripts/compile-wat.mjs) into scan-kernels.wasm.ts:
//
//   count_ge(p, n, t)           number of the n floats at byte address p that are >= t
//   first_above(p, start, n, t) the first index i in [start, n) with float[i] > t, or n
import { wasmBinary } from './scan-kernels.wasm.js';

export interface ScanKernels {
  /** Memory the kernels read; score buffers are views on it. */
  memory: WebAssembly.Memory;
  countGe(byteOffset: number, n: number, threshold: number): number;
  firstAbove(byteOffset: number, start: number, n: number, threshold: number): number;
}

let compiled: WebAssembly.Module | undefined;

/** Kernels over a fresh memory of `bytes` bytes. */
export function createScanKernels(bytes: number): ScanKernels {
  compiled ??= new WebAssembly.Module(wasmBinary);
  const memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(bytes / 65536)) });
  const exports = new WebAssembly.Instance(compiled, { env: { memory } }).exports as {
    count_ge: (p: number, n: number, t: number) => number;
    first_above: (p: number, start: number, n: number, t: number) => number;
  };
  return { memory, countGe: exports.count_ge, firstAbove: exports.first_above };
}
