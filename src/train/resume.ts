// Resuming a run: what it was started with, and whether this command's config and data are the same.
import { OTHER_DATA, trainedOnOtherData } from '../data/dataset.js';
import type { CheckpointState } from '../model/checkpoint.js';
import { InputError } from '../util/errors.js';
import { differingPaths, valueAt } from '../util/json.js';
import { log } from '../util/log.js';
import { PRNG_NAME } from '../util/random.js';
import type { TrainConfig } from './config.js';
import type { TrainingData } from './data.js';

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
