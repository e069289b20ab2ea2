// A small WebAssembly assembler: instructions as byte arrays, and a module builder. Our kernels are a few dozen
// instructions each, so writing them here (with their WAT in comments) beats a toolchain in the build.
// Reference: the WebAssembly core specification, binary format (§5).

/** Value types. */
export const I32 = 0x7f;
export const I64 = 0x7e;
export const F32 = 0x7d;
export const V128 = 0x7b;

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

// Locals and constants.
export const get = (i: number) => [0x20, ...uleb(i)];
export const set = (i: number) => [0x21, ...uleb(i)];
export const tee = (i: number) => [0x22, ...uleb(i)];
export const i32 = (v: number) => [0x41, ...sleb(v)];
/** An i64 constant within the i32 range (all our kernels need). */
export const i64 = (v: number) => [0x42, ...sleb(v)];

// i32 arithmetic and comparisons.
export const [EQZ, EQ, NE, LT_S, LT_U, GT_S, GT_U, LE_S, LE_U, GE_S, GE_U] = [
  0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f,
].map((op) => [op]);
export const [ADD, SUB, MUL, AND, OR, SHL, SHR_S, SHR_U] = [0x6a, 0x6b, 0x6c, 0x71, 0x72, 0x74, 0x75, 0x76].map(
  (op) => [op],
);
// i64 arithmetic and conversions.
export const [I64_OR, I64_SHL, I64_SHR_U] = [[0x84], [0x86], [0x88]];
export const I32_WRAP_I64 = [0xa7];
export const I64_EXTEND_I32_U = [0xad];
export const SELECT = [0x1b];
// f32 comparisons.
export const [F32_GT, F32_GE] = [[0x5e], [0x60]];

// Memory: loads and stores take a static byte offset (natural alignment hint).
const memarg = (align: number, offset: number) => [align, ...uleb(offset)];
export const i32Load = (offset = 0) => [0x28, ...memarg(2, offset)];
export const f32Load = (offset = 0) => [0x2a, ...memarg(2, offset)];
export const i32Load8U = (offset = 0) => [0x2d, ...memarg(0, offset)];
export const i32Load16U = (offset = 0) => [0x2f, ...memarg(1, offset)];
export const i32Store16 = (offset = 0) => [0x3b, ...memarg(1, offset)];

// Control. Blocks and loops here take and leave nothing; `ifElse` yields a value of its result type, or none.
export const NO_RESULT = 0x40;
export const block = (...body: number[][]) => [0x02, 0x40, ...body.flat(), 0x0b];
export const loop = (...body: number[][]) => [0x03, 0x40, ...body.flat(), 0x0b];
export const ifThen = (...body: number[][]) => [0x04, 0x40, ...body.flat(), 0x0b];
export const ifElse = (result: number, then: number[][], otherwise: number[][]) => [
  0x04,
  result,
  ...then.flat(),
  0x05,
  ...otherwise.flat(),
  0x0b,
];
export const br = (depth: number) => [0x0c, ...uleb(depth)];
export const brIf = (depth: number) => [0x0d, ...uleb(depth)];
export const RETURN = [0x0f];
/** Call the module's function `index` (its order in assembleModule's list). */
export const call = (index: number) => [0x10, ...uleb(index)];

// SIMD (128-bit vectors).
const simd = (op: number, ...imm: number[]) => [0xfd, ...uleb(op), ...imm];
export const v128Load = (offset: number) => simd(0x00, 0, ...uleb(offset));
export const F32X4_SPLAT = simd(0x13);
/** i32x4.extract_lane */
export const lane = (i: number) => simd(0x1b, i);
export const [F32X4_GT, F32X4_GE, V128_OR, ANY_TRUE, I32X4_SUB] = [
  simd(0x44),
  simd(0x46),
  simd(0x50),
  simd(0x53),
  simd(0xb1),
];

export interface WasmFunction {
  name: string;
  params: number[];
  results: number[];
  /** Locals after the parameters, in order (indexes continue from the parameters'). */
  locals: number[];
  body: number[][];
}

/** A module that imports its memory as env.memory and exports `functions` by name. */
export function assembleModule(functions: WasmFunction[]): Uint8Array<ArrayBuffer> {
  const types = vec(functions.map((f) => [0x60, ...vec(f.params.map((t) => [t])), ...vec(f.results.map((t) => [t]))]));
  const imports = vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x01]]);
  const declared = vec(functions.map((_, i) => uleb(i)));
  const exports = vec(functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]));
  const codes = vec(
    functions.map((f) => {
      const body = [...vec(f.locals.map((t) => [1, t])), ...f.body.flat(), 0x0b];
      return [...uleb(body.length), ...body];
    }),
  );
  return Uint8Array.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, types),
    ...section(2, imports),
    ...section(3, declared),
    ...section(7, exports),
    ...section(10, codes),
  ]);
}
