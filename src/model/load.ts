// A trained run's towers for the later stages (eval, export, serve): the weights of a checkpoint, the config
// and category map it was trained with, and encoders with dropout off (onnxruntime or tfjs: tower-encoder.ts).
import type * as z from 'zod';
import type { Category } from '../data/types.js';
import { InputError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import type { TowerBackendChoice } from './backend.js';
import { openTowerEncoder } from './tower-encoder.js';
import { categoryRows } from './categories.js';
import {
  checkpointDir,
  loadCheckpoint,
  readCheckpointState,
  type CheckpointName,
  type CheckpointState,
  type OptimizerMoments,
} from './checkpoint.js';
import { TwoTower, type ModelSpec, type Tower } from './two-tower.js';

/** Rows from which encoding shows progress: a catalog takes a v2 tower seconds to minutes, a request's scene not. */
const PROGRESS_FROM = 10_000;

async function withProgress(
  tower: Tower,
  rows: number,
  encode: (onChunk?: (rows: number) => void) => Promise<Float32Array>,
): Promise<Float32Array> {
  if (rows < PROGRESS_FROM) return encode();
  const progress = new Progress(`encode ${tower}s`, rows, { unit: 'rows' });
  const out = await encode((done) => progress.tick(done));
  progress.finish();
  return out;
}

export interface TrainedModel<Config = unknown> {
  config: Config;
  spec: ModelSpec;
  /** The checkpoint's state.json: epoch, metric, category map, embedding model, data fingerprint. */
  state: CheckpointState<Config>;
  /** Flat parameters (our layout; see model/state-dict.ts for PyTorch's). */
  params: Float32Array;
  /** What runs the towers: 'ort-cpu', or the tfjs backend's name. */
  backend: string;
  /** The trainer's Adam state saved with these weights (a 'last' checkpoint keeps one), read with them. */
  optimizer?: OptimizerMoments;
  /** For each category of a dataset vocabulary, its row in the checkpoint's category embedding (the
   * checkpoint's cat_to_idx); a category it does not know is an InputError naming it. */
  categoryRows(categories: Category[]): Int32Array;
  /** Scene embeddings [n, inputDim] → L2-normalised [n, out]. */
  encodeScenes(x: Float32Array, n: number): Promise<Float32Array>;
  /** Product embeddings [n, inputDim] and category rows (see categoryRows) → L2-normalised [n, out]. */
  encodeProducts(x: Float32Array, categories: Int32Array, n: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/**
 * Load `runs/<name>/checkpoints/<which>`; its towers run on `backend` (default auto: onnxruntime-node if it loads,
 * else tfjs), said in one line. `config` checks the config the run was trained with (what the caller reads of it).
 * `checkpointFlag`: the command takes --checkpoint, so a missing checkpoint's message may offer the other one.
 */
export async function loadTrainedModel<Config>(
  runDir: string,
  which: CheckpointName,
  {
    backend = 'auto',
    config,
    checkpointFlag = true,
  }: { backend?: TowerBackendChoice; config: z.ZodType<Config>; checkpointFlag?: boolean },
): Promise<TrainedModel<Config>> {
  const found = await readCheckpointState(runDir, which, config);
  const dir = checkpointDir(runDir, which);
  if (!found)
    throw new InputError(
      `no '${which}' checkpoint in ${dir}: ` +
        (which === 'last'
          ? 'take --checkpoint best, or train the run'
          : `train the run first (\`ctl train\`)${checkpointFlag ? ', or take --checkpoint last' : ''}`),
    );
  const model = new TwoTower(found.spec);
  // The state read with the weights (a trainer may have saved again since `found`).
  const { state, params, optimizer } = await loadCheckpoint(runDir, which, model.layout, config);
  const encoder = await openTowerEncoder(backend, model, params);
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
    backend: encoder.backend,
    optimizer,
    categoryRows: (categories) => categoryRows(state.categoryMap, categories, `the checkpoint in ${dir}`),
    async encodeScenes(x, n) {
      check(x, n);
      return withProgress('scene', n, (onChunk) => encoder.encode('scene', x, null, n, onChunk));
    },
    async encodeProducts(x, categories, n) {
      check(x, n);
      if (categories.length !== n) throw new InputError(`expected ${n} category rows, got ${categories.length}`);
      for (const c of categories)
        if (c < 0 || c >= state.spec.numCategories)
          throw new InputError(`category row ${c}: the checkpoint has ${state.spec.numCategories} categories`);
      return withProgress('product', n, (onChunk) => encoder.encode('product', x, categories, n, onChunk));
    },
    dispose: () => encoder.dispose(),
  };
}
