// A Python pickle reader (protocols 0–5) that never runs anything: a global is only usable when the caller's
// registry names it, and calling one runs the registry's TypeScript, never Python. Any other global, and the opcodes
// that exist only to call arbitrary code (INST, OBJ, EXT*), stop the read with an InputError naming what was refused.
//
// Values come back as plain JavaScript: None → null, bool → boolean, int → number (bigint past 2^53), float → number,
// str → string, bytes/bytearray → Uint8Array (a view into the input), list and tuple → array, dict → Map, set → Set;
// globals → whatever their registry entry builds.
import { InputError } from '../../util/errors.js';
import { OP } from './opcodes.js';

/** What a registry entry does when the pickle calls the global (REDUCE, NEWOBJ). */
export interface PickleGlobal {
  call?: (args: unknown[]) => unknown;
}

/** An object built by a registry call that takes a state afterwards (BUILD, i.e. Python's __setstate__). */
export interface PickleStateful {
  setState(state: unknown): void;
}

/**
 * A value kept without being read (an int64 tensor, a float16 numpy scalar: nothing ctl uses), so that it is refused
 * only where something needs it, naming that field, and passed over in fields nobody reads (a checkpoint's metrics).
 */
export class Unread {
  constructor(readonly what: string) {}
}

/** A global the pickle named and the registry allowed, as it sits on the stack (e.g. a type passed as argument). */
export class PickleGlobalRef {
  constructor(
    readonly name: string,
    readonly impl: PickleGlobal,
  ) {}
}

export interface UnpickleOptions {
  /** File or entry name, for messages. */
  source: string;
  /** Allowed globals by dotted name (`collections.OrderedDict`). */
  globals: ReadonlyMap<string, PickleGlobal>;
  /** Resolves BINPERSID ids (torch's storages); persistent ids are refused without it. */
  persistentLoad?: (pid: unknown) => unknown;
}

const UTF8 = new TextDecoder('utf-8');
const LATIN1 = new TextDecoder('latin1');

export function unpickle(bytes: Uint8Array, options: UnpickleOptions): unknown {
  return new Unpickler(bytes, options).run();
}

function isStateful(value: unknown): value is PickleStateful {
  return typeof value === 'object' && value !== null && typeof (value as PickleStateful).setState === 'function';
}

class Unpickler {
  private pos = 0;
  private readonly view: DataView;
  private stack: unknown[] = [];
  private readonly marks: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();

