// One data-parallel replica, run by a worker thread (worker.ts): each step it takes its shard of the batch,
// computes the loss and gradients (gradients.ts) with the other replicas' embeddings gathered through shared
// memory, sums the gradients with the others, and updates its slice of the shared parameter vector.
import * as tf from '@tensorflow/tfjs';
import { TwoTower } from '../model/two-tower.js';
import type { ParamEntry } from '../model/params.js';
import type { EngineOptions, StepPlan, StepResult } from './engine.js';
import type { SharedExchange } from './exchange.js';
import { batchOf } from './batch.js';
import { lossAndGradients } from './gradients.js';
import { FlatAdam, clipScale, sumOfSquares, type OptimizerState } from './optimizer.js';

/** Rows [start, end) of a batch of `size` rows that replica `rank` of `world` takes. */
export function shardRange(size: number, world: number, rank: number): [number, number] {
  const base = Math.floor(size / world);
  const extra = size % world;
  const start = rank * base + Math.min(rank, extra);
  return [start, start + base + (rank < extra ? 1 : 0)];
}

export interface ReplicaOptions extends EngineOptions {
  /** The flat parameters, shared between replicas; each updates its slice (see shardRange). */
  params: Float32Array;
  /** Moments of this replica's slice. */
  optimizerState?: OptimizerState;
  exchange: SharedExchange;
}

export class Replica {
  readonly model: TwoTower;
  readonly params: Float32Array;
  readonly optimizer: FlatAdam;
  private readonly exchange: SharedExchange;
  /** The parameters the loss reads directly: every replica computes their whole-batch gradient. */
  private readonly lossParams: ParamEntry[];

  constructor(private readonly options: ReplicaOptions) {
    this.model = new TwoTower(options.spec);
    this.params = options.params;
    this.exchange = options.exchange;
    const [lo, hi] = shardRange(this.model.layout.size, this.exchange.world, this.exchange.rank);
    this.optimizer = new FlatAdam(options.optimizer, lo, hi, options.optimizerState);
    this.lossParams = this.model.lossParamNames.map((name) => this.model.layout.get(name));
  }

  /** Forward, loss and backward of this replica's shard, then the shared update. */
  step(plan: StepPlan): StepResult {
    const { exchange, model } = this;
    const { matrices, seed, loss, optimizer } = this.options;
    const batchSize = plan.rows.length;
    const [start, end] = shardRange(batchSize, exchange.world, exchange.rank);
    const { grad, ...parts } = lossAndGradients(model, this.params, {
      ...batchOf(matrices, plan, start, end, model.spec.inputDim),
      dropout: { seed, step: plan.step },
      loss,
      gather: exchange.world > 1 ? (blocks) => exchange.allGather(blocks, start, batchSize, model.spec.out) : undefined,
    });
    // The sum over replicas counts the whole-batch gradient of the loss's own parameters once (rank 0's).
    if (exchange.rank > 0) for (const p of this.lossParams) grad.fill(0, p.offset, p.offset + p.size);

    const { lo, hi } = this.optimizer;
    const slice = exchange.reduceScatter(grad, lo, hi);
    const gradNorm = Math.sqrt(exchange.allSum(sumOfSquares(slice)));
    this.optimizer.update(this.params, slice, plan.lr, clipScale(gradNorm, optimizer.gradClip));
    exchange.barrier();
    return { ...parts, gradNorm, tensors: tf.memory().numTensors };
  }

  /** This replica's optimizer slice. */
  optimizerState(): OptimizerState {
    return { t: this.optimizer.t, m: this.optimizer.m, v: this.optimizer.v };
  }
}
