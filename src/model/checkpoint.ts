// Checkpoints: runs/<name>/checkpoints/{last,best}/, each a folder written whole and swapped in by rename, so a
// kill at any moment leaves the previous checkpoint or the new one:
//   model.safetensors    the weights, reference PyTorch state_dict names and layouts (load_state_dict-ready);
//                        metadata: arch, epoch, embedding model, and the reference's cat_to_idx (JSON) and
//                        num_categories
//   trainer.safetensors  `last` only: Adam's moments (exp_avg.<name>, exp_avg_sq.<name>, PyTorch layouts) and the
//                        mined-negative pool (mined_pool, I32 [rows, poolSize])
//   state.json           epoch, step, best metric, RNG position, optimizer step, the resolved config (typed by
//                        the trainer), category vocabulary and map, embedding model, data fingerprint, backend
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { SCENE_VIEWS } from '../data/workdir.js';
import {
  betweenSwapRenames,
  cleanTempFiles,
  restoreAside,
  waitForSwap,
  writeDirAtomic,
  writeFileAtomic,
  writeJsonAtomic,
} from '../util/atomic.js';
import { InputError, RunError } from '../util/errors.js';
import { readJsonIfExists } from '../util/json.js';
import { flag, int, issueLines, nonEmptyString, number, object, oneOf, parseWith } from '../util/schema.js';
import { checkCategoryMap } from './categories.js';
import { modelSpecSchema } from './config.js';
import type { ParamLayout } from './params.js';
import { decodeSafetensors, encodeSafetensors, type SafeTensor } from './safetensors.js';
import { fromStateDict, toStateDict } from './state-dict.js';
import { pathExists } from '../util/fs.js';

/** The run's latest checkpoint (resume from it) and its best by the selection metric. */
export const CHECKPOINT_NAMES = ['best', 'last'] as const;
export type CheckpointName = (typeof CHECKPOINT_NAMES)[number];

/** Said of a checkpoint whose files do not read. */
const DAMAGED = '; the checkpoint is damaged: restore it, or remove the run folder to train it again';

/** Version of the checkpoint format; 2 = the reference's exact module names. */
export const CHECKPOINT_VERSION = 2;

/** A selection metric; `ctl import` of an earlier version wrote a NaN one as null, read as 0 as it now writes it. */
const metricSchema = () =>
  number()
    .nullable()
    .transform((metric) => metric ?? 0);

/**
 * state.json, with `config` the trainer's resolved config checked by the trainer's schema. Fields a later version
 * may add are left out; `config` and `spec` refuse a field they do not know, as a model this version cannot build.
 */
function checkpointStateSchema<Config extends z.ZodType>(config: Config) {
  return object({
    version: z.literal(CHECKPOINT_VERSION, { error: `expected ${CHECKPOINT_VERSION}` }),
    /** Epochs completed. */
    epoch: int(0),
    /** Optimizer steps completed. */
    step: int(0),
    /** This checkpoint's value of the selection metric, and the best so far. */
    metric: metricSchema(),
    best: object({ epoch: int(0), metric: metricSchema() }),
    epochsWithoutGain: int(0),
    /** Every draw is a function of (seed, purpose, counter) (util/random.ts, named by PRNG_NAME); this is where
     * the run stands. */
    rng: object({ algorithm: nonEmptyString(), seed: int(0), nextEpoch: int(0), nextStep: int(0) }),
    optimizer: object({ kind: nonEmptyString(), t: int(0) }),
    config,
    /** What the command line changed in the config file (e.g. the embedding model). */
    overrides: z.record(z.string(), z.unknown()),
    spec: modelSpecSchema,
    /** The dataset's category vocabulary the run trained on. */
    categories: z.array(
      object({ index: int(0), name: nonEmptyString(), path: nonEmptyString(), firstSeen: int(0).optional() }),
    ),
    /** The row of the category embedding each leaf category stands for (the reference's cat_to_idx); the rows
     * are checked against num_categories by checkCategoryMap. */
    categoryMap: object({ cat_to_idx: z.record(z.string(), int(0)), num_categories: int(0) }),
    embeddings: object({ model: nonEmptyString(), dim: int(1), sceneView: oneOf(SCENE_VIEWS) }),
    /** `dataset`: the digest of the dataset trained on (data/dataset.ts; absent in older checkpoints). */
    data: object({
      fingerprint: nonEmptyString(),
      trainPairs: int(0),
      valPairs: int(0),
      dataset: nonEmptyString().optional(),
    }),
    backend: nonEmptyString(),
    workers: int(1),
    /** The step the saved mined pool was mined at (mined negatives only). */
    minedStep: int(0).optional(),
    /** Weights read from a reference torch.save file (`ctl import --checkpoint`) rather than trained here: the
     * file, whether it was a bare state_dict, and the metrics it carried. */
    imported: object({ file: nonEmptyString(), bare: flag(), metrics: z.record(z.string(), z.unknown()) }).optional(),
    savedAt: nonEmptyString(),
  });
}

/** A checkpoint's state.json. `Config` is the trainer's resolved config (the model layer only stores it). */
export type CheckpointState<Config = unknown> = Omit<z.output<ReturnType<typeof checkpointStateSchema>>, 'config'> & {
  config: Config;
};

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
  await writeDirAtomic(checkpointDir(runDir, name), (tmp) => writeCheckpointFiles(tmp, layout, checkpoint));
}

