// A JPEG integrity check without a decoder: walk the markers and entropy-decode every scan, as libjpeg does before
// its inverse DCT, and stop there (no IDCT, no upsampling, no colour, no pixels). It refuses what libjpeg refuses
// or warns about in the coded data of baseline, extended and progressive Huffman JPEGs: bad Huffman codes or
// tables, data cut short or running into a marker, bytes left over before a marker, wrong restart markers, an
// inconsistent progression, a missing table or frame. Every entropy-coded bit is read, so corruption is found as
// surely as by a decode, at a small fraction of its cost. Nothing that sharp (failOn 'warning') refuses passes; a
// few damaged files that sharp decodes anyway are refused (libjpeg's fast path skips bad codes silently, and sharp
// stops reading a sequential image at its last row). Codings it does not cover (arithmetic, lossless,
// hierarchical, 12-bit, DNL, images over ~90 MP) are answered 'unsupported': sharp decides.

export type JpegVerdict = { status: 'ok' } | { status: 'corrupt'; reason: string } | { status: 'unsupported'; reason: string };

export function checkJpeg(data: Uint8Array): JpegVerdict {
  try {
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
    components.push({ id, h, v, quantTable, blocksPerLine: 0, blocksPerColumn: 0, coefBits: new Int8Array(64).fill(-1) });
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
  tables.frame = { progressive, components, mcusPerLine: Math.ceil(width / (8 * hMax)), mcusPerColumn: Math.ceil(height / (8 * vMax)) };
}

function readHuffmanTables(tables: Tables, s: Buffer): void {
  for (let p = 0; p < s.length; ) {
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
  for (let p = 0; p < s.length; ) {
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
  // One entry per block of an MCU: a single-component scan has one block per MCU, an interleaved one h × v per component.
  const components: Component[] = [];
  const dcTables: HuffmanTable[] = [];
  const acTables: HuffmanTable[] = [];
  for (let i = 0; i < n; i++) {
    const component = frame.components.find((c) => c.id === s[1 + 2 * i]) ?? corrupt('bad component id in SOS');
    if (components.includes(component)) corrupt('component twice in one scan');
    if (!tables.quant[component.quantTable]) corrupt('quantization table not defined');
    components.push(component);
    const dc = usesDc ? huffmanTable(tables.dc, s[2 + 2 * i] >> 4, true) : EMPTY_TABLE;
    const ac = usesAc ? huffmanTable(tables.ac, s[2 + 2 * i] & 15, false) : EMPTY_TABLE;
    for (let b = 0; b < (n === 1 ? 1 : component.h * component.v); b++) dcTables.push(dc), acTables.push(ac);
  }
  if (dcTables.length > 10) corrupt('too many blocks per MCU');

  let decode: (r: BitReader, first: number, count: number) => void;
  if (!frame.progressive) {
    if (ss !== 0 || se !== 63 || ah !== 0 || al !== 0) corrupt('invalid SOS parameters for sequential JPEG');
    decode = (r, _first, count) => decodeSequential(r, count, dcTables, acTables);
  } else {
    checkProgression(components, ss, se, ah, al);
    if (ss === 0 && ah === 0) decode = (r, _first, count) => decodeDcFirst(r, count, dcTables);
    else if (ss === 0) decode = (r, _first, count) => r.skip(count * dcTables.length); // one bit per block
    else {
      const c = components[0];
      const nonzero = (c.nonzero ??= new Int32Array(c.blocksPerLine * c.blocksPerColumn * 2));
      const ac = acTables[0];
      decode = ah === 0 ? (r, first, count) => decodeAcFirst(r, ac, nonzero, first, count, ss, se) : (r, first, count) => decodeAcRefine(r, ac, nonzero, first, count, ss, se);
    }
  }

  const mcus = n === 1 ? components[0].blocksPerLine * components[0].blocksPerColumn : frame.mcusPerLine * frame.mcusPerColumn;
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
    if (data[at] !== 0xd0 + (restart & 7)) corrupt(`found marker 0x${data[at].toString(16)} instead of RST${restart & 7}`);
    pos = at + 1;
  }
}

/** Bytes tolerated between a sequential image's data and its EOI marker. */
const EOI_PADDING = 16;

/** libjpeg's checks of a progressive scan's spectral selection and successive approximation. */
function checkProgression(components: Component[], ss: number, se: number, ah: number, al: number): void {
  const bad = (ss === 0 ? se !== 0 : ss > se || se > 63 || components.length !== 1) || (ah !== 0 && al !== ah - 1) || al > 13;
  if (bad) corrupt('invalid progressive parameters');
  for (const { coefBits } of components) {
    if (ss > 0 && coefBits[0] < 0) corrupt('inconsistent progression sequence');
    for (let k = ss; k <= se; k++) {
      if (ah !== (coefBits[k] < 0 ? 0 : coefBits[k])) corrupt('inconsistent progression sequence');
      coefBits[k] = al;
    }
  }
}

// The decoding loops below are the hot path. They keep the bit position in a local and read the next bits with
// one 32-bit load at the byte holding it. Reads past the end of the data see zeros or stale bytes (the caller then
// finds the data was too short), or throw a RangeError past the buffer (readScan reports it the same way).

/** The next `n` (<= 24) bits at bit position `bit`. */
function peek(view: DataView, bit: number, n: number): number {
  return (view.getUint32(bit >>> 3) << (bit & 7)) >>> (32 - n);
}

/** The bit position after the DC code (and the difference bits after it) at `bit`. */
function skipDc(view: DataView, bit: number, dc: HuffmanTable): number {
  const step = (dc.dcSteps ??= lookup(dc, dcStep))[peek(view, bit, LOOKAHEAD)];
  return bit + (step !== 0 ? step : dcStep(longCode(dc, peek(view, bit, 16))));
}

/** Baseline and extended sequential scans: per block, a DC difference and up to 63 run/size AC codes. */
function decodeSequential(r: BitReader, count: number, dcTables: HuffmanTable[], acTables: HuffmanTable[]): void {
  const view = r.view;
  let bit = r.bit;
  for (let m = 0; m < count; m++) {
    for (let j = 0; j < dcTables.length; j++) {
      bit = skipDc(view, bit, dcTables[j]);
      const ac = acTables[j];
      const pairs = (ac.acPairs ??= pairSteps(ac));
      const steps = ac.acSteps!;
      for (let k = 1; k < 64; ) {
        const word = peek(view, bit, PAIR_BITS);
        const first = steps[word >>> (PAIR_BITS - LOOKAHEAD)];
        const pair = pairs[word];
        if (first === 0) {
          const step = acStep(longCode(ac, peek(view, bit, 16)));
          bit += step & 31;
          k += (step >>> 5) & 127;
        } else if (pair !== 0 && k + ((first >>> 5) & 127) < 64) {
          bit += pair & 31; // both codes belong to this block
          k += pair >>> 5;
        } else {
          bit += first & 31;
          k += (first >>> 5) & 127;
        }
      }
    }
  }
  r.bit = bit;
}

function decodeDcFirst(r: BitReader, count: number, dcTables: HuffmanTable[]): void {
  const view = r.view;
  let bit = r.bit;
  for (let m = 0; m < count; m++) {
    for (let j = 0; j < dcTables.length; j++) bit = skipDc(view, bit, dcTables[j]);
  }
  r.bit = bit;
}

/** The (code length << 8) | symbol of the Huffman code at `bit`. */
function decodeSymbol(view: DataView, bit: number, table: HuffmanTable): number {
  const entry = table.codes[peek(view, bit, LOOKAHEAD)];
  return entry !== 0 ? entry : longCode(table, peek(view, bit, 16));
}

/** libjpeg's decode_mcu_AC_first, keeping only which coefficients become nonzero. */
function decodeAcFirst(r: BitReader, ac: HuffmanTable, nonzero: Int32Array, first: number, count: number, ss: number, se: number): void {
  const view = r.view;
  let bit = r.bit;
  let eobRun = r.eobRun;
  for (let m = first; m < first + count; m++) {
    if (eobRun > 0) {
      eobRun--;
      continue;
    }
    const base = m * 2;
    for (let k = ss; k <= se; ) {
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
function decodeAcRefine(r: BitReader, ac: HuffmanTable, nonzero: Int32Array, first: number, count: number, ss: number, se: number): void {
  const view = r.view;
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

/** Codes of up to LOOKAHEAD bits are found in one table look-up; longer ones by their length (T.81 F.2.2.3). */
const LOOKAHEAD = 9;
/** Sequential AC codes are looked up two at a time where both fit in this many bits. */
const PAIR_BITS = 12;

/**
 * A Huffman table as the file defines it (checked as libjpeg does), and look-up tables indexed by the next
 * LOOKAHEAD bits, each built when a scan first needs it. An entry 0 means: a longer code, see longCode.
 */
interface HuffmanTable {
  maxCode: Int32Array;
  valueOffset: Int32Array;
  symbols: Uint8Array;
  /** (code length << 8) | symbol. */
  codes: Uint16Array;
  /** As a DC code: dcStep. */
  dcSteps?: Uint16Array;
  /** As a sequential AC code: acStep. */
  acSteps?: Uint16Array;
  /** Two sequential AC codes at once, indexed by the next PAIR_BITS bits: pairSteps. */
  acPairs?: Uint16Array;
}

const EMPTY_TABLE = buildTable(new Uint8Array(16), new Uint8Array(0));

/** Bits of a DC code (entry: length << 8 | size) and of the difference after it. */
function dcStep(entry: number): number {
  return (entry >>> 8) + (entry & 15);
}

/**
 * A sequential AC code (entry: length << 8 | run << 4 | size): the bits of the code and of the value after it,
 * | how far it moves the coefficient index << 5 (64: end of block), | the code's length << 12.
 */
function acStep(entry: number): number {
  const [length, run, size] = [entry >>> 8, (entry >>> 4) & 15, entry & 15];
  return (length + size) | ((size ? run + 1 : run === 15 ? 16 : 64) << 5) | (length << 12);
}

function lookup(table: HuffmanTable, step: (entry: number) => number): Uint16Array {
  const steps = new Uint16Array(table.codes.length);
  for (let i = 0; i < steps.length; i++) if (table.codes[i] !== 0) steps[i] = step(table.codes[i]);
  return steps;
}

/**
 * For each PAIR_BITS-bit pattern whose first AC code (not an end of block) is followed by a second code that also
 * lies in the pattern: both codes' bits (codes and values) | the index advance of both << 5. 0 where there is no
 * such pair. The decoder takes the pair unless the first code ends the block.
 */
function pairSteps(table: HuffmanTable): Uint16Array {
  const steps = (table.acSteps ??= lookup(table, acStep));
  const pairs = new Uint16Array(1 << PAIR_BITS);
  const extra = PAIR_BITS - LOOKAHEAD;
  // The first code is the same for the 2^extra patterns that share its LOOKAHEAD-bit prefix.
  for (let prefix = 0; prefix < steps.length; prefix++) {
    const first = steps[prefix];
    const [bits, advance] = [first & 31, (first >>> 5) & 127];
    if (first === 0 || advance >= 64 || bits >= PAIR_BITS) continue;
    for (let p = prefix << extra; p < (prefix + 1) << extra; p++) {
      const second = steps[((p << bits) & (pairs.length - 1)) >>> extra];
      if (second !== 0 && bits + (second >>> 12) <= PAIR_BITS) pairs[p] = (bits + (second & 31)) | ((advance + ((second >>> 5) & 127)) << 5);
    }
  }
  return pairs;
}

/** A code longer than LOOKAHEAD bits at the start of `word` (16 bits): (length << 8) | symbol. */
function longCode(table: HuffmanTable, word: number): number {
  for (let length = LOOKAHEAD + 1; length <= 16; length++) {
    const code = word >>> (16 - length);
    if (code <= table.maxCode[length]) return (length << 8) | table.symbols[code + table.valueOffset[length]];
  }
  return corrupt('bad Huffman code');
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
  const codes = new Uint16Array(1 << LOOKAHEAD);
  const maxCode = new Int32Array(17).fill(-1);
  const valueOffset = new Int32Array(17);
  let code = 0;
  let k = 0;
  for (let length = 1; length <= 16; length++) {
    valueOffset[length] = k - code;
    for (let i = 0; i < counts[length - 1]; i++, k++, code++) {
      const shift = LOOKAHEAD - length;
      if (shift >= 0) codes.fill((length << 8) | symbols[k], code << shift, (code + 1) << shift);
    }
    maxCode[length] = counts[length - 1] ? code - 1 : -1;
    // No code may be all ones, so the codes of each length must leave room (libjpeg's JERR_BAD_HUFF_TABLE).
    if (code >= 1 << length) corrupt('bad Huffman table');
    code <<= 1;
  }
  return { codes, maxCode, valueOffset, symbols };
}

/** Growing scratch buffer for one restart interval of entropy-coded data, byte stuffing removed. */
let scratch = new Uint8Array(1 << 16);
let scratchView = new DataView(scratch.buffer);

/** The bits of one restart interval: the decoding loops read `view` from `bit`; bitsLeft() < 0 means it ran past the end. */
class BitReader {
  view = scratchView;
  bit = 0;
  /** A progressive AC scan's end-of-band run: blocks left without more coefficients. */
  eobRun = 0;
  private end = 0;

  /**
   * Take the entropy-coded bytes from `pos` up to the next marker, unstuffing FF 00 to FF (and FF FF… 00 the same,
   * as libjpeg does). Returns where the marker starts. Resets the bit position and the end-of-band run.
   */
  load(data: Buffer, pos: number): number {
    let out = 0;
    for (;;) {
      const ff = data.indexOf(0xff, pos);
      if (ff < 0) corrupt('premature end of JPEG file');
      reserve(out + (ff - pos) + 1);
      scratch.set(data.subarray(pos, ff), out);
      out += ff - pos;
      let next = ff + 1;
      while (next < data.length && data[next] === 0xff) next++;
      if (next >= data.length) corrupt('premature end of JPEG file');
      if (data[next] !== 0) {
        scratch.fill(0, out, out + 4); // the 32-bit look-ahead past the end reads zeros
        this.view = scratchView;
        this.end = out * 8;
        this.bit = 0;
        this.eobRun = 0;
        return ff;
      }
      scratch[out++] = 0xff;
      pos = next + 1;
    }
  }

  bitsLeft(): number {
    return this.end - this.bit;
  }

  skip(n: number): void {
    this.bit += n;
  }
}

function reserve(size: number): void {
  if (size + 4 <= scratch.length) return;
  const grown = new Uint8Array(Math.max(scratch.length * 2, size + 4));
  grown.set(scratch);
  scratch = grown;
  scratchView = new DataView(scratch.buffer);
}
