// The loss of one batch and its gradient with respect to the flat parameters: the training step's math, with no
// state, which every engine calls. Alone it sees the whole batch. As one of several data-parallel replicas it
// sees a shard of the rows and a `gather` that returns the other shards' embeddings: the loss is then the
// same function of all rows in every replica, and each replica differentiates through its own rows only, so the
// tower gradients of the replicas sum to the whole batch's. The parameters the loss reads directly
// (model.lossParamNames) get the whole batch's gradient in every replica: the caller counts them once.
import * as tf from '@tensorflow/tfjs';
import type { DropoutContext } from '../model/layers.js';
import type { TwoTower } from '../model/two-tower.js';
import { contrastiveLoss, pickColumns, rowCosines, similarities, type LossWeights } from './losses.js';
import { hardestAllowed } from './negatives/in-batch-hard.js';
import { concat } from '../util/matrix.js';

/** The rows [start, start + n) of a batch of `batchSize` rows (start 0, batchSize n when alone). */
export interface BatchInputs {
  /** [n, inputDim] scene embeddings. */
  scenes: Float32Array;
  /** [n, inputDim] embeddings of the rows' positive products, and their categories. */
  positives: Float32Array;
  positiveCategories: Int32Array;
  start: number;
  batchSize: number;
}

/** What the triplet term contrasts with, and which in-batch pairs the InfoNCE softmax leaves out. */
export interface BatchNegatives {
  /** One product per row: [n, inputDim] embeddings (zero rows where a row has none), categories, and for the
   * whole batch [batchSize] 1 where a row has one. */
  explicit: { products: Float32Array; categories: Int32Array; valid: Float32Array } | null;
  /** [B, B] allowed in-batch negatives: each row's triplet negative is its highest-scoring allowed column. */
  hardCandidates: Uint8Array | null;
  /** [B, B] in-batch false negatives, taken out of the softmax. */
  falseNegatives: Uint8Array | null;
}

export interface BatchStep {
  inputs: BatchInputs;
  negatives: BatchNegatives;
  /** Dropout masks are keyed by (seed, step, global row); null = dropout off. */
  dropout: Pick<DropoutContext, 'seed' | 'step'> | null;
  loss: LossWeights;
  /** Data parallelism: puts this shard's [n, out] embedding blocks next to the other shards' and returns the
   * whole [batchSize, out] matrices. Absent when this call sees the whole batch. */
  gather?: (blocks: Float32Array[]) => Float32Array[];
}

export interface BatchGradients {
  loss: number;
  infonce: number;
  triplet: number;
  temperature: number;
  /** d loss / d params, one value per parameter (the layout of model.layout). */
  grad: Float32Array;
}

/** Forward, loss and backward of one batch (or shard) at `params`. */
export function lossAndGradients(model: TwoTower, params: Float32Array, batch: BatchStep): BatchGradients {
  if (params.length !== model.layout.size)
    throw new Error(`parameter vector has ${params.length} values, the model needs ${model.layout.size}`);
  const { inputs, negatives, dropout } = batch;
  const { start, batchSize } = inputs;
  const n = inputs.positiveCategories.length;
  const dim = model.spec.inputDim;
  const out = model.spec.out;
  const explicit = negatives.explicit;
  const rowIds = (offset: number) => Int32Array.from({ length: n }, (_, i) => offset + start + i);
  const context = (ids: Int32Array): DropoutContext | null => dropout && { ...dropout, rowIds: ids };
  let parts: tf.Tensor[] = [];

  const lossOf = (...tensors: tf.Tensor[]): tf.Scalar => {
    const P = model.layout.named(tensors);
    let scenes = model.encodeScenes(P, tf.tensor2d(inputs.scenes, [n, dim]), context(rowIds(0)));
    // Positives and explicit negatives go through the product tower in one pass.
    const encoded = explicit
      ? model.encodeProducts(
          P,
          tf.tensor2d(concat(inputs.positives, explicit.products), [2 * n, dim]),
          concat(inputs.positiveCategories, explicit.categories),
          context(concat(rowIds(0), rowIds(batchSize))),
        )
      : model.encodeProducts(P, tf.tensor2d(inputs.positives, [n, dim]), inputs.positiveCategories, context(rowIds(0)));
    let products = explicit ? tf.slice(encoded, [0, 0], [n, out]) : encoded;
    let negativeProducts = explicit ? tf.slice(encoded, [n, 0], [n, out]) : null;
    if (batch.gather) {
      const own = negativeProducts ? [scenes, products, negativeProducts] : [scenes, products];
      const all = batch.gather(own.map((t) => t.dataSync() as Float32Array));
      scenes = withOthers(scenes, all[0], start, batchSize);
      products = withOthers(products, all[1], start, batchSize);
      if (negativeProducts) negativeProducts = withOthers(negativeProducts, all[2], start, batchSize);
    }

    const temperature = model.temperature(P);
    const sims = similarities(scenes, products);
    let negativeSims: tf.Tensor1D | null = null;
    let negativeValid: Float32Array | null = null;
    if (negativeProducts && explicit) {
      negativeSims = rowCosines(scenes, negativeProducts);
      negativeValid = explicit.valid;
    } else if (negatives.hardCandidates) {
      const hardest = hardestAllowed(sims.dataSync() as Float32Array, negatives.hardCandidates, batchSize);
      negativeSims = pickColumns(sims, hardest);
      negativeValid = Float32Array.from(hardest, (j) => (j >= 0 ? 1 : 0));
    }
    const loss = contrastiveLoss(
      { scenes, products, temperature, negativeSims, negativeValid, falseNegatives: negatives.falseNegatives },
      batch.loss,
      sims,
    );
    parts = [loss.total, loss.infonce, loss.triplet, temperature].map((t) => tf.keep(t));
    return loss.total;
  };

  const flat = tf.tidy(() => {
    const { grads } = tf.valueAndGrads(lossOf)(model.layout.tensors(params));
    return model.layout.flatten(grads);
  });
  const grad = flat.dataSync() as Float32Array;
  flat.dispose();
  const [loss, infonce, triplet, temperature] = parts.map((t) => t.dataSync()[0]);
  tf.dispose(parts);
  return { loss, infonce, triplet, temperature, grad };
}

/** This shard's rows, differentiable, between every other shard's rows as constants. */
function withOthers(own: tf.Tensor2D, all: Float32Array, rowStart: number, batchSize: number): tf.Tensor2D {
  const [rows, cols] = own.shape;
  const pieces: tf.Tensor2D[] = [];
  if (rowStart > 0) pieces.push(tf.tensor2d(all.subarray(0, rowStart * cols), [rowStart, cols]));
  pieces.push(own);
  const after = batchSize - rowStart - rows;
  if (after > 0) pieces.push(tf.tensor2d(all.subarray((rowStart + rows) * cols), [after, cols]));
  return pieces.length === 1 ? own : tf.concat(pieces);
}
