// The hot loop of the JPEG check as a WebAssembly kernel: step over the Huffman-coded DC and AC codes of sequential
// scans (and the DC codes of progressive first scans), block by block, keeping nothing. In JS the same loop was
// bound by its chain of DataView reads (~28 cycles a code); here the next bits sit in a 64-bit register, refilled
// 32 bits at a time, and a code costs a shift, a table look-up and an add (~14 cycles, bound by that chain). The
// step tables are filled here too (fill_steps): in JS they cost a fifth of the check.
//
// Memory (one per thread, grown before an image is read so that views stay valid while it is):
//   BLOCKS   the table pair of each block of an MCU: (DC table address, AC table address) as two i32
//   tables   TABLE_SLOTS Huffman tables of TABLE_BYTES each, laid out as TABLE (below) says
//   DATA     the entropy-coded bytes of one restart interval, unstuffed, then DATA_PADDING zero bytes (the
//            caller keeps what it likes after that)
//
//   decode(bit, end, mcus, blocks, withAc) -> the bit position after `mcus` MCUs of `blocks` blocks each,
//   starting at `bit` in DATA, whose data holds `end` bytes; -1 for a bad Huffman code; -2 when the reading ran
//   far past the end (the data is too short). withAc = 0 reads only the DC codes.
//
// In WAT-like pseudo-code, with acc holding the next n bits at its top:
//   refill:  if n < 32: acc |= u64(big-endian u32 at p) << (32 - n); p += 4; n += 32
//   per block: if p > DATA + end + 8: return -2
//     refill; step = dcSteps[acc >> 55] or, for a longer code, long_step(); acc <<= step; n -= step
//     k = 1; do: refill; w = acc >> 54; step = acPairs[w]
//                if step == 0: step = long_step()
//                next = k + ((step >> 5) & 127)
//                if next >= 64:   (the block ends)
//                  if step is a PAIR and k + advance(first) >= 64: step = first  (first = acSteps[w >> 1])
//                acc <<= step & 31; n -= step & 31; k = next
//         while k < 64
import {
  ADD,
  AND,
  EQ,
  EQZ,
  GE_U,
  GT_U,
  I32,
  I32_WRAP_I64,
  I64,
  I64_EXTEND_I32_U,
  I64_OR,
  I64_SHL,
  I64_SHR_U,
  LE_S,
  LE_U,
  LT_S,
  LT_U,
  NE,
  NO_RESULT,
  OR,
  RETURN,
  SELECT,
  SHL,
  SHR_U,
  SUB,
  assembleModule,
  block,
  br,
  brIf,
  call,
  get,
  i32,
  i32Load,
  i32Load16U,
  i32Load8U,
  i32Store16,
  i64,
  ifElse,
  ifThen,
  loop,
  set,
  tee,
} from '../util/wasm-assembler.js';

/** Codes of up to LOOKAHEAD bits are found in one table look-up; longer ones by their length (T.81 F.2.2.3). */
export const LOOKAHEAD = 9;
/**
 * Sequential AC codes are looked up two at a time where both fit in this many bits. Wider pair tables cut the
 * look-ups but cost more to fill for every image: 10 was the fastest over 9 to 12 on 23 KB photos.
 */
export const PAIR_BITS = 10;

/** Bytes of a Uint16 table indexed by `bits` bits. */
const lookupBytes = (bits: number) => 2 << bits;

/** Byte offsets of a Huffman table's parts in its slot. */
export const TABLE = {
  /** Uint16[2^LOOKAHEAD]: (code length << 8) | symbol, 0 for a longer code. */
  codes: 0,
  /** Uint16[2^LOOKAHEAD]: as a DC code, the bits of the code and of the difference after it. */
  dcSteps: lookupBytes(LOOKAHEAD),
  /** Uint16[2^LOOKAHEAD]: as a sequential AC code, its bits | index advance << 5 | code length << 12. */
  acSteps: 2 * lookupBytes(LOOKAHEAD),
  /**
   * Uint16[2^PAIR_BITS]: the sequential AC codes at the start of the next PAIR_BITS bits: two at once where the
   * second lies in them too (their bits | index advance << 5 | PAIR), else the first alone (acSteps' bits and
   * advance); 0 for a first code longer than LOOKAHEAD bits.
   */
  acPairs: 3 * lookupBytes(LOOKAHEAD),
  /** Int32[17]: the largest code of each length, -1 for none. */
  maxCode: 3 * lookupBytes(LOOKAHEAD) + lookupBytes(PAIR_BITS),
  /** Int32[17]: symbol index minus code, per length. */
  valueOffset: 3 * lookupBytes(LOOKAHEAD) + lookupBytes(PAIR_BITS) + 68,
  /** Uint8[256]: the symbols, as the file lists them. */
  symbols: 3 * lookupBytes(LOOKAHEAD) + lookupBytes(PAIR_BITS) + 136,
};
const TABLE_BYTES = TABLE.symbols + 256;
/** The flag of a pair in acPairs. */
const PAIR = 1 << 15;
export const TABLE_SLOTS = 64;
export const BLOCKS = 0;
export const MAX_BLOCKS_PER_MCU = 10;
const TABLES = 1024;
export const DATA = TABLES + TABLE_SLOTS * TABLE_BYTES;
/**
 * Zeros after the data: a block reads at most 64 codes of at most 31 bits past its start, and blocks start at
 * most 8 bytes past the end, so no read goes past the padding.
 */
