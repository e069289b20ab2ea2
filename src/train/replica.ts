// One copy of the model and the training step. The same code runs alone (the whole batch on this thread) or as
// one of several data-parallel replicas, each with its own tfjs backend in a worker thread and a shard of the
// batch: a replica encodes its rows, the replicas exchange embeddings so each computes the in-batch loss over
// the whole batch (only its own rows differentiable), they sum their gradients, and each updates its slice of
// the shared parameter vector. The sum of the replicas' gradients is the whole batch's gradient: the loss is
// the same function of all rows in every replica, and each replica differentiates through its own rows.
import * as tf from '@tensorflow/tfjs';
import { TwoTower, type ModelSpec, type Tower } from '../model/two-tower.js';
import { l2Normalize } from '../model/ops.js';
import { gatherRows } from '../util/matrix.js';
import { FlatAdam, clipScale, sumOfSquares, type OptimizerConfig, type OptimizerState } from './optimizer.js';
import { contrastiveLoss, pickColumns, rowCosines, similarities, type LossWeights } from './losses.js';
import { hardestAllowed } from './negatives.js';
import { LocalExchange, type Exchange } from './exchange.js';

/** What one step trains on, for the whole batch; each replica takes its shard of the rows. */
export interface StepPlan {
  step: number;
  lr: number;
  /** Training rows of the batch. */
  rows: Int32Array;
  /** Explicit negative product per row (same-category-random, mined), -1 for none; null = no explicit negatives. */
  negatives: Int32Array | null;
  /** [B, B] allowed in-batch negatives (in-batch-hard), see negatives.ts. */
  hardCandidates: Uint8Array | null;
  /** [B, B] in-batch false negatives to take out of the softmax, or null. */
  falseNegatives: Uint8Array | null;
}

export interface StepResult {
  loss: number;
  infonce: number;
  triplet: number;
  gradNorm: number;
  temperature: number;
  /** Live tfjs tensors after the step (a leak shows as growth). */
  tensors: number;
}

/** The training inputs every replica reads (shared memory in workers). */
export interface TrainingMatrices {
  /** [rows, D] scene embedding of each training row. */
  scenes: Float32Array;
  /** [products, D] embedding of each dataset product. */
  products: Float32Array;
  /** Dataset product index → category. */
  productCategory: Int32Array;
  /** Training row → its positive's dataset product index. */
  rowProduct: Int32Array;
}

/** Rows [start, end) of a batch of `size` rows that replica `rank` of `world` takes. */
export function shardRange(size: number, world: number, rank: number): [number, number] {
  const base = Math.floor(size / world);
  const extra = size % world;
  const start = rank * base + Math.min(rank, extra);
  return [start, start + base + (rank < extra ? 1 : 0)];
}

export interface ReplicaOptions {
  spec: ModelSpec;
  optimizer: OptimizerConfig;
  loss: LossWeights;
  seed: number;
  /** The flat parameters; shared between replicas, each updates its slice (see shardRange). */
  params: Float32Array;
  /** Moments of this replica's slice. */
  optimizerState?: OptimizerState;
  data: TrainingMatrices;
  exchange?: Exchange;
}

export class Replica {
  readonly model: TwoTower;
  readonly params: Float32Array;
  readonly optimizer: FlatAdam;
  private readonly exchange: Exchange;
  private readonly temperatureOffset: number;

  constructor(private readonly options: ReplicaOptions) {
    this.model = new TwoTower(options.spec);
    if (options.params.length !== this.model.layout.size)
      throw new Error(
        `parameter vector has ${options.params.length} values, the model needs ${this.model.layout.size}`,
      );
    this.params = options.params;
    this.exchange = options.exchange ?? new LocalExchange();
    const [lo, hi] = shardRange(this.model.layout.size, this.exchange.world, this.exchange.rank);
    this.optimizer = new FlatAdam(options.optimizer, lo, hi, options.optimizerState);
    this.temperatureOffset = options.spec.temperature.learnable ? this.model.layout.get('log_temperature').offset : -1;
  }

