// A step's batch read from the engine's matrices: as indices (what the ort step graph gathers itself) or as the
// rows' input vectors (what the tfjs step takes).
import { gatherRows } from '../util/matrix.js';
import type { EngineMatrices, StepPlan } from './engine.js';
import type { BatchStep } from './gradients.js';

/** A batch as indices into the engine's matrices: what batchOf gathers (and the ort step gathers in its graph). */
export interface BatchIndices {
  /** Each row's row of trainScenes. */
  scenes: Int32Array;
  /** Each row's positive product, and its category. */
  positives: Int32Array;
  positiveCategories: Int32Array;
  /** Each row's explicit negative product (-1: none) and its category (0 for none), 1 where it has one. */
  explicit: { products: Int32Array; categories: Int32Array; valid: Float32Array } | null;
}

export function batchIndices(matrices: EngineMatrices, plan: StepPlan, start: number, end: number): BatchIndices {
  const rows = plan.rows.subarray(start, end);
  const scenes = Int32Array.from(rows, (r) => matrices.trainSceneRow[r]);
  const positives = Int32Array.from(rows, (r) => matrices.rowProduct[r]);
  const categoriesOf = (products: Int32Array) =>
    Int32Array.from(products, (j) => (j >= 0 ? matrices.productCategory[j] : 0));
  const explicit = plan.negatives?.subarray(start, end);
  return {
    scenes,
    positives,
    positiveCategories: categoriesOf(positives),
    explicit:
      explicit && plan.negatives
        ? {
            products: explicit,
            categories: categoriesOf(explicit),
            valid: Float32Array.from(plan.negatives, (j) => (j >= 0 ? 1 : 0)),
          }
        : null,
  };
}

/** The inputs of rows [start, end) of a step's batch, read from the training matrices. */
export function batchOf(
  matrices: EngineMatrices,
  plan: StepPlan,
  start: number,
  end: number,
  dim: number,
): Pick<BatchStep, 'inputs' | 'negatives'> {
  const { scenes, positives, positiveCategories, explicit } = batchIndices(matrices, plan, start, end);
  return {
    inputs: {
      scenes: gatherRows(matrices.trainScenes, scenes, dim),
      positives: gatherRows(matrices.products, positives, dim),
      positiveCategories,
      start,
      batchSize: plan.rows.length,
    },
    negatives: {
      explicit: explicit && { ...explicit, products: gatherRows(matrices.products, explicit.products, dim) },
      hardCandidates: plan.hardCandidates,
      falseNegatives: plan.falseNegatives,
    },
  };
}
