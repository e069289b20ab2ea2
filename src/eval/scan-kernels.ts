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

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

/** Unsigned and signed LEB128. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, 'utf8')];

// Instructions.
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const tee = (i: number) => [0x22, ...uleb(i)];
const i32 = (v: number) => [0x41, ...sleb(v)];
const [ADD, SUB, AND, SHL, SHR_U] = [[0x6a], [0x6b], [0x71], [0x74], [0x76]];
const [GE_U, LT_U, GT_U] = [[0x4f], [0x49], [0x4b]];
const F32_LOAD = [0x2a, 2, 0];
const [F32_GE, F32_GT] = [[0x60], [0x5e]];
const block = (...body: number[][]) => [0x02, 0x40, ...body.flat(), 0x0b];
const loop = (...body: number[][]) => [0x03, 0x40, ...body.flat(), 0x0b];
const ifThen = (...body: number[][]) => [0x04, 0x40, ...body.flat(), 0x0b];
const br = (depth: number) => [0x0c, ...uleb(depth)];
const brIf = (depth: number) => [0x0d, ...uleb(depth)];
const RETURN = [0x0f];
const simd = (op: number, ...imm: number[]) => [0xfd, ...uleb(op), ...imm];
const v128Load = (offset: number) => simd(0x00, 0, ...uleb(offset));
const F32X4_SPLAT = simd(0x13);
const lane = (i: number) => simd(0x1b, i); // i32x4.extract_lane
const [F32X4_GE, F32X4_GT, V128_OR, ANY_TRUE, I32X4_SUB] = [simd(0x46), simd(0x44), simd(0x50), simd(0x53), simd(0xb1)];

function countGe(): number[] {
  const [p, n, t, end, end16, c, tv, acc] = [0, 1, 2, 3, 4, 5, 6, 7];
  const geAt = (offset: number) => [...get(p), ...v128Load(offset), ...get(tv), ...F32X4_GE, ...I32X4_SUB];
  const code = [
    ...get(p), ...get(n), ...i32(2), ...SHL, ...ADD, ...set(end),
    ...get(p), ...get(n), ...i32(-16), ...AND, ...i32(2), ...SHL, ...ADD, ...set(end16),
    ...get(t), ...F32X4_SPLAT, ...set(tv),
    ...block(
      [...get(p), ...get(end16), ...GE_U, ...brIf(0)],
      loop([...get(acc), ...geAt(0), ...geAt(16), ...geAt(32), ...geAt(48), ...set(acc)],
        [...get(p), ...i32(64), ...ADD, ...tee(p), ...get(end16), ...LT_U, ...brIf(0)]),
    ),
    ...get(acc), ...lane(0), ...get(acc), ...lane(1), ...ADD, ...get(acc), ...lane(2), ...ADD, ...get(acc), ...lane(3), ...ADD, ...set(c),
    ...block(
      [...get(p), ...get(end), ...GE_U, ...brIf(0)],
      loop([...get(c), ...get(p), ...F32_LOAD, ...get(t), ...F32_GE, ...ADD, ...set(c)],
        [...get(p), ...i32(4), ...ADD, ...tee(p), ...get(end), ...LT_U, ...brIf(0)]),
    ),
    ...get(c),
  ];
  return [...vec([[3, I32], [2, V128]]), ...code, 0x0b];
}

function firstAbove(): number[] {
  const [base, start, n, t, p, end, tv] = [0, 1, 2, 3, 4, 5, 6];
  const gtAt = (offset: number) => [...get(p), ...v128Load(offset), ...get(tv), ...F32X4_GT];
  const code = [
    ...get(base), ...get(start), ...i32(2), ...SHL, ...ADD, ...set(p),
    ...get(base), ...get(n), ...i32(2), ...SHL, ...ADD, ...set(end),
    ...get(t), ...F32X4_SPLAT, ...set(tv),
    ...block(
      loop(
        [...get(p), ...i32(64), ...ADD, ...get(end), ...GT_U, ...brIf(1)],
        [...gtAt(0), ...gtAt(16), ...V128_OR, ...gtAt(32), ...V128_OR, ...gtAt(48), ...V128_OR, ...ANY_TRUE, ...brIf(1)],
        [...get(p), ...i32(64), ...ADD, ...set(p), ...br(0)],
      ),
    ),
    ...block(
      loop(
        [...get(p), ...get(end), ...GE_U, ...brIf(1)],
        [...get(p), ...F32_LOAD, ...get(t), ...F32_GT],
        ifThen([...get(p), ...get(base), ...SUB, ...i32(2), ...SHR_U, ...RETURN]),
        [...get(p), ...i32(4), ...ADD, ...set(p), ...br(0)],
      ),
    ),
    ...get(n),
  ];
  return [...vec([[2, I32], [1, V128]]), ...code, 0x0b];
}

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const types = vec([
    [0x60, ...vec([[I32], [I32], [F32]]), ...vec([[I32]])],
    [0x60, ...vec([[I32], [I32], [I32], [F32]]), ...vec([[I32]])],
  ]);
  const imports = vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x01]]);
  const functions = vec([[0], [1]]);
  const exports = vec([
    [...name('count_ge'), 0x00, 0],
    [...name('first_above'), 0x00, 1],
  ]);
  const codes = vec([countGe(), firstAbove()].map((body) => [...uleb(body.length), ...body]));
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, types),
    ...section(2, imports),
    ...section(3, functions),
    ...section(7, exports),
    ...section(10, codes),
  ]);
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
  compiled ??= new WebAssembly.Module(moduleBytes());
  const memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(bytes / 65536)) });
  const exports = new WebAssembly.Instance(compiled, { env: { memory } }).exports as {
    count_ge: (p: number, n: number, t: number) => number;
    first_above: (p: number, start: number, n: number, t: number) => number;
  };
  return { memory, countGe: exports.count_ge, firstAbove: exports.first_above };
}
