// Where the steps run: LocalEngine trains on this thread (any backend); ParallelEngine (parallel.ts) runs one
// replica per worker thread, each with its own wasm backend, over shards of every batch.
import type { Tower } from '../model/two-tower.js';
import type { OptimizerState } from './optimizer.js';
import { Replica, type ReplicaOptions, type StepPlan, type StepResult } from './replica.js';

/** The matrices a run encodes: training scenes (for mining), validation scenes, the catalog. */
export type MatrixName = 'trainScenes' | 'valScenes' | 'products';

export interface EngineMatrices {
  trainScenes: Float32Array;
  valScenes: Float32Array;
  products: Float32Array;
  productCategory: Int32Array;
  rowProduct: Int32Array;
}

export interface TrainEngine {
  readonly workers: number;
  step(plan: StepPlan): Promise<StepResult>;
  /** A whole matrix through its tower, dropout off, L2-normalised rows. */
  encode(matrix: MatrixName): Promise<Float32Array>;
  /** A copy of the current flat parameters. */
  params(): Float32Array;
  /** The whole optimizer state (all slices). */
  optimizerState(): Promise<OptimizerState>;
  dispose(): Promise<void>;
}

export type EngineOptions = Omit<ReplicaOptions, 'data' | 'exchange'> & { matrices: EngineMatrices };

export function towerOf(matrix: MatrixName): Tower {
  return matrix === 'products' ? 'product' : 'scene';
}

export function rowsOf(matrices: EngineMatrices, matrix: MatrixName, dim: number): number {
  return matrices[matrix].length / dim;
}

export class LocalEngine implements TrainEngine {
  readonly workers = 1;
  private readonly replica: Replica;

  constructor(private readonly options: EngineOptions) {
    const { matrices } = options;
    this.replica = new Replica({
      ...options,
      params: options.params.slice(),
      data: {
        scenes: matrices.trainScenes,
        products: matrices.products,
        productCategory: matrices.productCategory,
        rowProduct: matrices.rowProduct,
      },
    });
  }

  async step(plan: StepPlan): Promise<StepResult> {
    return this.replica.step(plan);
  }

  async encode(matrix: MatrixName): Promise<Float32Array> {
    const { matrices, spec } = this.options;
    const categories = matrix === 'products' ? matrices.productCategory : null;
    return this.replica.encode(towerOf(matrix), matrices[matrix], categories, rowsOf(matrices, matrix, spec.inputDim));
  }

  params(): Float32Array {
    return this.replica.params.slice();
  }

  async optimizerState(): Promise<OptimizerState> {
    const s = this.replica.optimizerState();
    return { t: s.t, m: s.m.slice(), v: s.v.slice() };
  }

  async dispose(): Promise<void> {}
}
