// What the trainer writes into a checkpoint: the state beside the tensors (where the run is, what it ran on), and
// each epoch's 'last' and 'best' checkpoints. `ctl import --checkpoint` builds its state the same way.
import { CHECKPOINT_VERSION, saveCheckpoint, type CheckpointState } from '../model/checkpoint.js';
import type { CategoryMap } from '../model/categories.js';
import type { ParamLayout } from '../model/params.js';
import type { ModelSpec } from '../model/two-tower.js';
import { PRNG_NAME } from '../util/random.js';
import type { TrainConfig } from './config.js';
import type { TrainingData } from './data.js';
import type { TrainEngine } from './engine.js';
import type { SamplerState } from './negatives.js';

/** What a run trains with, as its checkpoints record it; `ctl import` gives the same for a reference checkpoint. */
export interface RunSetup {
  config: TrainConfig;
  overrides: Record<string, unknown>;
  data: TrainingData;
  spec: ModelSpec;
  categoryMap: CategoryMap;
  backend: string;
  workers: number;
}

/** Where a run is after an epoch: epochs and steps done, this epoch's metric and the best so far. */
type RunPosition = Pick<CheckpointState<TrainConfig>, 'epoch' | 'step' | 'metric' | 'best' | 'epochsWithoutGain'>;

/**
 * What a checkpoint records besides the tensors: where the run is, and what it ran on (checked on resume). Adam's
 * step count is the run's step unless given: an imported run's optimizer may have stepped before the run began.
 */
export function checkpointState(
  run: RunSetup,
  at: RunPosition & Partial<Pick<CheckpointState<TrainConfig>, 'minedStep' | 'imported'>> & { adamSteps?: number },
): CheckpointState<TrainConfig> {
  const { config, data } = run;
  return {
    version: CHECKPOINT_VERSION,
    epoch: at.epoch,
    step: at.step,
    metric: at.metric,
    best: at.best,
    epochsWithoutGain: at.epochsWithoutGain,
    rng: { algorithm: PRNG_NAME, seed: config.seed, nextEpoch: at.epoch, nextStep: at.step },
    optimizer: { kind: config.optimizer.kind, t: at.adamSteps ?? at.step },
    config,
    overrides: run.overrides,
    spec: run.spec,
    categories: data.dataset.categories,
    categoryMap: run.categoryMap,
    embeddings: { model: data.embeddingModel, dim: data.dim, sceneView: config.sceneView },
    data: {
      fingerprint: data.fingerprint,
      trainPairs: data.train.pairs.length,
      valPairs: data.val.pairs.length,
      dataset: data.datasetDigest,
    },
    backend: run.backend,
    workers: run.workers,
    ...(at.minedStep !== undefined ? { minedStep: at.minedStep } : {}),
    ...(at.imported ? { imported: at.imported } : {}),
    savedAt: new Date().toISOString(),
  };
}

/**
 * The epoch's 'last' checkpoint (with the optimizer and the sampler's mined pool, to resume from), and 'best' when
 * it is; the engine gives the tensors.
 */
export async function saveCheckpoints(
  run: RunSetup & { dir: string; layout: ParamLayout; engine: TrainEngine },
  at: RunPosition,
  { best, sampled }: { best: boolean; sampled: SamplerState | null },
): Promise<void> {
  const params = await run.engine.params();
  const optimizer = await run.engine.optimizerState();
  const state = checkpointState(run, {
    ...at,
    adamSteps: optimizer.t,
    ...(sampled ? { minedStep: sampled.step } : {}),
  });
  if (best) await saveCheckpoint(run.dir, 'best', run.layout, { state, params });
  await saveCheckpoint(run.dir, 'last', run.layout, {
    state,
    params,
    optimizer,
    ...(sampled ? { minedPool: { pool: sampled.table, poolSize: sampled.width } } : {}),
  });
}