  constructor(
    private readonly bytes: Uint8Array,
    private readonly options: UnpickleOptions,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(message: string): never {
    throw new InputError(`${this.options.source}: ${message}`);
  }

  /** The next `n` bytes; a pickle that ends before them is truncated. */
  private take(n: number): Uint8Array {
    if (this.pos + n > this.bytes.length) this.fail(`truncated pickle (wanted ${n} bytes at byte ${this.pos})`);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  private u8(): number {
    return this.take(1)[0];
  }
  private u16(): number {
    return this.view.getUint16(this.advance(2), true);
  }
  private u32(): number {
    return this.view.getUint32(this.advance(4), true);
  }
  private u64(): number {
    const v = this.view.getBigUint64(this.advance(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`length ${v} is too large`);
    return Number(v);
  }
  private line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) this.fail(`truncated pickle (no end of line after byte ${this.pos})`);
    const text = LATIN1.decode(this.bytes.subarray(this.pos, end));
    this.pos = end + 1;
    return text;
  }
  private utf8(n: number): string {
    return UTF8.decode(this.take(n));
  }
  private latin1(n: number): string {
    return LATIN1.decode(this.take(n));
  }

  private pop(): unknown {
    if (this.stack.length === 0) this.fail(`stack underflow at byte ${this.pos - 1}`);
    return this.stack.pop();
  }
  private top(): unknown {
    if (this.stack.length === 0) this.fail(`stack underflow at byte ${this.pos - 1}`);
    return this.stack[this.stack.length - 1];
  }
  /** Push a value built from the items since the last MARK (built first: that pop restores the stack below). */
  private pushFromMark(build: (items: unknown[]) => unknown): void {
    const value = build(this.popMark());
    this.stack.push(value);
  }

  /** The items pushed since the last MARK, restoring the stack below it. */
  private popMark(): unknown[] {
    const items = this.stack;
    const below = this.marks.pop();
    if (!below) this.fail(`no MARK before byte ${this.pos - 1}`);
    this.stack = below;
    return items;
  }

  private resolveGlobal(module: string, name: string): PickleGlobalRef {
    const dotted = `${module}.${name}`;
    const impl = this.options.globals.get(dotted);
    if (!impl) this.fail(`refused global ${dotted}: not on the list of allowed globals (nothing was run)`);
    return new PickleGlobalRef(dotted, impl);
  }

  private callGlobal(callable: unknown, args: unknown): unknown {
    if (!(callable instanceof PickleGlobalRef))
      this.fail(`cannot call a ${pythonTypeOf(callable)} at byte ${this.pos - 1}`);
    if (!Array.isArray(args)) this.fail(`${callable.name}: arguments are not a tuple`);
    if (!callable.impl.call) this.fail(`refused to call ${callable.name}: it is allowed as a value only`);
    try {
      return callable.impl.call(args);
    } catch (err) {
      if (err instanceof InputError) throw err;
      this.fail(`${callable.name}: ${(err as Error).message}`);
    }
  }

  private build(target: PickleStateful, state: unknown): void {
    try {
      target.setState(state);
    } catch (err) {
      if (err instanceof InputError) throw err;
      this.fail(`${(err as Error).message} (at byte ${this.pos - 1})`);
    }
  }

  private setItems(target: unknown, items: unknown[]): void {
    if (!(target instanceof Map)) this.fail(`SETITEM(S) on a ${pythonTypeOf(target)}`);
    for (let i = 0; i + 1 < items.length; i += 2) target.set(dictKey(items[i]), items[i + 1]);
  }

  private append(target: unknown, items: unknown[]): void {
    if (!Array.isArray(target)) this.fail(`APPEND(S) on a ${pythonTypeOf(target)}`);
    target.push(...items);
  }

  run(): unknown {
    for (;;) {
      const op = this.u8();
      switch (op) {
        case OP.PROTO:
          if (this.u8() > 5) this.fail('pickle protocol above 5');
          break;
        case OP.FRAME: // a length hint only
          this.u64();
          break;
        case OP.STOP:
          return this.pop();
        case OP.MARK:
          this.marks.push(this.stack);
          this.stack = [];
          break;
        case OP.POP:
          this.pop();
          break;
        case OP.POP_MARK:
          this.popMark();
          break;
        case OP.DUP:
          this.stack.push(this.top());
          break;

        case OP.NONE:
          this.stack.push(null);
          break;
        case OP.NEWTRUE:
          this.stack.push(true);
          break;
        case OP.NEWFALSE:
          this.stack.push(false);
          break;
        case OP.INT: {
          // text; also protocol 0's True/False
          const text = this.line();
          this.stack.push(text === '01' ? true : text === '00' ? false : parseIntText(text, this));
          break;
        }
        case OP.LONG: // text
          this.stack.push(parseIntText(this.line().replace(/L$/, ''), this));
          break;
        case OP.BININT:
          this.stack.push(this.view.getInt32(this.advance(4), true));
          break;
        case OP.BININT1:
          this.stack.push(this.u8());
          break;
        case OP.BININT2:
          this.stack.push(this.u16());
          break;
        case OP.LONG1:
          this.stack.push(littleEndianSigned(this.take(this.u8())));
          break;
        case OP.LONG4:
          this.stack.push(littleEndianSigned(this.take(this.u32())));
          break;
        case OP.BINFLOAT: // big-endian double
          this.stack.push(this.view.getFloat64(this.advance(8), false));
          break;
        case OP.FLOAT: // text
          this.stack.push(Number(this.line()));
          break;

        case OP.BINUNICODE:
          this.stack.push(this.utf8(this.u32()));
          break;
        case OP.SHORT_BINUNICODE:
          this.stack.push(this.utf8(this.u8()));
          break;
        case OP.BINUNICODE8:
          this.stack.push(this.utf8(this.u64()));
          break;
        case OP.BINSTRING: // Python 2 str
          this.stack.push(this.latin1(this.u32()));
          break;
        case OP.SHORT_BINSTRING:
          this.stack.push(this.latin1(this.u8()));
          break;
        case OP.BINBYTES:
          this.stack.push(this.take(this.u32()));
          break;
        case OP.SHORT_BINBYTES:
          this.stack.push(this.take(this.u8()));
          break;
        case OP.BINBYTES8:
        case OP.BYTEARRAY8:
          this.stack.push(this.take(this.u64()));
          break;
        case OP.NEXT_BUFFER: // out-of-band data this file does not carry
          this.fail('out-of-band buffer (pickle protocol 5 buffer_callback) is not in the file');
          break;
        case OP.READONLY_BUFFER:
          break;

        case OP.EMPTY_TUPLE:
          this.stack.push([]);
          break;
        case OP.TUPLE:
          this.pushFromMark((items) => items);
          break;
        case OP.TUPLE1:
          this.stack.push([this.pop()]);
          break;
        case OP.TUPLE2: {
          const b = this.pop();
          this.stack.push([this.pop(), b]);
          break;
        }
        case OP.TUPLE3: {
          const c = this.pop();
          const b = this.pop();
          this.stack.push([this.pop(), b, c]);
          break;
        }
        case OP.EMPTY_LIST:
          this.stack.push([]);
          break;
        case OP.LIST:
          this.pushFromMark((items) => items);
          break;
        case OP.APPEND: {
          const item = this.pop();
          this.append(this.top(), [item]);
          break;
        }
        case OP.APPENDS: {
          const items = this.popMark();
          this.append(this.top(), items);
          break;
        }
        case OP.EMPTY_DICT:
          this.stack.push(new Map());
          break;
        case OP.DICT: {
          this.pushFromMark((items) => {
            const dict = new Map();
            this.setItems(dict, items);
            return dict;
          });
          break;
        }
        case OP.SETITEM: {
          const value = this.pop();
          const key = this.pop();
          this.setItems(this.top(), [key, value]);
          break;
        }
        case OP.SETITEMS: {
          const items = this.popMark();
          this.setItems(this.top(), items);
          break;
        }
        case OP.EMPTY_SET:
          this.stack.push(new Set());
          break;
        case OP.ADDITEMS: {
          const items = this.popMark();
          const set = this.top();
          if (!(set instanceof Set)) this.fail(`ADDITEMS on a ${pythonTypeOf(set)}`);
          for (const item of items) set.add(item);
          break;
        }
        case OP.FROZENSET:
          this.pushFromMark((items) => new Set(items));
          break;

        case OP.GLOBAL: {
          // "module\nname\n"
          const module = this.line();
          this.stack.push(this.resolveGlobal(module, this.line()));
          break;
        }
        case OP.STACK_GLOBAL: {
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') this.fail('STACK_GLOBAL needs two strings');
          this.stack.push(this.resolveGlobal(module, name));
          break;
        }
        case OP.REDUCE: {
          const args = this.pop();
          this.stack.push(this.callGlobal(this.pop(), args));
          break;
        }
        case OP.NEWOBJ: {
          // : cls.__new__(cls, *args)
          const args = this.pop();
          this.stack.push(this.callGlobal(this.pop(), args));
          break;
        }
        case OP.NEWOBJ_EX: {
          const kwargs = this.pop();
          const args = this.pop();
          if (!(kwargs instanceof Map) || kwargs.size > 0) this.fail('NEWOBJ_EX with keyword arguments');
          this.stack.push(this.callGlobal(this.pop(), args));
          break;
        }
        case OP.BUILD: {
          // : obj.__setstate__(state)
          const state = this.pop();
          const target = this.top();
          if (isStateful(target)) this.build(target, state);
          // A dict subclass (OrderedDict) with attributes, such as a state_dict's `_metadata`: the attributes carry
          // module versions this reader has no use for.
          else if (!(target instanceof Map)) this.fail(`BUILD on a ${pythonTypeOf(target)}`);
          break;
        }
        case OP.BINPERSID: {
          const pid = this.pop();
          if (!this.options.persistentLoad) this.fail('persistent id in a pickle that should have none');
          this.stack.push(this.options.persistentLoad(pid));
          break;
        }

        case OP.BINGET:
          this.stack.push(this.get(this.u8()));
          break;
        case OP.LONG_BINGET:
          this.stack.push(this.get(this.u32()));
          break;
        case OP.GET:
          this.stack.push(this.get(Number(this.line())));
          break;
        case OP.BINPUT:
          this.memo.set(this.u8(), this.top());
          break;
        case OP.LONG_BINPUT:
          this.memo.set(this.u32(), this.top());
          break;
        case OP.PUT:
          this.memo.set(Number(this.line()), this.top());
          break;
        case OP.MEMOIZE:
          this.memo.set(this.memo.size, this.top());
          break;

        case OP.INST:
        case OP.OBJ:
        case OP.EXT1:
        case OP.EXT2:
        case OP.EXT4:
        case OP.PERSID: // text
          this.fail(`refused opcode 0x${op.toString(16)} at byte ${this.pos - 1} (not used by torch.save or numpy)`);
          break;
        default:
          this.fail(`not a pickle, or a corrupt one: unknown opcode 0x${op.toString(16)} at byte ${this.pos - 1}`);
      }
    }
  }

  /** Skip `n` bytes and return where they started (for DataView reads). */
  private advance(n: number): number {
    const at = this.pos;
    this.take(n);
    return at;
  }

  private get(index: number): unknown {
    if (!this.memo.has(index)) this.fail(`memo ${index} read before it was written`);
    return this.memo.get(index);
  }
}

/** Python dict keys as Map keys: numbers, strings and the like stay as they are; tuples become their repr-ish text. */
function dictKey(key: unknown): unknown {
  return Array.isArray(key) ? JSON.stringify(key) : key;
}

function parseIntText(text: string, reader: { fail(message: string): never }): number | bigint {
  if (!/^[-+]?\d+$/.test(text.trim())) reader.fail(`bad integer ${JSON.stringify(text)}`);
  const big = BigInt(text.trim());
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}

/** A two's-complement little-endian integer (LONG1/LONG4). */
function littleEndianSigned(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]);
  if (bytes[bytes.length - 1] & 0x80) value -= 1n << BigInt(bytes.length * 8);
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/** The Python type of an unpickled value, for messages ("dict", "list", a global's dotted name). */
export function pythonTypeOf(value: unknown): string {
  if (value === null) return 'None';
  if (value instanceof Unread) return value.what;
  if (value instanceof PickleGlobalRef) return value.name;
  if (value instanceof Map) return 'dict';
  if (Array.isArray(value)) return 'list/tuple';
  if (value instanceof Uint8Array) return 'bytes';
  if (typeof value === 'object') return value.constructor?.name ?? 'object';
  return typeof value;
}