/** A checkpoint folder's files: model.safetensors, trainer.safetensors (with an optimizer), state.json. */
async function writeCheckpointFiles<Config>(
  tmp: string,
  layout: ParamLayout,
  checkpoint: Checkpoint<Config>,
): Promise<void> {
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
  config: z.ZodType<Config> = z.unknown() as z.ZodType<Config>,
): Promise<CheckpointState<Config> | null> {
  await recover(runDir);
  await waitForSwap(checkpointDir(runDir, name)); // a trainer saving this very moment
  return readStateFile(runDir, name, config);
}

/** The state.json of a checkpoint as it is now (no recovery, no wait), or null when there is none. */
async function readStateFile<Config>(
  runDir: string,
  name: CheckpointName,
  config: z.ZodType<Config> = z.unknown() as z.ZodType<Config>,
): Promise<CheckpointState<Config> | null> {
  const file = join(checkpointDir(runDir, name), 'state.json');
  // Damaged is not absent: treating it as "no checkpoint" would let a new run overwrite this one.
  const raw = await readJsonIfExists(file, DAMAGED);
  return raw === undefined ? null : parseCheckpointState(raw, file, config);
}

/** A state.json's document, checked (`config` checks the run's config); an InputError naming each bad field. */
export function parseCheckpointState<Config>(
  document: unknown,
  file: string,
  config: z.ZodType<Config>,
): CheckpointState<Config> {
  const raw = document as { version?: unknown } | null;
  if (typeof raw?.version === 'number' && raw.version > CHECKPOINT_VERSION)
    throw new InputError(
      `${file}: checkpoint format ${raw.version}, newer than this ctl reads (${CHECKPOINT_VERSION}): update ctl`,
    );
  if (typeof raw?.version === 'number' && raw.version !== CHECKPOINT_VERSION)
    throw new InputError(
      `${file}: checkpoint format ${raw.version}, expected ${CHECKPOINT_VERSION} (the reference's exact state_dict names): this run was trained by an older ctl; train it again under a new name (\`ctl train --run NAME\`)`,
    );
  const { value: state, issues } = parseWith(checkpointStateSchema(config), raw);
  if (issues) throw new InputError(issueLines(file, issues) + DAMAGED);
  checkCategoryMap(state.categoryMap, `${file}: categoryMap`);
  return state as CheckpointState<Config>;
}

export async function loadCheckpoint<Config = unknown>(
  runDir: string,
  name: CheckpointName,
  layout: ParamLayout,
  config?: z.ZodType<Config>,
): Promise<Checkpoint<Config>> {
  const dir = checkpointDir(runDir, name);
  // A trainer may swap a new folder in while this one is read (its files are read by path, and a swap may begin
  // right after waitForSwap): read again until state.json is the same after the weights as before them, so that
  // state and weights are of one save.
  for (let attempt = 1; ; attempt++) {
    const state = await readCheckpointState(runDir, name, config);
    let checkpoint: Checkpoint<Config>;
    try {
      if (!state) throw new Error(`no checkpoint at ${dir}`);
      checkpoint = await readCheckpointFiles(dir, state, layout);
    } catch (err) {
      // A swap explains a failed read (a file gone with the folder set aside) that the next try would not repeat;
      // a damaged or foreign checkpoint that stays put fails the same way every time, so it is reported at once.
      if (attempt === READ_TRIES || !(await replacedSince(runDir, name, state, config))) throw err;
      continue;
    }
    if (!(await stateChangedSince(runDir, name, state, config))) return checkpoint;
    if (attempt === READ_TRIES)
      throw new RunError(`${dir} was replaced while being read, ${READ_TRIES} times in a row: try again`);
  }
}

/** Reads of a checkpoint folder before giving up on one that keeps being replaced. */
const READ_TRIES = 5;

/** Whether the checkpoint whose state.json read as `state` has been swapped out since, or is being swapped now. */
async function replacedSince<Config>(
  runDir: string,
  name: CheckpointName,
  state: CheckpointState<Config> | null,
  config?: z.ZodType<Config>,
): Promise<boolean> {
  return (
    (await betweenSwapRenames(checkpointDir(runDir, name))) || (await stateChangedSince(runDir, name, state, config))
  );
}

/** Whether the checkpoint's state.json now differs from `state` (a new save swapped in, or the folder gone). */
async function stateChangedSince<Config>(
  runDir: string,
  name: CheckpointName,
  state: CheckpointState<Config> | null,
  config?: z.ZodType<Config>,
): Promise<boolean> {
  return JSON.stringify(await readStateFile(runDir, name, config)) !== JSON.stringify(state);
}

/** The weights (and the trainer's state, when saved) of the checkpoint folder `dir`, whose state.json is `state`. */
async function readCheckpointFiles<Config>(
  dir: string,
  state: CheckpointState<Config>,
  layout: ParamLayout,
): Promise<Checkpoint<Config>> {
  const modelFile = join(dir, 'model.safetensors');
  const model = decodeSafetensors(await readCheckpointFile(modelFile), modelFile);
  const checkpoint: Checkpoint<Config> = { state, params: fromStateDict(layout, model.tensors, modelFile) };
  const trainerFile = join(dir, 'trainer.safetensors');
  if (await pathExists(trainerFile)) {
    const trainer = decodeSafetensors(await readCheckpointFile(trainerFile), trainerFile);
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

/** A checkpoint's file; one that is missing or unreadable beside its state.json is a damaged checkpoint. */
async function readCheckpointFile(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (err) {
    throw new InputError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code})${DAMAGED}`);
  }
}
