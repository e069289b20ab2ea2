// Checkpoints: runs/<name>/checkpoints/{last,best}/, each a folder written whole and swapped in by rename, so a
// kill at any moment leaves the previous checkpoint or the new one:
//   model.safetensors    the weights, reference PyTorch state_dict names and layouts (load_state_dict-ready);
//                        metadata: arch, epoch, embedding model, and the reference's cat_to_idx (JSON) and
//                        num_categories
//   trainer.safetensors  `last` only: Adam's moments (exp_avg.<name>, exp_avg_sq.<name>, PyTorch layouts) and the
//                        mined-negative pool (mined_pool, I32 [rows, poolSize])
//   state.json           epoch, step, best metric, RNG position, optimizer step, the resolved config (typed by
//                        the trainer), category vocabulary and map, embedding model, data fingerprint, backend
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Category } from '../data/types.js';
import type { SceneView } from '../data/workdir.js';
import {
  cleanTempFiles,
  replaceDir,
  restoreAside,
  tempPathFor,
  waitForSwap,
  writeFileAtomic,
  writeJsonAtomic,
} from '../util/atomic.js';
import { InputError } from '../util/errors.js';
import { parseJsonFile } from '../util/json.js';
import { checkCategoryMap, type CategoryMap } from './categories.js';
import type { ParamLayout } from './params.js';
import { decodeSafetensors, encodeSafetensors, type SafeTensor } from './safetensors.js';
import { fromStateDict, toStateDict } from './state-dict.js';
import type { ModelSpec } from './two-tower.js';
import { pathExists } from '../util/fs.js';

/** The run's latest checkpoint (resume from it) and its best by the selection metric. */
export const CHECKPOINT_NAMES = ['best', 'last'] as const;
export type CheckpointName = (typeof CHECKPOINT_NAMES)[number];

/** Version of the checkpoint format; 2 = the reference's exact module names. */
export const CHECKPOINT_VERSION = 2;

/** A checkpoint's state.json. `Config` is the trainer's resolved config (the model layer only stores it). */
export interface CheckpointState<Config = unknown> {
  version: typeof CHECKPOINT_VERSION;
  /** Epochs completed. */
  epoch: number;
  /** Optimizer steps completed. */
  step: number;
  /** This checkpoint's value of the selection metric, and the best so far. */
  metric: number;
  best: { epoch: number; metric: number };
  epochsWithoutGain: number;
  /** Every draw is a function of (seed, purpose, counter) (util/random.ts, named by PRNG_NAME); this is where the
   * run stands. */
  rng: { algorithm: string; seed: number; nextEpoch: number; nextStep: number };
  optimizer: { kind: string; t: number };
  config: Config;
  /** What the command line changed in the config file (e.g. the embedding model). */
  overrides: Record<string, unknown>;
  spec: ModelSpec;
  /** The dataset's category vocabulary the run trained on. */
  categories: Category[];
  /** The row of the category embedding each leaf category stands for (the reference's cat_to_idx). */
  categoryMap: CategoryMap;
  embeddings: { model: string; dim: number; sceneView: SceneView };
  /** `dataset`: the digest of the dataset trained on (data/dataset.ts; absent in older checkpoints). */
  data: { fingerprint: string; trainPairs: number; valPairs: number; dataset?: string };
  backend: string;
  workers: number;
  /** The step the saved mined pool was mined at (mined negatives only). */
  minedStep?: number;
  /** Weights read from a reference torch.save file (`ctl import --checkpoint`) rather than trained here: the file,
   * whether it was a bare state_dict, and the metrics it carried. */
  imported?: { file: string; bare: boolean; metrics: Record<string, unknown> };
  savedAt: string;
}

/** Adam's step count and moments, in the parameter layout. */
export interface OptimizerMoments {
  t: number;
  m: Float32Array;
  v: Float32Array;
}

export interface Checkpoint<Config = unknown> {
  state: CheckpointState<Config>;
  params: Float32Array;
  optimizer?: OptimizerMoments;
  minedPool?: { pool: Int32Array; poolSize: number };
}

export function checkpointDir(runDir: string, name: CheckpointName): string {
  return join(runDir, 'checkpoints', name);
}

