// A JPEG integrity check without a decoder: walk the markers and entropy-decode every scan, as libjpeg does before
// its inverse DCT, and stop there (no IDCT, no upsampling, no colour, no pixels). It refuses what libjpeg refuses,
// or warns about (sharp's failOn 'warning'), in the coded data of baseline, extended and progressive Huffman JPEGs:
// bad Huffman codes or tables, data cut short or running into a marker, bytes left over before a marker, wrong
// restart markers, an inconsistent progression, a missing table or frame. Every entropy-coded bit is read, so
// corruption is found as surely as by a decode, at a small fraction of its cost. Codings it does not cover
// (arithmetic, lossless, hierarchical, 12-bit, DNL, images over ~10 MP) are answered 'unsupported': sharp decides.

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

/** Larger images go to sharp: the progressive check keeps one byte per coefficient (64 per block). */
const MAX_BLOCKS = 1 << 18;

interface Component {
  id: number;
  h: number;
  v: number;
  quantTable: number;
  blocksPerLine: number;
  blocksPerColumn: number;
  /** Progressive: the last successive-approximation bit of each coefficient seen so far, -1 for none (libjpeg's coef_bits). */
  coefBits: Int8Array;
  /** Progressive: per block and zigzag index, whether the coefficient is nonzero yet (AC refinement reads depend on it). */
  nonzero?: Uint8Array;
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
      const nonzero = (c.nonzero ??= new Uint8Array(c.blocksPerLine * c.blocksPerColumn * 64));
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
    decode(reader, done, count);
    done += count;
    // Only the bits that pad the last byte may be left over: more means the data and the image size disagree.
    const left = reader.bitsLeft();
    if (left < 0) corrupt('premature end of data segment');
    if (left >= 8) corrupt('extraneous bytes before marker');
    if (done === mcus) return marker;
    let at = marker;
    while (data[at] === 0xff) at++;
    if (data[at] !== 0xd0 + (restart & 7)) corrupt(`found marker 0x${data[at].toString(16)} instead of RST${restart & 7}`);
    pos = at + 1;
  }
}

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

// The decoding loops below are the hot path: they keep the bit position in a local and read 16 bits at a time.
// Reads past the end of the data see zeros (or stale bytes): the caller then finds the data was too short.

/** The 16 bits at bit position `bit`. */
function word16(b: Uint8Array, bit: number): number {
  const i = bit >>> 3;
  return (((b[i] << 16) | (b[i + 1] << 8) | b[i + 2]) >>> (8 - (bit & 7))) & 0xffff;
}

/** Baseline and extended sequential scans: per block, a DC difference and up to 63 run/size AC codes. */
function decodeSequential(r: BitReader, count: number, dcTables: HuffmanTable[], acTables: HuffmanTable[]): void {
  const b = r.bytes;
  let bit = r.bit;
  for (let m = 0; m < count; m++) {
    for (let j = 0; j < dcTables.length; j++) {
      const dc = dcTables[j];
      let word = word16(b, bit);
      let entry = dc.dcSkip[word >>> (16 - LOOKAHEAD)];
      bit += entry !== 0 ? entry : dcStep(longCode(dc, word));
      const ac = acTables[j];
      for (let k = 1; k < 64; ) {
        word = word16(b, bit);
        entry = ac.acSkip[word >>> (16 - LOOKAHEAD)];
        if (entry === 0) entry = acStep(longCode(ac, word));
        bit += entry & 31;
        k += entry >>> 5;
      }
    }
  }
  r.bit = bit;
}

function decodeDcFirst(r: BitReader, count: number, dcTables: HuffmanTable[]): void {
  const b = r.bytes;
  let bit = r.bit;
  for (let m = 0; m < count; m++) {
    for (let j = 0; j < dcTables.length; j++) {
      const word = word16(b, bit);
      const entry = dcTables[j].dcSkip[word >>> (16 - LOOKAHEAD)];
      bit += entry !== 0 ? entry : dcStep(longCode(dcTables[j], word));
    }
  }
  r.bit = bit;
}

/** libjpeg's decode_mcu_AC_first, keeping only which coefficients become nonzero. */
function decodeAcFirst(r: BitReader, ac: HuffmanTable, nonzero: Uint8Array, first: number, count: number, ss: number, se: number): void {
  const b = r.bytes;
  let bit = r.bit;
  let eobRun = r.eobRun;
  for (let m = first; m < first + count; m++) {
    if (eobRun > 0) {
      eobRun--;
      continue;
    }
    const base = m * 64;
    for (let k = ss; k <= se; ) {
      const word = word16(b, bit);
      let entry = ac.fast[word >>> (16 - LOOKAHEAD)];
      if (entry === 0) entry = longCode(ac, word);
      bit += entry >>> 8;
      const run = (entry >>> 4) & 15;
      const size = entry & 15;
      if (size) {
        k += run;
        bit += size;
        nonzero[base + (k > 63 ? 63 : k)] = 1; // libjpeg's zigzag table is padded with 63 past the end
        k++;
      } else if (run === 15) k += 16;
      else {
        // End of band: this block and the next 2^run - 1 + (run extra bits) blocks have no more coefficients.
        eobRun = (1 << run) - 1 + (run ? word16(b, bit) >>> (16 - run) : 0);
        bit += run;
        break;
      }
    }
  }
  r.bit = bit;
  r.eobRun = eobRun;
}

