// A trained model's towers as a plain function: rows of input embeddings in, L2-normalised rows out, dropout
// off. Training (validation, mining) and the later stages (eval, export, serve) encode through this.
import * as tf from '@tensorflow/tfjs';
import type { TwoTower, Tower } from './two-tower.js';

/** Rows a chunk of encoding takes. */
const CHUNK = 1024;

/**
 * Encode `rows` rows of x with a tower, dropout off, in chunks to bound memory; outputs are L2-normalised.
 * `onChunk` is told the rows of each chunk done (progress).
 */
export function encodeRows(
  model: TwoTower,
  params: Float32Array,
  tower: Tower,
  x: Float32Array,
  categories: Int32Array | null,
  rows: number,
  onChunk?: (rows: number) => void,
): Float32Array {
  const dim = model.spec.inputDim;
  const out = new Float32Array(rows * model.spec.out);
  const tensors = model.layout.tensors(params);
  const P = model.layout.named(tensors);
  for (let start = 0; start < rows; start += CHUNK) {
    const count = Math.min(CHUNK, rows - start);
    const encoded = tf.tidy(() => {
      const input = tf.tensor2d(x.subarray(start * dim, (start + count) * dim), [count, dim]);
      return tower === 'scene'
        ? model.encodeScenes(P, input, null)
        : model.encodeProducts(P, input, categories!.subarray(start, start + count), null);
    });
    out.set(encoded.dataSync(), start * model.spec.out);
    encoded.dispose();
    onChunk?.(count);
  }
  tf.dispose(tensors);
  return out;
}
