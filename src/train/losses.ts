// The training objective: symmetric InfoNCE over the batch (scene→product and product→scene cross-entropy on
// the similarity matrix, as CLIP) plus a weighted triplet loss on cosine distance with one negative per pair.
import * as tf from '@tensorflow/tfjs';
import { matMul, rowLogSumExp } from '../model/ops.js';

export interface LossWeights {
  infonce: number;
  triplet: number;
  margin: number;
}

export interface LossInput {
  /** Scene and positive-product embeddings, row i of each is a pair, [B, D], L2-normalised. */
  scenes: tf.Tensor2D;
  products: tf.Tensor2D;
  temperature: tf.Scalar;
  /** Cosine similarity of each scene to its negative, [B] (rowCosines, or pickColumns of in-batch ones), or null for
   * no triplet. */
  negativeSims: tf.Tensor1D | null;
  /** 1 where row i has a negative, else 0, [B]. */
  negativeValid: Float32Array | null;
  /** Optional [B, B] 0/1: (i, j) = 1 when batch product j is another true product of scene i; such logits are
   * taken out of both softmaxes instead of being pushed down as negatives. */
  falseNegatives?: Uint8Array | null;
}

export interface LossParts {
  total: tf.Scalar;
  infonce: tf.Scalar;
  triplet: tf.Scalar;
}

/** Scene × product cosine similarities [B, B] (a plain matMul on an explicit transpose: fast on wasm). */
export function similarities(scenes: tf.Tensor2D, products: tf.Tensor2D): tf.Tensor2D {
  return matMul(scenes, tf.transpose(products));
}

/** The diagonal of a [B, B] matrix, [B]: each scene's score with its own positive (by a mask, as pickColumns). */
function diagonal(m: tf.Tensor2D): tf.Tensor1D {
  return tf.sum(tf.mul(m, tf.eye(m.shape[0])), 1);
}

/** Symmetric InfoNCE: mean of the row-wise and column-wise cross-entropies with the diagonal as the label. */
export function infoNce(sims: tf.Tensor2D, temperature: tf.Scalar, falseNegatives?: Uint8Array | null): tf.Scalar {
  const n = sims.shape[0];
  let logits = tf.div(sims, temperature) as tf.Tensor2D;
  if (falseNegatives) {
    const bias = new Float32Array(n * n);
    falseNegatives.forEach((f, k) => (bias[k] = f ? -1e9 : 0));
    logits = tf.add(logits, tf.tensor2d(bias, [n, n]));
  }
  const positives = diagonal(logits);
  const rows = tf.mean(tf.sub(rowLogSumExp(logits), positives));
  const cols = tf.mean(tf.sub(rowLogSumExp(tf.transpose(logits)), positives));
  return tf.mul(tf.add(rows, cols), 0.5) as tf.Scalar;
}

/** Triplet loss on cosine distance d = 1 - cos: mean over valid rows of max(0, d(s,p) - d(s,n) + margin). */
export function tripletLoss(
  positiveSims: tf.Tensor1D,
  negativeSims: tf.Tensor1D,
  valid: Float32Array,
  margin: number,
): tf.Scalar {
  const count = valid.reduce((a, b) => a + b, 0);
  if (count === 0) return tf.scalar(0);
  const hinge = tf.relu(tf.add(tf.sub(negativeSims, positiveSims), margin));
  return tf.div(tf.sum(tf.mul(hinge, tf.tensor1d(valid))), count) as tf.Scalar;
}

/** Row-wise cosine of two [B, D] matrices of unit rows. */
export function rowCosines(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor1D {
  return tf.sum(tf.mul(a, b), 1);
}

/** Pick entry (i, columns[i]) of each row of sims by a one-hot mask (no gather: its gradient is missing on wasm). */
export function pickColumns(sims: tf.Tensor2D, columns: Int32Array): tf.Tensor1D {
  const [rows, cols] = sims.shape;
  const pick = new Float32Array(rows * cols);
  columns.forEach((c, i) => c >= 0 && (pick[i * cols + c] = 1));
  return tf.sum(tf.mul(sims, tf.tensor2d(pick, [rows, cols])), 1);
}

/** The weighted sum of both losses over a batch. */
export function contrastiveLoss(input: LossInput, weights: LossWeights, sims?: tf.Tensor2D): LossParts {
  const s = sims ?? similarities(input.scenes, input.products);
  const infonce = weights.infonce > 0 ? infoNce(s, input.temperature, input.falseNegatives) : tf.scalar(0);
  const triplet =
    weights.triplet > 0 && input.negativeSims && input.negativeValid
      ? tripletLoss(diagonal(s), input.negativeSims, input.negativeValid, weights.margin)
      : tf.scalar(0);
  const total = tf.add(tf.mul(infonce, weights.infonce), tf.mul(triplet, weights.triplet)) as tf.Scalar;
  return { total, infonce, triplet };
}
