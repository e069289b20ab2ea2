// NumPy arrays and scalars inside pickles (a dict of arrays from `pickle.dump`, metrics computed with numpy inside a
// checkpoint), read without running anything: the registry below lets through only the globals numpy's own
// __reduce__ names, and rebuilds the values in TypeScript.
import { PickleGlobalRef, pythonTypeOf, Unread, type PickleGlobal, type PickleStateful } from './pickle.js';
import { elementCount, float32sOf } from '../../util/matrix.js';

/** `numpy.dtype('f4', False, True)` with its byte order set by BUILD. */
class NumpyDtype implements PickleStateful {
  byteorder = '=';
  constructor(readonly name: string) {}

  setState(state: unknown): void {
    if (!Array.isArray(state) || typeof state[1] !== 'string') throw new Error('dtype: unexpected state');
    this.byteorder = state[1];
  }

  /** numpy's `dtype.str`, e.g. '<f4'. */
  get str(): string {
    const order = this.byteorder === '=' ? '<' : this.byteorder;
    return `${order}${this.name}`;
  }
}

/** An ndarray as numpy pickles it: `_reconstruct(ndarray, (0,), b'b')`, then BUILD with its shape, dtype and bytes. */
export class NumpyArray implements PickleStateful {
  shape: number[] = [];
  dtype?: NumpyDtype;
  fortranOrder = false;
  bytes: Uint8Array = new Uint8Array(0);

  setState(state: unknown): void {
    // (version, shape, dtype, is_fortran, rawdata)
    if (!Array.isArray(state) || state.length !== 5) throw new Error('ndarray: unexpected state');
    const [, shape, dtype, fortran, raw] = state as unknown[];
    if (!Array.isArray(shape) || !(dtype instanceof NumpyDtype)) throw new Error('ndarray: unexpected state');
    if (!(raw instanceof Uint8Array))
      throw new Error(`ndarray: data is a ${pythonTypeOf(raw)} (an object array?); expected raw bytes`);
    this.shape = shape as number[];
    this.dtype = dtype;
    this.fortranOrder = fortran === true;
    this.bytes = raw;
  }

  /** The values as float32, or a message saying why they are not. */
  float32(): Float32Array | string {
    const dtype = this.dtype?.str ?? '?';
    if (dtype !== '<f4') return `dtype ${dtype}, expected float32 ('<f4'; save with .astype(np.float32))`;
    const count = elementCount(this.shape);
    if (this.bytes.length !== count * 4) return `${this.bytes.length} bytes for shape [${this.shape}]`;
    if (this.fortranOrder && this.shape.length > 1) return 'Fortran-ordered; expected C order';
    return float32sOf(this.bytes, count);
  }
}

function reconstruct(args: unknown[]): NumpyArray {
  const [cls] = args;
  if (!(cls instanceof PickleGlobalRef) || !cls.name.endsWith('.ndarray'))
    throw new Error(`_reconstruct of ${pythonTypeOf(cls)}; only numpy.ndarray is read`);
  return new NumpyArray();
}

/** `_frombuffer(buffer, dtype, shape, order)`: how numpy pickles an array with protocol 5. */
function fromBuffer(args: unknown[]): NumpyArray {
  const [buffer, dtype, shape, order] = args;
  const array = new NumpyArray();
  array.setState([1, shape, dtype, order === 'F', buffer]);
  return array;
}

function dtype(args: unknown[]): NumpyDtype {
  if (typeof args[0] !== 'string') throw new Error('dtype: expected a type code');
  return new NumpyDtype(args[0]);
}

/** `scalar(dtype, bytes)`: a numpy number such as np.float64(0.25), as a JavaScript number (other kinds unread). */
function scalar(args: unknown[]): number | Unread {
  const [type, raw] = args;
  if (!(type instanceof NumpyDtype) || !(raw instanceof Uint8Array)) throw new Error('scalar: expected (dtype, bytes)');
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (type.str) {
    case '<f8':
      return view.getFloat64(0, true);
    case '<f4':
      return view.getFloat32(0, true);
    case '<i8':
      return Number(view.getBigInt64(0, true));
    case '<i4':
      return view.getInt32(0, true);
    default:
      return new Unread(`numpy scalar of dtype ${type.str}`);
  }
}

/** `_codecs.encode(text, 'latin1')`: how protocol 2 spells bytes. Other encodings are refused. */
function encodeLatin1(args: unknown[]): Uint8Array {
  const [text, encoding] = args;
  if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1'))
    throw new Error(`_codecs.encode: only (str, 'latin1') is read`);
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** The globals numpy arrays and scalars pickle with, under numpy 1's and numpy 2's module names. */
export function numpyGlobals(): Map<string, PickleGlobal> {
  const globals = new Map<string, PickleGlobal>([['_codecs.encode', { call: encodeLatin1 }]]);
  for (const core of ['numpy.core', 'numpy._core']) {
    globals.set(`${core}.multiarray._reconstruct`, { call: reconstruct });
    globals.set(`${core}.numeric._frombuffer`, { call: fromBuffer });
    globals.set(`${core}.multiarray.scalar`, { call: scalar });
  }
  globals.set('numpy.ndarray', {});
  globals.set('numpy.dtype', { call: dtype });
  return globals;
}