export const DATA_PADDING = 8 + (64 * 31) / 8 + 16;

/** The address of table slot `i`. */
export const tableAddress = (i: number) => TABLES + i * TABLE_BYTES;

// decode's parameters and locals.
const [bit, end, mcus, blocks, withAc] = [0, 1, 2, 3, 4];
const [p, acc, n, j, k, table, step, limit, _length, code, word, next] = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
/** decode's function index of long_step. */
const LONG_STEP = 2;
const LOCALS = [I32, I64, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32];

/** Make n >= 32: the next 4 bytes at p, big-endian, go in under the n bits left at the top of acc. */
const refill = [
  ...get(n),
  ...i32(32),
  ...LT_U,
  ...ifThen(
    [
      ...get(p),
      ...i32Load8U(0),
      ...i32(24),
      ...SHL,
      ...get(p),
      ...i32Load8U(1),
      ...i32(16),
      ...SHL,
      ...OR,
      ...get(p),
      ...i32Load8U(2),
      ...i32(8),
      ...SHL,
      ...OR,
      ...get(p),
      ...i32Load8U(3),
      ...OR,
      ...I64_EXTEND_I32_U,
      ...i32(32),
      ...get(n),
      ...SUB,
      ...I64_EXTEND_I32_U,
      ...I64_SHL,
      ...get(acc),
      ...I64_OR,
      ...set(acc),
    ],
    [...get(p), ...i32(4), ...ADD, ...set(p), ...get(n), ...i32(32), ...ADD, ...set(n)],
  ),
];

/** Drop the bits that `bits` (code leaving an i32, evaluated twice) counts from the top of acc. */
const drop = (bits: number[]) => [
  ...get(acc),
  ...bits,
  ...I64_EXTEND_I32_U,
  ...I64_SHL,
  ...set(acc),
  ...get(n),
  ...bits,
  ...SUB,
  ...set(n),
];

/** The top `count` bits of acc as an i32. */
const topBits = (count: number) => [...get(acc), ...i64(64 - count), ...I64_SHR_U, ...I32_WRAP_I64];

/** The address of entry `index` (code leaving an i32) of a Uint16 part of the table at `table`. */
const entry16 = (index: number[]) => [...get(table), ...index, ...i32(1), ...SHL, ...ADD];

/** The local `entry`, (length << 8) | size, as a DC step: the bits of the code and of the difference after it. */
const dcStep = (entry: number) => [...get(entry), ...i32(8), ...SHR_U, ...get(entry), ...i32(15), ...AND, ...ADD];

/**
 * The local `entry`, (length << 8) | run << 4 | size, as an AC step: bits of the code and of the value after it |
 * index advance << 5, the advance being size ? run + 1 : run 15 ? 16 : 64 (end of block). `run`: a scratch local.
 */
const acStep = (entry: number, run: number) => [
  ...dcStep(entry),
  ...get(entry),
  ...i32(4),
  ...SHR_U,
  ...i32(15),
  ...AND,
  ...tee(run),
  ...i32(1),
  ...ADD,
  ...i32(16),
  ...i32(64),
  ...get(run),
  ...i32(15),
  ...EQ,
  ...SELECT,
  ...get(entry),
  ...i32(15),
  ...AND,
  ...SELECT,
  ...i32(5),
  ...SHL,
  ...OR,
];

/** long_step's `as`: what it answers for the code. */
export const LONG_STEP_AS = { dcStep: 0, acStep: 1, entry: 2 };

/**
 * long_step(table, word, as): a code longer than LOOKAHEAD bits at the top of the 16-bit `word`, as a DC step, an
 * AC step or its entry ((length << 8) | symbol); -1 when no code of up to 16 bits matches (T.81 F.2.2.3). Rare: a
 * function of its own, called from both loops (and from JS), keeps them short.
 */
