// Two WebAssembly SIMD kernels for the ranking scan, assembled here byte by byte (no toolchain needed). A plain JS
// loop over a Float32Array costs ~3 ns per score on this machine (no vectorisation); these run 4 lanes at a time
// and make the scan of 30,000 × 38,000 scores a fraction of the matrix product's time.
//
//   count_ge(p, n, t)           number of the n floats at byte address p that are >= t
//   first_above(p, start, n, t) the first index i in [start, n) with float[i] > t, or n
//
// In WAT, the loops are:
//   count_ge:    while p + 64 <= end16: acc -= f32x4.ge(load p, t) for 4 vectors (a true lane is -1); then the
//                lanes of acc summed and a scalar tail.
//   first_above: while p + 64 <= end: if any_true(or of f32x4.gt(load p .. p+48, t)) break; then scalar from p.
// NaN compares false everywhere, so it is never counted and never enters a top-k.

import {
  ADD,
  AND,
  ANY_TRUE,
  F32,
  F32X4_GE,
  F32X4_GT,
  F32X4_SPLAT,
  F32_GE,
  F32_GT,
  GE_U,
  GT_U,
  I32,
  I32X4_SUB,
  LT_U,
  RETURN,
  SHL,
  SHR_U,
  SUB,
  V128,
  V128_OR,
  assembleModule,
  block,
  br,
  brIf,
  f32Load,
  get,
  i32,
  ifThen,
  lane,
  loop,
  set,
  tee,
  v128Load,
  type WasmFunction,
} from '../util/wasm-assembler.js';

function countGe(): WasmFunction {
  const [p, n, t, end, end16, c, tv, acc] = [0, 1, 2, 3, 4, 5, 6, 7];
  const geAt = (offset: number) => [...get(p), ...v128Load(offset), ...get(tv), ...F32X4_GE, ...I32X4_SUB];
  const code = [
    ...get(p),
    ...get(n),
    ...i32(2),
    ...SHL,
    ...ADD,
    ...set(end),
    ...get(p),
    ...get(n),
    ...i32(-16),
    ...AND,
    ...i32(2),
    ...SHL,
    ...ADD,
    ...set(end16),
    ...get(t),
    ...F32X4_SPLAT,
    ...set(tv),
    ...block(
      [...get(p), ...get(end16), ...GE_U, ...brIf(0)],
      loop(
        [...get(acc), ...geAt(0), ...geAt(16), ...geAt(32), ...geAt(48), ...set(acc)],
        [...get(p), ...i32(64), ...ADD, ...tee(p), ...get(end16), ...LT_U, ...brIf(0)],
      ),
    ),
    ...get(acc),
    ...lane(0),
    ...get(acc),
    ...lane(1),
    ...ADD,
    ...get(acc),
    ...lane(2),
    ...ADD,
    ...get(acc),
    ...lane(3),
    ...ADD,
    ...set(c),
    ...block(
      [...get(p), ...get(end), ...GE_U, ...brIf(0)],
      loop(
        [...get(c), ...get(p), ...f32Load(), ...get(t), ...F32_GE, ...ADD, ...set(c)],
        [...get(p), ...i32(4), ...ADD, ...tee(p), ...get(end), ...LT_U, ...brIf(0)],
      ),
    ),
    ...get(c),
  ];
  return {
    name: 'count_ge',
    params: [I32, I32, F32],
    results: [I32],
    locals: [I32, I32, I32, V128, V128],
    body: [code],
  };
}

function firstAbove(): WasmFunction {
  const [base, start, n, t, p, end, tv] = [0, 1, 2, 3, 4, 5, 6];
  const gtAt = (offset: number) => [...get(p), ...v128Load(offset), ...get(tv), ...F32X4_GT];
  const code = [
    ...get(base),
    ...get(start),
    ...i32(2),
    ...SHL,
    ...ADD,
    ...set(p),
    ...get(base),
    ...get(n),
    ...i32(2),
    ...SHL,
    ...ADD,
    ...set(end),
    ...get(t),
    ...F32X4_SPLAT,
    ...set(tv),
    ...block(
      loop(
        [...get(p), ...i32(64), ...ADD, ...get(end), ...GT_U, ...brIf(1)],
        [
          ...gtAt(0),
          ...gtAt(16),
          ...V128_OR,
          ...gtAt(32),
          ...V128_OR,
          ...gtAt(48),
          ...V128_OR,
          ...ANY_TRUE,
          ...brIf(1),
        ],
        [...get(p), ...i32(64), ...ADD, ...set(p), ...br(0)],
      ),
    ),
    ...block(
      loop(
        [...get(p), ...get(end), ...GE_U, ...brIf(1)],
        [...get(p), ...f32Load(), ...get(t), ...F32_GT],
        ifThen([...get(p), ...get(base), ...SUB, ...i32(2), ...SHR_U, ...RETURN]),
        [...get(p), ...i32(4), ...ADD, ...set(p), ...br(0)],
      ),
    ),
    ...get(n),
  ];
  return { name: 'first_above', params: [I32, I32, I32, F32], results: [I32], locals: [I32, I32, V128], body: [code] };
}

export interface ScanKernels {
  /** Memory the kernels read; score buffers are views on it. */
  memory: WebAssembly.Memory;
  countGe(byteOffset: number, n: number, threshold: number): number;
  firstAbove(byteOffset: number, start: number, n: number, threshold: number): number;
}

let compiled: WebAssembly.Module | undefined;

/** Kernels over a fresh memory of `bytes` bytes. */
export function createScanKernels(bytes: number): ScanKernels {
  compiled ??= new WebAssembly.Module(assembleModule([countGe(), firstAbove()]));
  const memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(bytes / 65536)) });
  const exports = new WebAssembly.Instance(compiled, { env: { memory } }).exports as {
    count_ge: (p: number, n: number, t: number) => number;
    first_above: (p: number, start: number, n: number, t: number) => number;
  };
  return { memory, countGe: exports.count_ge, firstAbove: exports.first_above };
}
