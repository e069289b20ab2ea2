// Where the steps run, behind one TrainEngine interface. The two tfjs engines run the same step (gradients.ts: the
// loss and gradients of a batch) and the same fused optimizer: LocalEngine (local-engine.ts) on this thread (any
// backend) over the whole batch; ParallelEngine (parallel.ts) with one replica per worker thread, each with its own
// wasm backend, over shards of every batch. OrtEngine (ort/) runs the whole step as one ONNX graph, on the CPU (on
// a worker thread of its own: ort/worker-engine.ts) or on WebGPU. This file holds what they share: the interface, the matrices a run trains on, a step's plan.
import { encodeRows } from '../model/encode.js';
import type { ModelSpec, Tower, TwoTower } from '../model/two-tower.js';
import type { LossWeights } from './losses.js';
import type { OptimizerConfig, OptimizerState } from './optimizer.js';

/** The matrices a run encodes: training scenes (for mining), validation scenes, the catalog. */
export type MatrixName = 'trainScenes' | 'valScenes' | 'products';

export interface EngineMatrices {
  /** [distinct training scene inputs, inputDim]: each once, however many training rows share it. */
  trainScenes: Float32Array;
  /** Training row → its row of trainScenes. */
  trainSceneRow: Int32Array;
  /** [distinct validation scene inputs, inputDim]. */
  valScenes: Float32Array;
  /** [products, inputDim] embedding of each dataset product. */
  products: Float32Array;
  /** Dataset product index → category. */
  productCategory: Int32Array;
  /** Training row → its positive's dataset product index. */
  rowProduct: Int32Array;
}

/** What one step trains on. */
export interface StepPlan {
  step: number;
  lr: number;
  /** Training rows of the batch. */
  rows: Int32Array;
  /** Explicit negative product per row (same-category-random, mined), -1 for none; null = no explicit negatives. */
  negatives: Int32Array | null;
  /** [B, B] allowed in-batch negatives (in-batch-hard), see negatives/in-batch-hard.ts. */
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
  /** Live tfjs tensors after the step, from the tfjs engines (a leak shows as growth). */
  tensors?: number;
}

export interface TrainEngine {
  readonly workers: number;
  step(plan: StepPlan): Promise<StepResult>;
  /** A whole matrix through its tower, dropout off, L2-normalised rows. */
  encode(matrix: MatrixName): Promise<Float32Array>;
  /** A host copy of the current flat parameters. */
  params(): Promise<Float32Array>;
  /** The whole optimizer state (all slices). */
  optimizerState(): Promise<OptimizerState>;
  dispose(): Promise<void>;
}

export interface EngineOptions {
  spec: ModelSpec;
  optimizer: OptimizerConfig;
  loss: LossWeights;
  seed: number;
  /** The flat parameters to start from. */
  params: Float32Array;
  optimizerState?: OptimizerState;
  matrices: EngineMatrices;
}

export function rowsOf(matrices: EngineMatrices, matrix: MatrixName, dim: number): number {
  return matrices[matrix].length / dim;
}

/** Rows [start, end) of a matrix through its tower: scenes → scene tower, products → product tower. */
export function encodeMatrix(
  model: TwoTower,
  params: Float32Array,
  matrices: EngineMatrices,
  matrix: MatrixName,
  start: number,
  end: number,
): Float32Array {
  const dim = model.spec.inputDim;
  const tower: Tower = matrix === 'products' ? 'product' : 'scene';
  const categories = matrix === 'products' ? matrices.productCategory.subarray(start, end) : null;
  return encodeRows(model, params, tower, matrices[matrix].subarray(start * dim, end * dim), categories, end - start);
}