function longStepBody(): number[][] {
  const [table, word, as, length, code, entry, run] = [0, 1, 2, 3, 4, 5, 6];
  return [
    block(
      [...i32(LOOKAHEAD + 1), ...set(length)],
      loop(
        [...get(word), ...i32(16), ...get(length), ...SUB, ...SHR_U, ...tee(code)],
        [...get(table), ...get(length), ...i32(2), ...SHL, ...ADD, ...i32Load(TABLE.maxCode), ...LE_S, ...brIf(1)],
        [...get(length), ...i32(1), ...ADD, ...tee(length), ...i32(16), ...LE_U, ...brIf(0)],
      ),
      [...i32(-1), ...RETURN],
    ),
    [...get(length), ...i32(8), ...SHL],
    [...get(table), ...get(code), ...ADD],
    [...get(table), ...get(length), ...i32(2), ...SHL, ...ADD, ...i32Load(TABLE.valueOffset), ...ADD],
    [...i32Load8U(TABLE.symbols), ...OR, ...set(entry)],
    [...get(as), ...i32(LONG_STEP_AS.entry), ...EQ],
    ifElse(I32, [get(entry)], [[...get(as), ...ifElse(I32, [acStep(entry, run)], [dcStep(entry)])]]),
  ];
}

/** The step of the long code at the top of acc in the table at `table`, or return -1 from decode. */
const longStep = (as: number) => [
  ...get(table),
  ...topBits(16),
  ...i32(as),
  ...call(LONG_STEP),
  ...tee(step),
  ...i32(0),
  ...LT_S,
  ...ifThen([...i32(-1), ...RETURN]),
];

/** A block's DC code and the difference bits after it. */
const dcCode = [
  ...get(j),
  ...i32Load(BLOCKS),
  ...set(table),
  ...refill,
  ...entry16(topBits(LOOKAHEAD)),
  ...i32Load16U(TABLE.dcSteps),
  ...tee(step),
  ...EQZ,
  ...ifThen(longStep(LONG_STEP_AS.dcStep)),
  ...drop(get(step)),
];

/**
 * A block's AC codes, two at a time where the pair table has them, up to the end of the block. Only the step that
 * reaches the end of the block checks whether a pair crosses it (the first code ends the block: rare).
 */
const acCodes = [
  ...get(j),
  ...i32Load(BLOCKS + 4),
  ...set(table),
  ...i32(1),
  ...set(k),
  ...block(
    loop(
      refill,
      [...topBits(PAIR_BITS), ...set(word)],
      [...entry16(get(word)), ...i32Load16U(TABLE.acPairs), ...tee(step), ...EQZ],
      ifThen(longStep(LONG_STEP_AS.acStep)),
      [...get(k), ...get(step), ...i32(5), ...SHR_U, ...i32(127), ...AND, ...ADD, ...tee(next), ...i32(64), ...GE_U],
      ifThen(
        [...get(step), ...i32(15), ...SHR_U],
        [
          ...get(k),
          ...entry16([...get(word), ...i32(PAIR_BITS - LOOKAHEAD), ...SHR_U]),
          ...i32Load16U(TABLE.acSteps),
          ...tee(code),
        ],
        [...i32(5), ...SHR_U, ...i32(127), ...AND, ...ADD, ...i32(64), ...GE_U, ...AND],
        ifThen([...get(code), ...set(step)]),
        drop([...get(step), ...i32(31), ...AND]),
        br(2),
      ),
      drop([...get(step), ...i32(31), ...AND]),
      [...get(next), ...set(k), ...br(0)],
    ),
  ),
];

const decodeBody = [
  [...get(bit), ...i32(3), ...SHR_U, ...i32(DATA), ...ADD, ...set(p)],
  [...get(end), ...i32(DATA + 8), ...ADD, ...set(limit)],
  refill,
  drop([...get(bit), ...i32(7), ...AND]),
  block(
    loop(
      [...get(mcus), ...EQZ, ...brIf(1)],
      [...get(mcus), ...i32(1), ...SUB, ...set(mcus), ...i32(0), ...set(j)],
      loop(
        [...get(p), ...get(limit), ...GT_U, ...ifThen([...i32(-2), ...RETURN])],
        dcCode,
        [...get(withAc), ...ifThen(acCodes)],
        [...get(j), ...i32(8), ...ADD, ...tee(j), ...get(blocks), ...i32(3), ...SHL, ...LT_U, ...brIf(0)],
      ),
      br(0),
    ),
  ),
  [...get(p), ...i32(DATA), ...SUB, ...i32(3), ...SHL, ...get(n), ...SUB],
];