export async function saveCheckpoint<Config>(
  runDir: string,
  name: CheckpointName,
  layout: ParamLayout,
  checkpoint: Checkpoint<Config>,
): Promise<void> {
  const parent = join(runDir, 'checkpoints');
  await mkdir(parent, { recursive: true });
  const final = checkpointDir(runDir, name);
  const tmp = tempPathFor(final);
  await mkdir(tmp);
  const { state } = checkpoint;
  const metadata = {
    format: 'pt',
    producer: 'ctl train',
    arch: state.spec.arch,
    epoch: String(state.epoch),
    embedding_model: state.embeddings.model,
    cat_to_idx: JSON.stringify(state.categoryMap.cat_to_idx),
    num_categories: String(state.categoryMap.num_categories),
  };
  await writeFileAtomic(
    join(tmp, 'model.safetensors'),
    encodeSafetensors({ tensors: toStateDict(layout, checkpoint.params), metadata }),
  );
  if (checkpoint.optimizer) {
    const tensors: Record<string, SafeTensor> = {
      ...toStateDict(layout, checkpoint.optimizer.m, 'exp_avg.'),
      ...toStateDict(layout, checkpoint.optimizer.v, 'exp_avg_sq.'),
    };
    if (checkpoint.minedPool) {
      const { pool, poolSize } = checkpoint.minedPool;
      tensors.mined_pool = { dtype: 'I32', shape: [pool.length / poolSize, poolSize], data: pool };
    }
    await writeFileAtomic(
      join(tmp, 'trainer.safetensors'),
      encodeSafetensors({ tensors, metadata: { step: String(checkpoint.optimizer.t) } }),
    );
  }
  await writeJsonAtomic(join(tmp, 'state.json'), state);
  await replaceDir(tmp, final);
}

/**
 * Finish or undo the swaps a kill interrupted, and drop half-written folders (of dead processes only). Both
 * checkpoints at once: a run resumed and stopped again must not leave `best` set aside for a later reader.
 */
async function recover(runDir: string): Promise<void> {
  await cleanTempFiles(join(runDir, 'checkpoints'));
  for (const name of CHECKPOINT_NAMES) await restoreAside(checkpointDir(runDir, name));
}

/**
 * The state.json of a checkpoint, or null when there is none. A checkpoint of an older format is an InputError
 * saying what to do.
 */
export async function readCheckpointState<Config = unknown>(
  runDir: string,
  name: CheckpointName,
): Promise<CheckpointState<Config> | null> {
  await recover(runDir);
  await waitForSwap(checkpointDir(runDir, name)); // a trainer saving this very moment
  const file = join(checkpointDir(runDir, name), 'state.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new InputError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  // Damaged is not absent: treating it as "no checkpoint" would let a new run overwrite this one.
  const state = parseJsonFile(
    text,
    file,
    '; the checkpoint is damaged: restore it, or remove the run folder to train it again',
  ) as CheckpointState<Config>;
  if (state.version !== CHECKPOINT_VERSION)
    throw new InputError(
      `${file}: checkpoint format ${state.version}, expected ${CHECKPOINT_VERSION} (the reference's exact state_dict names): this run was trained by an older ctl; train it again under a new name (\`ctl train --run NAME\`)`,
    );
  checkCategoryMap(state.categoryMap, `${file}: categoryMap`);
  return state;
}

export async function loadCheckpoint<Config = unknown>(
  runDir: string,
  name: CheckpointName,
  layout: ParamLayout,
): Promise<Checkpoint<Config>> {
  const state = await readCheckpointState<Config>(runDir, name);
  const dir = checkpointDir(runDir, name);
  if (!state) throw new Error(`no checkpoint at ${dir}`);
  const modelFile = join(dir, 'model.safetensors');
  const model = decodeSafetensors(new Uint8Array(await readFile(modelFile)), modelFile);
  const checkpoint: Checkpoint<Config> = { state, params: fromStateDict(layout, model.tensors, modelFile) };
  const trainerFile = join(dir, 'trainer.safetensors');
  if (await pathExists(trainerFile)) {
    const trainer = decodeSafetensors(new Uint8Array(await readFile(trainerFile)), trainerFile);
    checkpoint.optimizer = {
      t: state.optimizer.t,
      m: fromStateDict(layout, trainer.tensors, trainerFile, 'exp_avg.'),
      v: fromStateDict(layout, trainer.tensors, trainerFile, 'exp_avg_sq.'),
    };
    const pool = trainer.tensors.mined_pool;
    if (pool) checkpoint.minedPool = { pool: pool.data as Int32Array, poolSize: pool.shape[1] };
  }
  return checkpoint;
}
