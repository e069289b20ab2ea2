// A JPEG integrity check without a decoder: walk the markers and entropy-decode every scan, as libjpeg does before
// its inverse DCT, and stop there (no IDCT, no upsampling, no colour, no pixels). It refuses what libjpeg refuses
// or warns about in the coded data of baseline, extended and progressive Huffman JPEGs: bad Huffman codes or
// tables, data cut short or running into a marker, bytes left over before a marker, wrong restart markers, an
// inconsistent progression, a missing table or frame. Every entropy-coded bit is read, so corruption is found as
// surely as by a decode, at a small fraction of its cost. Nothing that sharp (failOn 'warning') refuses passes; a
// few damaged files that sharp decodes anyway are refused (libjpeg's fast path skips bad codes silently, and sharp
// stops reading a sequential image at its last row). Codings it does not cover (arithmetic, lossless,
// hierarchical, 12-bit, DNL, images over ~90 MP) are answered 'unsupported': sharp decides.
// Sequential scans and progressive DC scans are stepped through by a WebAssembly kernel (huffman-kernel.ts), the
// progressive AC scans here; both read the Huffman tables and the data from the kernel's memory.
import {
  BLOCKS,
  DATA,
  DATA_PADDING,
  LONG_STEP_AS,
  LOOKAHEAD,
  MAX_BLOCKS_PER_MCU,
  TABLE,
  TABLE_SLOTS,
  createHuffmanKernel,
  tableAddress,
  type HuffmanKernel,
} from './huffman-kernel.js';

export type JpegVerdict =
  { status: 'ok' } | { status: 'corrupt'; reason: string } | { status: 'unsupported'; reason: string };

