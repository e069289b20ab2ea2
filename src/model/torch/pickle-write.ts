// A Python pickle writer, protocol 2 (what torch.save writes into data.pkl), for the few kinds of values a
// checkpoint holds. Python types without a JavaScript twin are spelled with the small classes below.
//
// JavaScript → Python: null → None, boolean → bool, integer number or bigint → int, other number → float,
// string → str, array → list, Map → dict.
import { OP } from './opcodes.js';

/** A Python tuple. */
export class PyTuple<Item = PyValue> {
  constructor(readonly items: Item[]) {}
}

/** A `collections.OrderedDict`, written the way pickle writes one (REDUCE with no arguments, then its items). */
export class PyOrderedDict<Value = PyValue> {
  constructor(readonly entries: Map<PyKey, Value>) {}
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

/** Pickle `value` with protocol 2. */
export function pickle(value: PyValue): Uint8Array {
  const out = new ByteSink();
  out.byte(OP.PROTO, 2);
  write(out, value);
  out.byte(OP.STOP);
  return out.result();
}

function write(out: ByteSink, value: PyValue): void {
  if (value === null) out.byte(OP.NONE);
  else if (typeof value === 'boolean') out.byte(value ? OP.NEWTRUE : OP.NEWFALSE);
  else if (typeof value === 'bigint') writeInt(out, value);
  else if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) writeInt(out, BigInt(value));
    else {
      out.byte(OP.BINFLOAT);
      const bytes = new Uint8Array(8);
      new DataView(bytes.buffer).setFloat64(0, value, false);
      out.bytes(bytes);
    }
  } else if (typeof value === 'string') {
    const bytes = new TextEncoder().encode(value);
    out.byte(OP.BINUNICODE);
    out.u32(bytes.length);
    out.bytes(bytes);
  } else if (Array.isArray(value)) {
    out.byte(OP.EMPTY_LIST);
    if (value.length > 0) {
      out.byte(OP.MARK);
      for (const item of value) write(out, item);
      out.byte(OP.APPENDS);
    }
  } else if (value instanceof Map) {
    out.byte(OP.EMPTY_DICT);
    writeItems(out, value);
  } else if (value instanceof PyTuple) writeTuple(out, value.items);
  else if (value instanceof PyOrderedDict) {
    write(out, new PyReduce(new PyGlobal('collections', 'OrderedDict'), new PyTuple([])));
    writeItems(out, value.entries);
  } else if (value instanceof PyGlobal) {
    out.byte(OP.GLOBAL);
    out.bytes(new TextEncoder().encode(`${value.module}\n${value.name}\n`));
  } else if (value instanceof PyReduce) {
    write(out, value.callable);
    write(out, value.args);
    out.byte(OP.REDUCE);
  } else if (value instanceof PyPersistentId) {
    write(out, value.pid);
    out.byte(OP.BINPERSID);
  } else throw new Error(`pickle: cannot write a ${typeof value}`);
}

function writeItems(out: ByteSink, entries: Map<PyKey, PyValue>): void {
  if (entries.size === 0) return;
  out.byte(OP.MARK);
  for (const [key, item] of entries) {
    write(out, key);
    write(out, item);
  }
  out.byte(OP.SETITEMS);
}

function writeTuple(out: ByteSink, items: PyValue[]): void {
  const short = [OP.EMPTY_TUPLE, OP.TUPLE1, OP.TUPLE2, OP.TUPLE3];
  if (items.length > 3) out.byte(OP.MARK);
  for (const item of items) write(out, item);
  out.byte(items.length <= 3 ? short[items.length] : OP.TUPLE);
}

function writeInt(out: ByteSink, value: bigint): void {
  if (value >= 0n && value < 0x100n) out.byte(OP.BININT1, Number(value));
  else if (value >= 0n && value < 0x10000n) {
    out.byte(OP.BININT2);
    out.u16(Number(value));
  } else if (value >= -0x80000000n && value < 0x80000000n) {
    out.byte(OP.BININT);
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
    out.byte(OP.LONG1, bytes.length, ...bytes);
  }
}
