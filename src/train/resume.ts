// Resuming a run: where it left off, what it was started with, and whether this command's config and data are the
// same.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { OTHER_DATA, trainedOnOtherData } from '../data/dataset.js';
import { listRunNames, runPaths } from '../data/workdir.js';
import {
  checkpointDir,
  loadCheckpoint,
  readCheckpointState,
  type Checkpoint,
  type CheckpointState,
} from '../model/checkpoint.js';
import type { ParamLayout } from '../model/params.js';
import { InputError } from '../util/errors.js';
import { pathExists } from '../util/fs.js';
import { differingPaths, valueAt } from '../util/json.js';
import { log } from '../util/log.js';
import { PRNG_NAME } from '../util/random.js';
import { trainConfigSchema, type TrainConfig } from './config.js';
import type { TrainingData } from './data.js';

/**
 * The state of the run's last checkpoint to resume from, or null to start from the beginning. Refuses to overwrite
 * checkpoints without --resume, and to start over where that would lose a best checkpoint; removes a lone epoch-1
 * best (a kill came between its two saves).
 */
export async function resumePoint(
  options: { workdir: string; resume?: boolean },
  name: string,
  dir: string,
): Promise<CheckpointState<TrainConfig> | null> {
  const previous = await readCheckpointState(dir, 'last', trainConfigSchema);
  if (previous && !options.resume)
    throw new InputError(
      `run '${name}' already has checkpoints in ${dir}: pass --resume to continue it, or --run NAME to start another`,
    );
  if (previous) return previous;
  // A best without a last: epoch 1's, when a kill came between the two saves (best is written first), is
  // dropped and the run starts over; a later one (last removed by hand, or not copied) cannot be resumed, and
  // starting over would overwrite it and the metrics log its eval reports go with.
  const lone = await readCheckpointState(dir, 'best', trainConfigSchema);
  if (lone && lone.epoch > 1)
    throw new InputError(
      `run '${name}' has a 'best' checkpoint (epoch ${lone.epoch}) but no 'last' one to resume from ` +
        `(${checkpointDir(dir, 'last')}): start another with --run NAME, or remove ${dir} to train it again`,
    );
  if (lone) await rm(checkpointDir(dir, 'best'), { recursive: true, force: true });
  if (options.resume) {
    // Said out loud: a mistyped --run starts a new run rather than resuming the one meant.
    const known = (await listRunNames(options.workdir)).filter((other) => other !== name);
    log(
      (await pathExists(runPaths(dir).config))
        ? `run '${name}' has no checkpoint yet: starting from the beginning`
        : `run '${name}' does not exist yet: starting it (runs here: ${known.join(', ') || 'none'})`,
    );
  }
  return null;
}

/**
 * The run's last checkpoint, to resume from. Only an imported run starts its optimizer afresh; a trained one without
 * Adam's moments would resume unlike itself.
 */
export async function loadLastCheckpoint(dir: string, layout: ParamLayout): Promise<Checkpoint<TrainConfig>> {
  const checkpoint = await loadCheckpoint(dir, 'last', layout, trainConfigSchema);
  if (!checkpoint.optimizer && !checkpoint.state.imported)
    throw new InputError(
      `${join(checkpointDir(dir, 'last'), 'trainer.safetensors')}: missing (the optimizer state to resume with): ` +
        `the checkpoint is damaged; restore it, or start another run with --run NAME`,
    );
  return checkpoint;
}

/**
 * Refuse to resume a run with another config or other data, saying what differs. The config compared is
 * the resolved one, `--set` flags included: resuming takes the same flags the run started with.
 */
export function checkResumable(
  previous: CheckpointState<TrainConfig>,
  now: { config: TrainConfig; data: TrainingData; backend: string; set: string[] },
): void {
  const { config, data, backend } = now;
  const setBefore = (previous.overrides.set as string[] | undefined) ?? [];
  const setNow = now.set;
  const reasons = configChanges(previous.config, config);
  if (reasons.length > 0 && JSON.stringify(setBefore) !== JSON.stringify(setNow))
    reasons.push(`the run was last started with ${setFlags(setBefore)}, this command has ${setFlags(setNow)}`);
  if (previous.embeddings.model !== data.embeddingModel)
    reasons.push(`embedding model: '${previous.embeddings.model}' → '${data.embeddingModel}'`);
  if (previous.embeddings.dim !== data.dim) reasons.push(`embedding dim: ${previous.embeddings.dim} → ${data.dim}`);
  if (JSON.stringify(previous.categories) !== JSON.stringify(data.dataset.categories))
    reasons.push('category vocabulary changed');
  if (previous.rng.algorithm !== PRNG_NAME)
    reasons.push(`random numbers: the run drew them with ${previous.rng.algorithm}, this version with ${PRNG_NAME}`);
  if (trainedOnOtherData(previous.data.dataset, data.datasetDigest)) reasons.push(`the run was ${OTHER_DATA}`);
  else if (previous.data.fingerprint !== data.fingerprint)
    reasons.push(
      `data changed (train pairs ${previous.data.trainPairs} → ${data.train.pairs.length}, val pairs ${previous.data.valPairs} → ${data.val.pairs.length}, or the dataset/embeddings differ)`,
    );
  if (reasons.length > 0)
    throw new InputError(`cannot resume: ${reasons.join('; ')}. Start a new run with --run NAME instead`);
  if (previous.backend !== backend)
    log(`note: the run trained on ${previous.backend} so far, now ${backend}: results may differ within float noise`);
}

/** What differs between two resolved configs, one `config PATH: before → now` line per field. */
export function configChanges(before: TrainConfig, now: TrainConfig): string[] {
  return differingPaths(before, now).map(
    (p) => `config ${p}: ${JSON.stringify(valueAt(before, p))} → ${JSON.stringify(valueAt(now, p))}`,
  );
}

function setFlags(set: string[]): string {
  return set.length ? set.map((s) => `--set ${s}`).join(' ') : 'no --set';
}

/** Has the run done its work: all its epochs, or stopped early for want of gains? */
export function isFinished(
  state: Pick<CheckpointState<TrainConfig>, 'epoch' | 'epochsWithoutGain' | 'config'>,
): boolean {
  const { epochs, patience } = state.config;
  return state.epoch >= epochs || (patience > 0 && state.epochsWithoutGain >= patience);
}