export function checkJpeg(data: Uint8Array): JpegVerdict {
  try {
    loadImage(data);
    walkMarkers(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    return { status: 'ok' };
  } catch (err) {
    if (err instanceof Corrupt) return { status: 'corrupt', reason: err.message };
    if (err instanceof Unsupported) return { status: 'unsupported', reason: err.message };
    throw err;
  }
}

class Corrupt extends Error {}
class Unsupported extends Error {}
const corrupt = (reason: string): never => {
  throw new Corrupt(reason);
};
const unsupported = (reason: string): never => {
  throw new Unsupported(reason);
};

/** Larger images go to sharp: a progressive image costs 8 bytes per block here (2M blocks: ~90 MP in 4:2:0). */
const MAX_BLOCKS = 1 << 21;

interface Component {
  id: number;
  h: number;
  v: number;
  quantTable: number;
  blocksPerLine: number;
  blocksPerColumn: number;
  /** Progressive: the last successive-approximation bit of each coefficient seen so far, -1 for none (libjpeg's coef_bits). */
  coefBits: Int8Array;
  /**
   * Progressive: which coefficients of each block are nonzero yet (AC refinement reads depend on it), as a 64-bit
   * mask per block in zigzag order: two words, coefficients 0–31 and 32–63.
   */
  nonzero?: Int32Array;
}

interface Frame {
  progressive: boolean;
  components: Component[];
  mcusPerLine: number;
  mcusPerColumn: number;
}

interface TableSpec {
  counts: Uint8Array;
  symbols: Uint8Array;
  built?: HuffmanTable;
}

interface Tables {
  frame?: Frame;
  dc: (TableSpec | undefined)[];
  ac: (TableSpec | undefined)[];
  quant: boolean[];
  restartInterval: number;
  scans: number;
}

function walkMarkers(data: Buffer): void {
  if (data.length < 2 || data[0] !== 0xff || data[1] !== 0xd8) corrupt('no SOI marker');
  const tables: Tables = { dc: [], ac: [], quant: [], restartInterval: 0, scans: 0 };
  let pos = 2;
  for (;;) {
    // A marker: 0xFF, optional fill bytes 0xFF, its code. Anything else here is data libjpeg skips with a warning.
    if (pos >= data.length) corrupt('premature end of JPEG file');
    if (data[pos] !== 0xff) corrupt('extraneous bytes before marker');
    while (pos < data.length && data[pos] === 0xff) pos++;
    if (pos >= data.length) corrupt('premature end of JPEG file');
    const code = data[pos++];
    if (code === 0xd9) {
      if (!tables.frame || tables.scans === 0) corrupt('no image before the EOI marker');
      return; // libjpeg reads nothing after EOI
    }
    if ((code >= 0xd0 && code <= 0xd7) || code === 0x01) continue; // RSTn, TEM: no parameters
    if (code === 0x00) corrupt('extraneous bytes before marker');
    if (code === 0xd8) corrupt('second SOI marker');
    if (pos + 2 > data.length) corrupt('premature end of JPEG file');
    const length = data.readUInt16BE(pos);
    const end = pos + length;
    if (length < 2) corrupt(`bad length of marker 0x${code.toString(16)}`);
    if (end > data.length) corrupt('premature end of JPEG file');
    const segment = data.subarray(pos + 2, end);
    pos = end;
    if (code === 0xc0 || code === 0xc1 || code === 0xc2) readFrame(tables, segment, code === 0xc2);
    else if (code === 0xc4) readHuffmanTables(tables, segment);
    else if (code === 0xdb) readQuantTables(tables, segment);
    else if (code === 0xdd) {
      if (segment.length !== 2) corrupt('bad DRI length');
      tables.restartInterval = segment.readUInt16BE(0);
    } else if (code === 0xda) {
      pos = readScan(tables, segment, data, pos);
      tables.scans++;
    } else if ((code >= 0xe0 && code <= 0xef) || code === 0xfe) {
      // APPn, COM: metadata, skipped
    } else unsupported(`marker 0x${code.toString(16)} (arithmetic, lossless or hierarchical coding, or unknown)`);
  }
}

function readFrame(tables: Tables, s: Buffer, progressive: boolean): void {
  if (tables.frame) corrupt('second SOF marker');
  if (s.length < 6 || s.length !== 6 + 3 * s[5]) corrupt('bad SOF length');
  const [precision, height, width, count] = [s[0], s.readUInt16BE(1), s.readUInt16BE(3), s[5]];
  if (precision !== 8) unsupported(`${precision}-bit samples`);
  if (height === 0) unsupported('height given by a DNL marker');
  if (width === 0 || count === 0) corrupt('empty image');
  if (count > 4) unsupported(`${count} components`);
  const components: Component[] = [];
  for (let i = 0; i < count; i++) {
    const [id, sampling, quantTable] = [s[6 + 3 * i], s[7 + 3 * i], s[8 + 3 * i]];
    const [h, v] = [sampling >> 4, sampling & 15];
    if (h < 1 || h > 4 || v < 1 || v > 4) corrupt('bad sampling factors');
    if (quantTable > 3) corrupt('bad quantization table index');
    components.push({
      id,
      h,
      v,
      quantTable,
      blocksPerLine: 0,
      blocksPerColumn: 0,
      coefBits: new Int8Array(64).fill(-1),
    });
  }
  const hMax = Math.max(...components.map((c) => c.h));
  const vMax = Math.max(...components.map((c) => c.v));
  let blocks = 0;
  for (const c of components) {
    c.blocksPerLine = Math.ceil((width * c.h) / (8 * hMax));
    c.blocksPerColumn = Math.ceil((height * c.v) / (8 * vMax));
    blocks += c.blocksPerLine * c.blocksPerColumn;
  }
  if (blocks > MAX_BLOCKS) unsupported('image too large for the quick check');
  tables.frame = {
    progressive,
    components,
    mcusPerLine: Math.ceil(width / (8 * hMax)),
    mcusPerColumn: Math.ceil(height / (8 * vMax)),
  };
}

function readHuffmanTables(tables: Tables, s: Buffer): void {
  for (let p = 0; p < s.length;) {
    const index = s[p++];
    if (p + 16 > s.length) corrupt('bad DHT length');
    const counts = s.subarray(p, p + 16);
    p += 16;
    const total = counts.reduce((a, b) => a + b, 0);
    if (total > 256 || p + total > s.length) corrupt('bad Huffman table');
    const symbols = s.subarray(p, p + total);
    p += total;
    if (index >> 4 > 1 || (index & 15) > 3) corrupt('bad Huffman table index');
    (index >> 4 ? tables.ac : tables.dc)[index & 15] = { counts, symbols };
  }
}

function readQuantTables(tables: Tables, s: Buffer): void {
  for (let p = 0; p < s.length;) {
    const index = s[p] & 15;
    if (index > 3) corrupt('bad quantization table index');
    p += 1 + (s[p] >> 4 ? 128 : 64); // 64 entries of 8 or 16 bits
    if (p > s.length) corrupt('bad DQT length');
    tables.quant[index] = true;
  }
}

/** Check a scan's header and decode its entropy-coded data; returns the position of the marker after it. */
function readScan(tables: Tables, s: Buffer, data: Buffer, pos: number): number {
  const frame = tables.frame ?? corrupt('SOS marker before SOF');
  const n = s[0];
  if (n < 1 || n > 4 || s.length !== 4 + 2 * n) corrupt('bad SOS length');
  const [ss, se, ah, al] = [s[1 + 2 * n], s[2 + 2 * n], s[3 + 2 * n] >> 4, s[3 + 2 * n] & 15];
  const usesDc = frame.progressive ? ss === 0 && ah === 0 : true;
  const usesAc = frame.progressive ? ss > 0 : true;
  const components: Component[] = [];
  // The tables of each block of an MCU, for the kernel: (DC table address, AC table address), 0 for a table not
  // used. A single-component scan has one block per MCU, an interleaved one h × v per component.
  const blockTables: number[] = [];
  let ac: HuffmanTable | undefined;
  for (let i = 0; i < n; i++) {
    const component = frame.components.find((c) => c.id === s[1 + 2 * i]) ?? corrupt('bad component id in SOS');
    if (components.includes(component)) corrupt('component twice in one scan');
    if (!tables.quant[component.quantTable]) corrupt('quantization table not defined');
    components.push(component);
    const dc = usesDc ? huffmanTable(tables.dc, s[2 + 2 * i] >> 4, true) : undefined;
    ac = usesAc ? huffmanTable(tables.ac, s[2 + 2 * i] & 15, false) : undefined;
    if (dc) fillSteps(dc, 'dc');
    if (ac && !frame.progressive) fillSteps(ac, 'ac');
    for (let b = 0; b < (n === 1 ? 1 : component.h * component.v); b++)
      blockTables.push(dc?.address ?? 0, ac?.address ?? 0);
  }
  const blocks = blockTables.length / 2;
  if (blocks > MAX_BLOCKS_PER_MCU) corrupt('too many blocks per MCU');
  heap.words.set(blockTables, BLOCKS >> 2);

  let decode: (r: BitReader, first: number, count: number) => void;
  if (!frame.progressive) {
    if (ss !== 0 || se !== 63 || ah !== 0 || al !== 0) corrupt('invalid SOS parameters for sequential JPEG');
    decode = (r, _first, count) => r.decodeInKernel(count, blocks, true);
  } else {
    checkProgression(components, ss, se, ah, al);
    if (ss === 0 && ah === 0) decode = (r, _first, count) => r.decodeInKernel(count, blocks, false);
    else if (ss === 0)
      decode = (r, _first, count) => r.skip(count * blocks); // one bit per block
    else {
      const c = components[0];
      const nonzero = (c.nonzero ??= new Int32Array(c.blocksPerLine * c.blocksPerColumn * 2));
      const table = ac!;
      decode =
        ah === 0
          ? (r, first, count) => decodeAcFirst(r, table, nonzero, first, count, ss, se)
          : (r, first, count) => decodeAcRefine(r, table, nonzero, first, count, ss, se);
    }
  }

  const mcus =
    n === 1 ? components[0].blocksPerLine * components[0].blocksPerColumn : frame.mcusPerLine * frame.mcusPerColumn;
  const interval = tables.restartInterval || mcus;
  const reader = new BitReader();
  for (let done = 0, restart = 0; ; restart++) {
    const marker = reader.load(data, pos);
    const count = Math.min(interval, mcus - done);
    try {
      decode(reader, done, count);
    } catch (err) {
      if (err instanceof RangeError) corrupt('premature end of data segment'); // read far past the end
      throw err;
    }
    done += count;
    // Only the bits that pad the last byte may be left over: more means the data and the image size disagree.
    // Except a few bytes before the end of a sequential image: some encoders pad there, and sharp decodes such an
    // image whole without a warning (a progressive one it refuses: libjpeg reads on to the end marker first).
    const left = reader.bitsLeft();
    if (left < 0) corrupt('premature end of data segment');
    let at = marker;
    while (data[at] === 0xff) at++;
    const padding = !frame.progressive && done === mcus && data[at] === 0xd9 && left < 8 * EOI_PADDING;
    if (left >= 8 && !padding) corrupt('extraneous bytes before marker');
    if (done === mcus) return marker;
    if (data[at] !== 0xd0 + (restart & 7))
      corrupt(`found marker 0x${data[at].toString(16)} instead of RST${restart & 7}`);
    pos = at + 1;
  }
}

/** Bytes tolerated between a sequential image's data and its EOI marker. */
const EOI_PADDING = 16;

/** libjpeg's checks of a progressive scan's spectral selection and successive approximation. */
function checkProgression(components: Component[], ss: number, se: number, ah: number, al: number): void {
  const bad =
    (ss === 0 ? se !== 0 : ss > se || se > 63 || components.length !== 1) || (ah !== 0 && al !== ah - 1) || al > 13;
  if (bad) corrupt('invalid progressive parameters');
  for (const { coefBits } of components) {
    if (ss > 0 && coefBits[0] < 0) corrupt('inconsistent progression sequence');
    for (let k = ss; k <= se; k++) {
      if (ah !== (coefBits[k] < 0 ? 0 : coefBits[k])) corrupt('inconsistent progression sequence');
      coefBits[k] = al;
    }
  }
}

// The progressive AC decoding loops keep the bit position in a local and read the next bits with one 32-bit load
// at the byte holding it. Reads past the end of the data see its zero padding, then whatever the kernel's memory
// holds there (the caller then finds the data was too short), or throw a RangeError past the memory (readScan
// reports it the same way).

/** The next `n` (<= 24) bits at bit position `bit`. */
function peek(view: DataView, bit: number, n: number): number {
  return (view.getUint32(bit >>> 3) << (bit & 7)) >>> (32 - n);
}

/** The (code length << 8) | symbol of the Huffman code at `bit`. */
function decodeSymbol(view: DataView, bit: number, table: HuffmanTable): number {
  const entry = heap.words16[((table.address + TABLE.codes) >>> 1) + peek(view, bit, LOOKAHEAD)];
  return entry !== 0 ? entry : longCode(table, peek(view, bit, 16));
}

/** libjpeg's decode_mcu_AC_first, keeping only which coefficients become nonzero. */
function decodeAcFirst(
  r: BitReader,
  ac: HuffmanTable,
  nonzero: Int32Array,
  first: number,
  count: number,
  ss: number,
  se: number,
): void {
  const view = heap.data;
  let bit = r.bit;
  let eobRun = r.eobRun;
  for (let m = first; m < first + count; m++) {
    if (eobRun > 0) {
      eobRun--;
      continue;
    }
    const base = m * 2;
    for (let k = ss; k <= se;) {
      const entry = decodeSymbol(view, bit, ac);
      bit += entry >>> 8;
      const run = (entry >>> 4) & 15;
      const size = entry & 15;
      if (size) {
        k += run;
        bit += size;
        setNonzero(nonzero, base, k);
        k++;
      } else if (run === 15) k += 16;
      else {
        // End of band: this block and the next 2^run - 1 + (run extra bits) blocks have no more coefficients.
        eobRun = (1 << run) - 1 + (run ? peek(view, bit, run) : 0);
        bit += run;
        break;
      }
    }
  }
  r.bit = bit;
  r.eobRun = eobRun;
}

/** Mark coefficient k of a block nonzero; past 63, 63 (libjpeg's zigzag table is padded with 63 past the end). */
function setNonzero(nonzero: Int32Array, base: number, k: number): void {
  const at = k > 63 ? 63 : k;
  nonzero[base + (at >>> 5)] |= 1 << (at & 31);
}

/** How many bits of `word` are set at positions from..to (0 <= from, to <= 31; none when from > to). */
function bitCount(word: number, from: number, to: number): number {
  if (from > to) return 0;
  let x = (word >>> from) & (0xffffffff >>> (31 - (to - from)));
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** libjpeg's decode_mcu_AC_refine: the same bits read, keeping only which coefficients are nonzero. */
function decodeAcRefine(
  r: BitReader,
  ac: HuffmanTable,
  nonzero: Int32Array,
  first: number,
  count: number,
  ss: number,
  se: number,
): void {
  const view = heap.data;
  let bit = r.bit;
  let eobRun = r.eobRun;
  for (let m = first; m < first + count; m++) {
    const base = m * 2;
    let k = ss;
    if (eobRun === 0) {
      for (; k <= se; k++) {
        const entry = decodeSymbol(view, bit, ac);
        bit += entry >>> 8;
        let run = (entry >>> 4) & 15;
        const size = entry & 15;
        if (size) {
          if (size !== 1) corrupt('bad Huffman code'); // a newly nonzero coefficient is always ±1
          bit += 1; // its sign
        } else if (run !== 15) {
          eobRun = (1 << run) + (run ? peek(view, bit, run) : 0);
          bit += run;
          break;
        }
        // Pass `run` zero coefficients; each nonzero one passed on the way has a correction bit.
        do {
          if ((nonzero[base + (k >>> 5)] >>> (k & 31)) & 1) bit += 1;
          else if (--run < 0) break;
          k++;
        } while (k <= se);
        if (size) setNonzero(nonzero, base, k);
      }
    }
    if (eobRun > 0) {
      // A correction bit for each nonzero coefficient left in the band.
      if (k <= se && k < 32) bit += bitCount(nonzero[base], k, se < 31 ? se : 31);
      if (se >= 32) bit += bitCount(nonzero[base + 1], k > 32 ? k - 32 : 0, se - 32);
      eobRun--;
    }
  }
  r.bit = bit;
  r.eobRun = eobRun;
}

/**
 * A Huffman table as the file defines it (checked as libjpeg does), in a slot of the kernel's memory (layout:
 * TABLE), with look-up tables indexed by the next LOOKAHEAD bits. A codes entry 0 means: a longer code.
 */
interface HuffmanTable {
  address: number;
  /** Which step tables the kernel has filled: for DC codes, for sequential AC codes. */
  steps: { dc: boolean; ac: boolean };
}

/** Have the kernel fill the table's steps for its use as a DC or a sequential AC table, once. */
function fillSteps(table: HuffmanTable, use: 'dc' | 'ac'): void {
  if (table.steps[use]) return;
  kernel!.fillSteps(table.address, use === 'ac' ? 1 : 0);
  table.steps[use] = true;
}

/** A code longer than LOOKAHEAD bits at the start of `word` (16 bits): (length << 8) | symbol. */
function longCode(table: HuffmanTable, word: number): number {
  const entry = kernel!.longStep(table.address, word, LONG_STEP_AS.entry);
  return entry >= 0 ? entry : corrupt('bad Huffman code');
}

/** The table a scan uses, built (and checked as libjpeg does) when first used. */
function huffmanTable(specs: (TableSpec | undefined)[], index: number, dc: boolean): HuffmanTable {
  if (index > 3) corrupt('bad Huffman table index');
  // libjpeg-turbo stands in the standard tables for missing ones (Motion-JPEG): leave those files to it.
  const spec = specs[index] ?? unsupported('Huffman table not defined');
  if (dc && spec.symbols.some((s) => s > 15)) corrupt('bad Huffman table'); // DC sizes go up to 15
  spec.built ??= buildTable(spec.counts, spec.symbols);
  return spec.built;
}

function buildTable(counts: Uint8Array, symbols: Uint8Array): HuffmanTable {
  if (tablesUsed === TABLE_SLOTS) unsupported(`more than ${TABLE_SLOTS} Huffman tables`);
  const address = tableAddress(tablesUsed++);
  heap.bytes.set(symbols, address + TABLE.symbols);
  // Indexes of the table's parts in the Uint16 and Int32 views of the kernel's memory.
  const codes = (address + TABLE.codes) >>> 1;
  const [maxCode, valueOffset] = [(address + TABLE.maxCode) >>> 2, (address + TABLE.valueOffset) >>> 2];
  heap.words16.fill(0, codes, codes + (1 << LOOKAHEAD));
  let code = 0;
  let k = 0;
  for (let length = 1; length <= 16; length++) {
    heap.words[valueOffset + length] = k - code;
    for (let i = 0; i < counts[length - 1]; i++, k++, code++) {
      if (code >= 1 << length) corrupt('bad Huffman table'); // more codes than bits (and past codes[])
      const shift = LOOKAHEAD - length;
      if (shift >= 0)
        heap.words16.fill((length << 8) | symbols[k], codes + (code << shift), codes + ((code + 1) << shift));
    }
    heap.words[maxCode + length] = counts[length - 1] ? code - 1 : -1;
    // No code may be all ones, so the codes of each length must leave room (libjpeg's JERR_BAD_HUFF_TABLE).
    if (code >= 1 << length) corrupt('bad Huffman table');
    code <<= 1;
  }
  return { address, steps: { dc: false, ac: false } };
}

/**
 * This thread's kernel, views on its memory (remade when it grows: growing detaches them), where the image being
 * checked is copied (after DATA's room: restart intervals are unstuffed from there into DATA without allocating),
 * and its used table slots.
 */
let kernel: HuffmanKernel | undefined;
let heap: { bytes: Uint8Array; words16: Uint16Array; words: Int32Array; data: DataView };
let imageAt = 0;
let tablesUsed = 0;

/** Copy the image into the kernel's memory, growing it first if needed (views stay valid while it is checked). */
function loadImage(image: Uint8Array): void {
  imageAt = DATA + image.length + DATA_PADDING;
  const needed = imageAt + image.length;
  if (!kernel) kernel = createHuffmanKernel(needed - DATA);
  else if (kernel.memory.buffer.byteLength < needed)
    kernel.memory.grow(Math.ceil((needed - kernel.memory.buffer.byteLength) / 65536));
  const buffer = kernel.memory.buffer;
  if (heap?.bytes.buffer !== buffer) {
    heap = {
      bytes: new Uint8Array(buffer),
      words16: new Uint16Array(buffer),
      words: new Int32Array(buffer),
      data: new DataView(buffer, DATA),
    };
  }
  heap.bytes.set(image, imageAt);
  tablesUsed = 0;
}

/** The bits of one restart interval: decoders read heap.data from `bit`; bitsLeft() < 0 means they ran past the end. */
class BitReader {
  bit = 0;
  /** A progressive AC scan's end-of-band run: blocks left without more coefficients. */
  eobRun = 0;
  private end = 0;

  /**
   * Take the entropy-coded bytes from `pos` up to the next marker into the kernel's DATA (from the image's copy in
   * the kernel's memory), unstuffing FF 00 to FF (and FF FF… 00 the same, as libjpeg does). Returns where the
   * marker starts. Resets the bit position and the end-of-band run.
   */
  load(data: Buffer, pos: number): number {
    const bytes = heap.bytes;
    let out = DATA;
    for (;;) {
      const ff = data.indexOf(0xff, pos);
      if (ff < 0) corrupt('premature end of JPEG file');
      bytes.copyWithin(out, imageAt + pos, imageAt + ff);
      out += ff - pos;
      let next = ff + 1;
      while (next < data.length && data[next] === 0xff) next++;
      if (next >= data.length) corrupt('premature end of JPEG file');
      if (data[next] !== 0) {
        bytes.fill(0, out, out + DATA_PADDING); // reads past the end see zeros
        this.end = (out - DATA) * 8;
        this.bit = 0;
        this.eobRun = 0;
        return ff;
      }
      bytes[out++] = 0xff;
      pos = next + 1;
    }
  }

  /** Step over `mcus` MCUs of `blocks` blocks in the kernel: DC codes, and AC codes too when `withAc`. */
  decodeInKernel(mcus: number, blocks: number, withAc: boolean): void {
    const bit = kernel!.decode(this.bit, this.end >>> 3, mcus, blocks, withAc ? 1 : 0);
    if (bit === -1) corrupt('bad Huffman code');
    if (bit === -2) corrupt('premature end of data segment');
    this.bit = bit;
  }

  bitsLeft(): number {
    return this.end - this.bit;
  }

  skip(n: number): void {
    this.bit += n;
  }
}