/**
 * fill_steps(table, ac): fill a table's step parts from its codes: dcSteps (ac = 0), or acSteps and acPairs.
 *   for each LOOKAHEAD-bit pattern i: dcSteps[i] = dcStep(codes[i]), or acSteps[i] = acStep(codes[i]) | length << 12
 *   for each PAIR_BITS-bit pattern w, first = acSteps[w >> (PAIR_BITS - LOOKAHEAD)], second = the step after it:
 *     acPairs[w] = first is a code, not an end of block, and second's code also lies in w
 *       ? (bits + bits(second)) | (advance + advance(second)) << 5 | PAIR : first & 0xfff
 */
function fillStepsBody(): number[][] {
  const [table, ac, i, entry, run, first, bits, advance, second] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const at = (index: number[]) => [...get(table), ...index, ...i32(1), ...SHL, ...ADD];
  const extra = PAIR_BITS - LOOKAHEAD;
  return [
    [...i32(0), ...set(i)],
    loop(
      [...at(get(i)), ...i32Load16U(TABLE.codes), ...set(entry)],
      get(ac),
      ifElse(
        NO_RESULT,
        [
          at(get(i)),
          acStep(entry, run),
          [
            ...get(entry),
            ...i32(8),
            ...SHR_U,
            ...i32(12),
            ...SHL,
            ...OR,
            ...i32(0),
            ...get(entry),
            ...SELECT,
            ...i32Store16(TABLE.acSteps),
          ],
        ],
        [at(get(i)), dcStep(entry), i32Store16(TABLE.dcSteps)],
      ),
      [...get(i), ...i32(1), ...ADD, ...tee(i), ...i32(1 << LOOKAHEAD), ...LT_U, ...brIf(0)],
    ),
    [...get(ac), ...EQZ, ...ifThen(RETURN)],
    [...i32(0), ...set(i)],
    loop(
      [...get(i), ...i32(extra), ...SHR_U, ...set(entry)],
      [...at(get(entry)), ...i32Load16U(TABLE.acSteps), ...tee(first), ...i32(31), ...AND, ...set(bits)],
      [...get(first), ...i32(5), ...SHR_U, ...i32(127), ...AND, ...set(advance)],
      [
        ...at([...get(i), ...get(bits), ...SHL, ...i32((1 << PAIR_BITS) - 1), ...AND, ...i32(extra), ...SHR_U]),
        ...i32Load16U(TABLE.acSteps),
        ...set(second),
      ],
      [...at(get(i))],
      [...get(bits), ...get(second), ...i32(31), ...AND, ...ADD],
      [
        ...get(advance),
        ...get(second),
        ...i32(5),
        ...SHR_U,
        ...i32(127),
        ...AND,
        ...ADD,
        ...i32(5),
        ...SHL,
        ...OR,
        ...i32(PAIR),
        ...OR,
      ],
      [...get(first), ...i32(0xfff), ...AND],
      [...get(first), ...i32(0), ...NE, ...get(advance), ...i32(64), ...LT_U, ...AND],
      [...get(second), ...i32(0), ...NE, ...AND],
      [...get(bits), ...get(second), ...i32(12), ...SHR_U, ...ADD, ...i32(PAIR_BITS), ...LE_U, ...AND],
      [...SELECT, ...i32Store16(TABLE.acPairs)],
      [...get(i), ...i32(1), ...ADD, ...tee(i), ...i32(1 << PAIR_BITS), ...LT_U, ...brIf(0)],
    ),
  ];
}

let compiled: WebAssembly.Module | undefined;

export interface HuffmanKernel {
  memory: WebAssembly.Memory;
  decode(bit: number, end: number, mcus: number, blocks: number, withAc: number): number;
  fillSteps(table: number, ac: number): void;
  longStep(table: number, word: number, as: number): number;
}

/** The kernel on a fresh memory with room for `dataBytes` bytes after DATA. */
export function createHuffmanKernel(dataBytes: number): HuffmanKernel {
  compiled ??= new WebAssembly.Module(
    assembleModule([
      { name: 'decode', params: [I32, I32, I32, I32, I32], results: [I32], locals: LOCALS, body: decodeBody },
      {
        name: 'fill_steps',
        params: [I32, I32],
        results: [],
        locals: [I32, I32, I32, I32, I32, I32, I32],
        body: fillStepsBody(),
      },
      {
        name: 'long_step',
        params: [I32, I32, I32],
        results: [I32],
        locals: [I32, I32, I32, I32],
        body: longStepBody(),
      },
    ]),
  );
  const memory = new WebAssembly.Memory({ initial: Math.ceil((DATA + dataBytes) / 65536) });
  const exports = new WebAssembly.Instance(compiled, { env: { memory } }).exports as {
    decode: HuffmanKernel['decode'];
    fill_steps: HuffmanKernel['fillSteps'];
    long_step: HuffmanKernel['longStep'];
  };
  return { memory, decode: exports.decode, fillSteps: exports.fill_steps, longStep: exports.long_step };
}