/** libjpeg's decode_mcu_AC_refine: the same bits read, keeping only which coefficients are nonzero. */
function decodeAcRefine(r: BitReader, ac: HuffmanTable, nonzero: Uint8Array, first: number, count: number, ss: number, se: number): void {
  const b = r.bytes;
  let bit = r.bit;
  let eobRun = r.eobRun;
  for (let m = first; m < first + count; m++) {
    const base = m * 64;
    let k = ss;
    if (eobRun === 0) {
      for (; k <= se; k++) {
        const word = word16(b, bit);
        let entry = ac.fast[word >>> (16 - LOOKAHEAD)];
        if (entry === 0) entry = longCode(ac, word);
        bit += entry >>> 8;
        let run = (entry >>> 4) & 15;
        const size = entry & 15;
        if (size) {
          if (size !== 1) corrupt('bad Huffman code'); // a newly nonzero coefficient is always ±1
          bit += 1; // its sign
        } else if (run !== 15) {
          eobRun = (1 << run) + (run ? word16(b, bit) >>> (16 - run) : 0);
          bit += run;
          break;
        }
        // Pass `run` zero coefficients; each nonzero one passed on the way has a correction bit.
        do {
          if (nonzero[base + k]) bit += 1;
          else if (--run < 0) break;
          k++;
        } while (k <= se);
        if (size) nonzero[base + (k > 63 ? 63 : k)] = 1;
      }
    }
    if (eobRun > 0) {
      for (; k <= se; k++) if (nonzero[base + k]) bit += 1;
      eobRun--;
    }
  }
  r.bit = bit;
  r.eobRun = eobRun;
}

/** Codes of up to LOOKAHEAD bits are found in one table look-up; longer ones by their length (T.81 F.2.2.3). */
const LOOKAHEAD = 9;

interface HuffmanTable {
  /** Indexed by the next LOOKAHEAD bits: (code length << 8) | symbol, 0 when the code is longer. */
  fast: Uint16Array;
  /** The same look-up, as the bits a DC difference takes (code and magnitude): dcStep. */
  dcSkip: Uint16Array;
  /** The same look-up, as an AC code's bits and how far it moves the coefficient index: acStep. */
  acSkip: Uint16Array;
  /** Per code length: the largest code (-1: none) and the offset from a code to its symbol's index. */
  maxCode: Int32Array;
  valueOffset: Int32Array;
  symbols: Uint8Array;
}

const EMPTY_TABLE = buildTable(new Uint8Array(16), new Uint8Array(0));

/** Bits of a DC code (length << 8 | size) and of the difference after it. */
function dcStep(entry: number): number {
  return (entry >>> 8) + (entry & 15);
}

/** Bits of a sequential AC code (length << 8 | run << 4 | size) and of the value after it, | the index advance << 5 (64: end of block). */
function acStep(entry: number): number {
  const [run, size] = [(entry >>> 4) & 15, entry & 15];
  return ((entry >>> 8) + size) | ((size ? run + 1 : run === 15 ? 16 : 64) << 5);
}

/** A code longer than LOOKAHEAD bits at the start of `word`: (length << 8) | symbol. */
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
  const [fast, dcSkip, acSkip] = [new Uint16Array(1 << LOOKAHEAD), new Uint16Array(1 << LOOKAHEAD), new Uint16Array(1 << LOOKAHEAD)];
  const maxCode = new Int32Array(17).fill(-1);
  const valueOffset = new Int32Array(17);
  let code = 0;
  let k = 0;
  for (let length = 1; length <= 16; length++) {
    valueOffset[length] = k - code;
    for (let i = 0; i < counts[length - 1]; i++, k++, code++) {
      if (length > LOOKAHEAD) continue;
      const [from, to] = [code << (LOOKAHEAD - length), (code + 1) << (LOOKAHEAD - length)];
      const entry = (length << 8) | symbols[k];
      fast.fill(entry, from, to);
      dcSkip.fill(dcStep(entry), from, to);
      acSkip.fill(acStep(entry), from, to);
    }
    maxCode[length] = counts[length - 1] ? code - 1 : -1;
    // No code may be all ones, so the codes of each length must leave room (libjpeg's JERR_BAD_HUFF_TABLE).
    if (code >= 1 << length) corrupt('bad Huffman table');
    code <<= 1;
  }
  return { fast, dcSkip, acSkip, maxCode, valueOffset, symbols };
}

/** Growing scratch buffer for one restart interval of entropy-coded data, byte stuffing removed. */
let scratch = new Uint8Array(1 << 16);

/** The bits of one restart interval: the decoding loops read `bytes` from `bit`; bitsLeft() < 0 means it ran past the end. */
class BitReader {
  bytes = scratch;
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
        scratch.fill(0, out, out + 4); // look-ahead past the end reads zeros
        this.bytes = scratch;
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
}
