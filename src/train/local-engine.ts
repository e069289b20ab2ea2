// The engine that runs each step on this thread, over the whole batch, on whatever tfjs backend is set: the step
// (gradients.ts) and the fused optimizer on the host. The reference the other engines are tested against.
import * as tf from '@tensorflow/tfjs';
import { TwoTower } from '../model/two-tower.js';
import { batchOf } from './batch.js';
import {
  encodeMatrix,
  rowsOf,
  type EngineOptions,
  type MatrixName,
  type StepPlan,
  type StepResult,
  type TrainEngine,
  type EngineMatrices,
} from './engine.js';
import { lossAndGradients } from './gradients.js';
import { FlatAdam, clipScale, sumOfSquares, type OptimizerState } from './optimizer.js';

/** A whole matrix through its tower. */
function encodeAll(model: TwoTower, params: Float32Array, matrices: EngineMatrices, matrix: MatrixName): Float32Array {
  return encodeMatrix(model, params, matrices, matrix, 0, rowsOf(matrices, matrix, model.spec.inputDim));
}

export class LocalEngine implements TrainEngine {
  readonly workers = 1;
  private readonly model: TwoTower;
  private readonly current: Float32Array;
  private readonly optimizer: FlatAdam;

  constructor(private readonly options: EngineOptions) {
    this.model = new TwoTower(options.spec);
    this.current = options.params.slice();
    this.optimizer = new FlatAdam(options.optimizer, 0, this.current.length, options.optimizerState);
  }

  async step(plan: StepPlan): Promise<StepResult> {
    const { matrices, seed, loss, optimizer, spec } = this.options;
    const batch = batchOf(matrices, plan, 0, plan.rows.length, spec.inputDim);
    const { grad, ...parts } = lossAndGradients(this.model, this.current, {
      ...batch,
      dropout: { seed, step: plan.step },
      loss,
    });
    const gradNorm = Math.sqrt(sumOfSquares(grad));
    this.optimizer.update(this.current, grad, plan.lr, clipScale(gradNorm, optimizer.gradClip));
    return { ...parts, gradNorm, tensors: tf.memory().numTensors };
  }

  async encode(matrix: MatrixName): Promise<Float32Array> {
    return encodeAll(this.model, this.current, this.options.matrices, matrix);
  }

  async params(): Promise<Float32Array> {
    return this.current.slice();
  }

  async optimizerState(): Promise<OptimizerState> {
    const { t, m, v } = this.optimizer;
    return { t, m: m.slice(), v: v.slice() };
  }

  async dispose(): Promise<void> {}
}
