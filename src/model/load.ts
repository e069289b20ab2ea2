// A trained run's towers for the later stages (eval, export, serve): the weights of a checkpoint, the config
// and vocabulary it was trained with, and encoders with dropout off.
import * as tf from '@tensorflow/tfjs';
import {
  loadCheckpoint,
  readCheckpointState,
  checkpointDir,
  type CheckpointName,
  type CheckpointState,
} from '../train/checkpoint.js';
import type { TrainConfig } from '../train/config.js';
import { encodeRows } from './encode.js';
import { InputError } from '../util/errors.js';
import { useBackend, type BackendChoice } from './backend.js';
import { TwoTower, type ModelSpec } from './two-tower.js';

export interface TrainedModel {
  config: TrainConfig;
  spec: ModelSpec;
  /** The checkpoint's state.json: epoch, metric, category vocabulary, embedding model, data fingerprint. */
  state: CheckpointState;
  /** Flat parameters (our layout; see model/state-dict.ts for PyTorch's). */
  params: Float32Array;
  /** Scene embeddings [n, inputDim] → L2-normalised [n, out]. */
  encodeScenes(x: Float32Array, n: number): Promise<Float32Array>;
  /** Product embeddings [n, inputDim] and category indices → L2-normalised [n, out]. */
  encodeProducts(x: Float32Array, categories: Int32Array, n: number): Promise<Float32Array>;
  dispose(): void;
}

/**
 * Load `runs/<name>/checkpoints/<which>`. Uses the tfjs backend already selected, or selects `backend`
 * (default auto) when none is.
 */
export async function loadTrainedModel(
  runDir: string,
  which: CheckpointName,
  { backend = 'auto' as BackendChoice } = {},
): Promise<TrainedModel> {
  const state = await readCheckpointState(runDir, which);
  if (!state)
    throw new InputError(
      `no '${which}' checkpoint in ${checkpointDir(runDir, which)}: train the run first (\`ctl train\`)`,
    );
  if (!tf.engine().backendName) await useBackend(backend, { quiet: true });
  const model = new TwoTower(state.spec);
  const { params } = await loadCheckpoint(runDir, which, model.layout);
  const check = (x: Float32Array, n: number) => {
    if (x.length !== n * state.spec.inputDim)
      throw new InputError(
        `expected ${n} rows of ${state.spec.inputDim} values (the '${state.embeddings.model}' embeddings the run was trained on), got ${x.length} values`,
      );
  };
  return {
    config: state.config,
    spec: state.spec,
    state,
    params,
    async encodeScenes(x, n) {
      check(x, n);
      return encodeRows(model, params, 'scene', x, null, n);
    },
    async encodeProducts(x, categories, n) {
      check(x, n);
      if (categories.length !== n) throw new InputError(`expected ${n} category indices, got ${categories.length}`);
      for (const c of categories)
        if (c < 0 || c >= state.spec.numCategories)
          throw new InputError(`unknown category index ${c}: the run knows ${state.spec.numCategories} categories`);
      return encodeRows(model, params, 'product', x, categories, n);
    },
    dispose() {},
  };
}