  /** Forward, loss, backward and update for one step. */
  step(plan: StepPlan): StepResult {
    const { exchange, model } = this;
    const batchSize = plan.rows.length;
    const [start, end] = shardRange(batchSize, exchange.world, exchange.rank);
    const n = end - start;
    const dim = model.spec.inputDim;
    const out = model.spec.out;
    const { data, seed } = this.options;
    const shardRows = plan.rows.subarray(start, end);
    const shardNegatives = plan.negatives?.subarray(start, end) ?? null;
    const rowIds = (offset: number) => Int32Array.from({ length: n }, (_, i) => offset + start + i);
    let parts: tf.Tensor[] = [];

    const lossOf = (...tensors: tf.Tensor[]): tf.Scalar => {
      const P = model.layout.named(tensors);
      let scenes = model.encodeScenes(P, tf.tensor2d(gatherRows(data.scenes, shardRows, dim), [n, dim]), {
        seed,
        step: plan.step,
        rowIds: rowIds(0),
      });
      // Positives and explicit negatives go through the product tower in one pass.
      const productIds = shardNegatives
        ? concatInt32(positivesOf(data, shardRows), shardNegatives)
        : positivesOf(data, shardRows);
      const categories = Int32Array.from(productIds, (j) => (j >= 0 ? data.productCategory[j] : 0));
      let encoded = model.encodeProducts(
        P,
        tf.tensor2d(gatherRows(data.products, productIds, dim), [productIds.length, dim]),
        categories,
        {
          seed,
          step: plan.step,
          rowIds: shardNegatives ? concatInt32(rowIds(0), rowIds(batchSize)) : rowIds(0),
        },
      );
      if (!model.spec.normalize) {
        scenes = l2Normalize(scenes);
        encoded = l2Normalize(encoded);
      }
      let products = shardNegatives ? tf.slice(encoded, [0, 0], [n, out]) : encoded;
      let negatives = shardNegatives ? tf.slice(encoded, [n, 0], [n, out]) : null;
      if (exchange.world > 1) {
        const own = negatives ? [scenes, products, negatives] : [scenes, products];
        const all = exchange.allGather(
          own.map((t) => t.dataSync() as Float32Array),
          start,
          batchSize,
          out,
        );
        [scenes, products] = [
          withOthers(scenes, all[0], start, batchSize),
          withOthers(products, all[1], start, batchSize),
        ];
        if (negatives) negatives = withOthers(negatives, all[2], start, batchSize);
      }

      const temperature = model.temperature(P);
      const sims = similarities(scenes, products);
      let negativeSims: tf.Tensor1D | null = null;
      let negativeValid: Float32Array | null = null;
      if (negatives && plan.negatives) {
        negativeSims = rowCosines(scenes, negatives);
        negativeValid = Float32Array.from(plan.negatives, (j) => (j >= 0 ? 1 : 0));
      } else if (plan.hardCandidates) {
        const hardest = hardestAllowed(sims.dataSync() as Float32Array, plan.hardCandidates, batchSize);
        negativeSims = pickColumns(sims, hardest);
        negativeValid = Float32Array.from(hardest, (j) => (j >= 0 ? 1 : 0));
      }
      const loss = contrastiveLoss(
        { scenes, products, temperature, negativeSims, negativeValid, falseNegatives: plan.falseNegatives },
        this.options.loss,
        sims,
      );
      parts = [loss.total, loss.infonce, loss.triplet, temperature].map((t) => tf.keep(t));
      return loss.total;
    };

    // Every replica computed the whole loss, so the whole temperature gradient: count it once.
    const grad = tf.tidy(() => {
      const { grads } = tf.valueAndGrads(lossOf)(model.layout.tensors(this.params));
      return model.layout.flatten(grads);
    });
    const own = grad.dataSync() as Float32Array;
    grad.dispose();
    if (exchange.rank !== 0 && this.temperatureOffset >= 0) own[this.temperatureOffset] = 0;
    const [loss, infonce, triplet, temperature] = parts.map((t) => t.dataSync()[0]);
    tf.dispose(parts);

    const { lo, hi } = this.optimizer;
    const slice = exchange.reduceScatter(own, lo, hi);
    const gradNorm = Math.sqrt(exchange.allSum(sumOfSquares(slice)));
    this.optimizer.update(this.params, slice, plan.lr, clipScale(gradNorm, this.options.optimizer.gradClip));
    exchange.barrier();
    return { loss, infonce, triplet, gradNorm, temperature, tensors: tf.memory().numTensors };
  }

  /** Encode rows with one tower in evaluation mode (dropout off), in chunks to bound memory. */
  encode(tower: Tower, x: Float32Array, categories: Int32Array | null, rows: number): Float32Array {
    return encodeRows(this.model, this.params, tower, x, categories, rows);
  }

  /** This replica's optimizer slice. */
  optimizerState(): OptimizerState {
    return { t: this.optimizer.t, m: this.optimizer.m, v: this.optimizer.v };
  }
}

/** Encode `rows` rows of x with a tower, dropout off; outputs are L2-normalised. */
export function encodeRows(
  model: TwoTower,
  params: Float32Array,
  tower: Tower,
  x: Float32Array,
  categories: Int32Array | null,
  rows: number,
  chunk = 1024,
): Float32Array {
  const dim = model.spec.inputDim;
  const out = new Float32Array(rows * model.spec.out);
  const tensors = model.layout.tensors(params);
  const P = model.layout.named(tensors);
  for (let start = 0; start < rows; start += chunk) {
    const count = Math.min(chunk, rows - start);
    const encoded = tf.tidy(() => {
      const input = tf.tensor2d(x.subarray(start * dim, (start + count) * dim), [count, dim]);
      const y =
        tower === 'scene'
          ? model.encodeScenes(P, input, null)
          : model.encodeProducts(P, input, categories!.subarray(start, start + count), null);
      return model.spec.normalize ? y : l2Normalize(y);
    });
    out.set(encoded.dataSync(), start * model.spec.out);
    encoded.dispose();
  }
  tf.dispose(tensors);
  return out;
}

function positivesOf(data: TrainingMatrices, rows: Int32Array): Int32Array {
  return Int32Array.from(rows, (r) => data.rowProduct[r]);
}

function concatInt32(a: Int32Array, b: Int32Array): Int32Array {
  const out = new Int32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** This replica's rows, differentiable, between every other replica's rows as constants. */
function withOthers(own: tf.Tensor2D, all: Float32Array, rowStart: number, batchSize: number): tf.Tensor2D {
  const [rows, cols] = own.shape;
  const pieces: tf.Tensor2D[] = [];
  if (rowStart > 0) pieces.push(tf.tensor2d(all.subarray(0, rowStart * cols), [rowStart, cols]));
  pieces.push(own);
  const after = batchSize - rowStart - rows;
  if (after > 0) pieces.push(tf.tensor2d(all.subarray((rowStart + rows) * cols), [after, cols]));
  return pieces.length === 1 ? own : tf.concat(pieces);
}
