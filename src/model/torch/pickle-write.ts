// A Python pickle writer, protocol 2 (what torch.save writes into data.pkl), for the few kinds of values a
// checkpoint holds. Python types without a JavaScript twin are spelled with the small classes below.
//
// JavaScript → Python: null → None, boolean → bool, integer number or bigint → int, other number → float,
// string → str, array → list, Map → dict.

/** A Python tuple. */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

/** A `collections.OrderedDict`, written the way pickle writes one (REDUCE with no arguments, then its items). */
export class PyOrderedDict {
  constructor(readonly entries: Map<PyKey, PyValue>) {}
}

/** A module-level name such as `torch.FloatStorage`. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
}

/** `callable(*args)`, evaluated by the unpickler. */
export class PyReduce {
  constructor(
    readonly callable: PyGlobal,
    readonly args: PyTuple,
  ) {}
}

/** A persistent id (BINPERSID): the unpickler's `persistent_load(pid)` supplies the object, e.g. a torch storage. */
export class PyPersistentId {
  constructor(readonly pid: PyValue) {}
}

export type PyKey = string | number | bigint | boolean | null;
export type PyValue =
  PyKey | PyValue[] | Map<PyKey, PyValue> | PyTuple | PyOrderedDict | PyGlobal | PyReduce | PyPersistentId;

class ByteSink {
  private buf = new Uint8Array(1024);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
  byte(...bytes: number[]): void {
    this.reserve(bytes.length);
    for (const b of bytes) this.buf[this.length++] = b;
  }
  bytes(data: Uint8Array): void {
    this.reserve(data.length);
    this.buf.set(data, this.length);
    this.length += data.length;
  }
  u16(v: number): void {
    this.byte(v & 0xff, (v >>> 8) & 0xff);
  }
  u32(v: number): void {
    this.reserve(4);
    new DataView(this.buf.buffer).setUint32(this.length, v, true);
    this.length += 4;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

const PROTO = 0x80;
const STOP = 0x2e;
const MARK = 0x28;
const NONE = 0x4e;
const NEWTRUE = 0x88;
const NEWFALSE = 0x89;
const BININT = 0x4a;
const BININT1 = 0x4b;
const BININT2 = 0x4d;
const LONG1 = 0x8a;
const BINFLOAT = 0x47;
const BINUNICODE = 0x58;
const EMPTY_TUPLE = 0x29;
const TUPLE = 0x74;
const TUPLE1 = 0x85;
const TUPLE2 = 0x86;
const TUPLE3 = 0x87;
const EMPTY_LIST = 0x5d;
const APPENDS = 0x65;
const EMPTY_DICT = 0x7d;
const SETITEMS = 0x75;
const GLOBAL = 0x63;
const REDUCE = 0x52;
const BINPERSID = 0x51;

/** Pickle `value` with protocol 2. */
export function pickle(value: PyValue): Uint8Array {
  const out = new ByteSink();
  out.byte(PROTO, 2);
  write(out, value);
  out.byte(STOP);
  return out.result();
}

function write(out: ByteSink, value: PyValue): void {
  if (value === null) out.byte(NONE);
  else if (typeof value === 'boolean') out.byte(value ? NEWTRUE : NEWFALSE);
  else if (typeof value === 'bigint') writeInt(out, value);
  else if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) writeInt(out, BigInt(value));
    else {
      out.byte(BINFLOAT);
      const bytes = new Uint8Array(8);
      new DataView(bytes.buffer).setFloat64(0, value, false);
      out.bytes(bytes);
    }
  } else if (typeof value === 'string') {
    const bytes = new TextEncoder().encode(value);
    out.byte(BINUNICODE);
    out.u32(bytes.length);
    out.bytes(bytes);
  } else if (Array.isArray(value)) {
    out.byte(EMPTY_LIST);
    if (value.length > 0) {
      out.byte(MARK);
      for (const item of value) write(out, item);
      out.byte(APPENDS);
    }
  } else if (value instanceof Map) {
    out.byte(EMPTY_DICT);
    writeItems(out, value);
  } else if (value instanceof PyTuple) writeTuple(out, value.items);
  else if (value instanceof PyOrderedDict) {
    write(out, new PyReduce(new PyGlobal('collections', 'OrderedDict'), new PyTuple([])));
    writeItems(out, value.entries);
  } else if (value instanceof PyGlobal) {
    out.byte(GLOBAL);
    out.bytes(new TextEncoder().encode(`${value.module}\n${value.name}\n`));
  } else if (value instanceof PyReduce) {
    write(out, value.callable);
    write(out, value.args);
    out.byte(REDUCE);
  } else if (value instanceof PyPersistentId) {
    write(out, value.pid);
    out.byte(BINPERSID);
  } else throw new Error(`pickle: cannot write a ${typeof value}`);
}

function writeItems(out: ByteSink, entries: Map<PyKey, PyValue>): void {
  if (entries.size === 0) return;
  out.byte(MARK);
  for (const [key, item] of entries) {
    write(out, key);
    write(out, item);
  }
  out.byte(SETITEMS);
}

function writeTuple(out: ByteSink, items: PyValue[]): void {
  const short = [EMPTY_TUPLE, TUPLE1, TUPLE2, TUPLE3];
  if (items.length > 3) out.byte(MARK);
  for (const item of items) write(out, item);
  out.byte(items.length <= 3 ? short[items.length] : TUPLE);
}

function writeInt(out: ByteSink, value: bigint): void {
  if (value >= 0n && value < 0x100n) out.byte(BININT1, Number(value));
  else if (value >= 0n && value < 0x10000n) {
    out.byte(BININT2);
    out.u16(Number(value));
  } else if (value >= -0x80000000n && value < 0x80000000n) {
    out.byte(BININT);
    out.u32(Number(BigInt.asUintN(32, value)));
  } else {
    // LONG1: the shortest two's-complement little-endian encoding.
    const bytes: number[] = [];
    let rest = value;
    for (;;) {
      bytes.push(Number(rest & 0xffn));
      rest >>= 8n;
      const sign = bytes[bytes.length - 1] & 0x80;
      if ((rest === 0n && !sign) || (rest === -1n && sign)) break;
    }
    out.byte(LONG1, bytes.length, ...bytes);
  }
}
