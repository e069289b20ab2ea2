// The reference's embedding files: a pickled dict {signature: float32 vector} (`pickle.dump`) or the same dict as
// an .npz (`np.savez(path, **vectors)`: one `<signature>.npy` per entry), read into one row-major matrix.
import type { EmbeddingRows } from '../data/store/embeddings.js';
import { decodeNpy } from '../data/store/npy.js';
import { InputError } from '../util/errors.js';
import { firstNonFinite } from '../util/matrix.js';
import { readInputFile } from '../util/input-file.js';
import { pythonTypeOf, unpickle } from '../model/torch/pickle.js';
import { isZip, readZip } from '../model/torch/zip.js';
import { NumpyArray, numpyGlobals } from '../model/torch/numpy-pickle.js';

/** A file's vectors, all of `dim` values. */
export interface EmbeddingsFile extends EmbeddingRows {
  dim: number;
}

export async function readEmbeddingsFile(path: string): Promise<EmbeddingsFile> {
  const bytes = await readInputFile(path);
  if (isZip(bytes)) return fromNpz(bytes, path);
  if (bytes[0] === 0x80) return fromPickle(bytes, path);
  throw new InputError(`${path}: neither a pickle nor an .npz (zip) file`);
}

/** What to do with torch tensors, which an embeddings file does not take (the reference saves numpy arrays). */
const NUMPY_ONLY = 'save the vectors as numpy arrays, e.g. {sig: t.cpu().numpy() for sig, t in embeddings.items()}';

function fromPickle(bytes: Uint8Array, path: string): EmbeddingsFile {
  let top: unknown;
  try {
    top = unpickle(bytes, { source: path, globals: numpyGlobals() });
  } catch (err) {
    if (/refused global torch\./.test((err as Error).message))
      throw new InputError(`${(err as Error).message}: torch tensors are not read here; ${NUMPY_ONLY}`);
    throw err;
  }
  if (!(top instanceof Map))
    throw new InputError(`${path}: expected a dict {signature: vector}, found a ${pythonTypeOf(top)}`);
  const rows = new RowCollector(path);
  for (const [key, value] of top) {
    if (typeof key !== 'string') throw new InputError(`${path}: key ${String(key)}: expected a signature string`);
    if (!(value instanceof NumpyArray))
      throw new InputError(`${path}: ${key}: expected a numpy array, found a ${pythonTypeOf(value)}`);
    const data = value.float32();
    if (typeof data === 'string') throw new InputError(`${path}: ${key}: ${data}`);
    rows.add(key, value.shape, data);
  }
  return rows.result();
}

function fromNpz(bytes: Uint8Array, path: string): EmbeddingsFile {
  const rows = new RowCollector(path);
  for (const [name, entry] of readZip(bytes, path)) {
    if (name.endsWith('/data.pkl'))
      throw new InputError(`${path}: a torch.save file, not an .npz of numpy arrays; ${NUMPY_ONLY}`);
    if (!name.endsWith('.npy')) throw new InputError(`${path}: ${name}: expected only .npy entries`);
    const key = name.slice(0, -'.npy'.length);
    const { data, shape } = decodeNpy(entry, `${path}: ${key}`);
    rows.add(key, shape, data);
  }
  return rows.result();
}

/** Rows of one dim, each a [D] (or [1, D]) vector; the first row sets D. */
class RowCollector {
  private readonly ids: string[] = [];
  private readonly vectors: Float32Array[] = [];
  private dim = -1;

  constructor(private readonly path: string) {}

  add(key: string, shape: number[], data: Float32Array): void {
    const vectorShape = shape.length === 2 && shape[0] === 1 ? [shape[1]] : shape;
    if (vectorShape.length !== 1 || vectorShape[0] === 0 || (this.dim >= 0 && vectorShape[0] !== this.dim))
      throw new InputError(
        `${this.path}: ${key}: shape [${shape}], expected ${this.dim >= 0 ? `[${this.dim}]` : '[D] with D ≥ 1'} (one vector per signature)`,
      );
    this.dim = vectorShape[0];
    const bad = firstNonFinite(data);
    if (bad >= 0) throw new InputError(`${this.path}: ${key}: value ${bad} is ${data[bad]}, expected finite numbers`);
    this.ids.push(key);
    this.vectors.push(data);
  }

  result(): EmbeddingsFile {
    if (this.ids.length === 0) throw new InputError(`${this.path}: no embeddings in the file`);
    const data = new Float32Array(this.ids.length * this.dim);
    this.vectors.forEach((v, i) => data.set(v, i * this.dim));
    return { ids: this.ids, dim: this.dim, data };
  }
}
