// `ctl train`: train the towers on a split's train part, validate on its val part after every epoch with the
// configured protocol, keep the best and the last checkpoint, stop early when the selection metric stalls, and
// resume exactly where a killed run left off. One trainer per run at a time: a lock beside the run folder.
import { mkdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { evaluateProtocol, type Metrics } from '../eval/protocols.js';
import { categoryMapOf, categoryRows, type CategoryMap } from '../model/categories.js';
import { l2NormalizeRows } from '../util/matrix.js';
import {
  CHECKPOINT_VERSION,
  checkpointDir,
  loadCheckpoint,
  readCheckpointState,
  saveCheckpoint,
  type Checkpoint,
  type CheckpointState,
} from '../model/checkpoint.js';
import type { ParamLayout } from '../model/params.js';
import { TwoTower, type ModelSpec } from '../model/two-tower.js';
import { PRNG_NAME, keyedRandom } from '../util/random.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { InputError, RunError } from '../util/errors.js';
import { acquireLock, STALE_LOCK_MS, type Lock } from '../util/lock.js';
import { formatDuration, log } from '../util/log.js';
import { Progress } from '../util/progress.js';
import { pathExists } from '../util/fs.js';
import { checkRunName, listRunNames, runPaths, workdirPaths } from '../data/workdir.js';
import { chooseTrainBackend, chooseWorkers, createEngine, ortProvider, type TrainBackendChoice } from './backend.js';
import { resolveConfig, selectionValue, trainConfigSchema, type TrainConfig } from './config.js';
import { loadTrainingData, type TrainingData } from './data.js';
import type { StepPlan, TrainEngine } from './engine.js';
import { MetricsLog } from './metrics-log.js';
import { createNegativeSampler, type NegativeSampler, type SamplerState } from './negatives.js';
import { inBatchFalseNegatives } from './negatives/negative-index.js';
import { checkResumable, isFinished } from './resume.js';
import { learningRate } from './schedule.js';

export interface TrainRunOptions {
  workdir: string;
  /** Path of the config file. */
  config: string;
  /** `--set PATH=VALUE` assignments applied to the config file's data (recorded in the run). */
  set?: string[];
  /** Run name; default: the run of a run's config.json, else the config's name (+ the embedding model overridden). */
  run?: string;
  /** The engine: 'ort-cpu', 'webgpu' or a TensorFlow.js backend (backend.ts); default 'auto'. */
  backend?: TrainBackendChoice;
  resume?: boolean;
  /** Train on another embedding model's store than the config names (e.g. 'synthetic'). */
  embeddings?: string;
  /** Data-parallel worker threads (wasm); 'auto' = one per core, up to 2 (1 on other backends). */
  workers?: number | 'auto';
}

export interface TrainRunResult {
  run: string;
  dir: string;
  best: { epoch: number; metric: number };
  epochs: number;
  metric: string;
  protocol: string;
}

/** The negatives a config draws: none without a triplet term, whatever its strategy. */
const drawnNegatives = (config: TrainConfig) => (config.loss.triplet > 0 ? config.negatives.strategy : 'none');

/** Train (or resume) a run; see the file comment. */
export async function trainRun(options: TrainRunOptions): Promise<TrainRunResult> {
  const { config, overrides, run: configRun, defaultRun } = await resolveConfig(options);
  const name = options.run ?? defaultRun;
  const checked =
    options.run !== undefined
      ? checkRunName(name)
      : checkRunName(name, 'give --run NAME', `${options.config}: ${configRun ? "its folder's name" : 'name'}`);
  const dir = workdirPaths(options.workdir).run(checked);
  const lock = await lockRun(dir);
  try {
    return await trainLocked(options, { name, dir, config, overrides, lock });
  } finally {
    await lock.release();
  }
}

/** Hold the lock of the run in `dir`: what writes a run (`ctl train`, `ctl import --checkpoint`) holds it. */
export async function lockRun(dir: string): Promise<Lock> {
  await mkdir(dirname(dir), { recursive: true });
  return acquireLock(
    dir,
    (holder, file) =>
      `run '${basename(dir)}' is in use by process ${holder.pid} on ${holder.host} since ${holder.since} (a ctl ` +
      `train or import): wait for it, or stop it (its lock ${file} lapses once its process is gone, and when left ` +
      `untouched: for ${STALE_LOCK_MS / 60_000} minutes by another host, for an hour by this one)`,
  );
}

/** trainRun's work, with the run's lock held. */
async function trainLocked(
  options: TrainRunOptions,
  run: { name: string; dir: string; config: TrainConfig; overrides: Record<string, unknown>; lock: Lock },
): Promise<TrainRunResult> {
  const { name, dir, config, overrides } = run;
  const previous = await resumePoint(options, name, dir);
  const { name: backend, ortThreads } = await chooseTrainBackend(options.backend ?? 'auto');
  const data = await loadTrainingData(options.workdir, config, options.config);
  // The category embedding's rows are the reference's cat_to_idx, not the vocabulary's order.
  const categoryMap = categoryMapOf(data.dataset.categories);
  const categoryRow = categoryRows(categoryMap, data.dataset.categories, 'the dataset');
  const spec: ModelSpec = { ...config.model, inputDim: data.dim, numCategories: categoryMap.num_categories };
  const model = new TwoTower(spec);
  if (previous) checkResumable(previous, { config, data, backend, set: options.set ?? [] });
  const checkpoint = previous ? await loadCheckpoint(dir, 'last', model.layout, trainConfigSchema) : null;
  // Only an imported run starts its optimizer afresh; a trained one without Adam's moments would resume unlike itself.
  if (checkpoint && !checkpoint.optimizer && !checkpoint.state.imported)
    throw new InputError(
      `${join(checkpointDir(dir, 'last'), 'trainer.safetensors')}: missing (the optimizer state to resume with): ` +
        `the checkpoint is damaged; restore it, or start another run with --run NAME`,
    );
  const workers = chooseWorkers(options.workers, backend, previous?.workers ?? null);

  await mkdir(dir, { recursive: true });
  if (!previous) {
    await writeJsonAtomic(runPaths(dir).config, {
      config,
      overrides,
      configFile: options.config,
      embeddings: { model: data.embeddingModel, dim: data.dim },
      data: {
        fingerprint: data.fingerprint,
        trainPairs: data.train.pairs.length,
        valPairs: data.val.pairs.length,
        missing: data.missing,
      },
      createdAt: new Date().toISOString(),
    });
  }
  const metricsLog = await MetricsLog.open(runPaths(dir).metrics, checkpoint ? checkpoint.state.step : null);
  log(
    `train ${name}: ${config.model.arch}, ${data.train.pairs.length} train / ${data.val.pairs.length} val pairs (split ${config.split}), ` +
      `${data.dim}-d '${data.embeddingModel}' ${config.sceneView} scenes, ${model.layout.size.toLocaleString('en-US')} parameters, ` +
      `negatives ${drawnNegatives(config)}` +
      // The onnxruntime engines' threads are in their engine line.
      (ortProvider(backend) ? '' : `, ${workers} worker${workers > 1 ? 's' : ''}`),
  );
  if (previous)
    log(
      `resuming after epoch ${previous.epoch}/${config.epochs} (step ${previous.step}, best ${config.selection.metric} ` +
        `${formatMetric(previous.best.metric)} at epoch ${previous.best.epoch})`,
    );

  const engineOptions = {
    spec,
    optimizer: config.optimizer,
    loss: config.loss,
    seed: config.seed,
    params: checkpoint ? checkpoint.params : model.layout.initialise(config.seed),
    optimizerState: checkpoint?.optimizer,
    matrices: {
      trainScenes: data.train.scenes,
      valScenes: data.val.scenes,
      products: data.products,
      productCategory: Int32Array.from(data.productCategory, (c) => categoryRow[c]),
      rowProduct: data.rowProduct,
    },
  };
  // A step trains on at most every training pair, whatever the configured batch.
  const largestBatch = Math.min(config.batchSize, data.train.pairs.length);
  const engine = await createEngine({ name: backend, ortThreads }, workers, engineOptions, largestBatch);

  try {
    return await trainLoop({
      name,
      dir,
      config,
      data,
      spec,
      layout: model.layout,
      categoryMap,
      engine,
      metricsLog,
      checkpoint,
      backend,
      workers,
      overrides,
      lock: run.lock,
    });
  } finally {
    await engine.dispose();
  }
}

/**
 * The state of the run's last checkpoint to resume from, or null to start from the beginning. Refuses to overwrite
 * checkpoints without --resume, and to start over where that would lose a best checkpoint; removes a lone epoch-1
 * best (a kill came between its two saves).
 */
async function resumePoint(
  options: TrainRunOptions,
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

/** What a run's checkpoints record of how it was made; `ctl import` gives the same for a reference checkpoint. */
export interface RunRecord {
  config: TrainConfig;
  overrides: Record<string, unknown>;
  data: TrainingData;
  spec: ModelSpec;
  categoryMap: CategoryMap;
  backend: string;
  workers: number;
}

interface LoopContext extends RunRecord {
  name: string;
  dir: string;
  /** Where each parameter tensor sits in the flat vectors the engine and the checkpoints hold. */
  layout: ParamLayout;
  engine: TrainEngine;
  metricsLog: MetricsLog;
  checkpoint: Checkpoint<TrainConfig> | null;
  /** The run's lock: checked before each record and checkpoint is written. */
  lock: Lock;
}

/**
 * The epochs from where the checkpoint left off (or from a zero-shot record): train an epoch, validate, record it,
 * checkpoint; stop early when the selection metric has not improved for `patience` epochs.
 */
async function trainLoop(ctx: LoopContext): Promise<TrainRunResult> {
  const { config, data, engine, metricsLog } = ctx;
  const rows = data.train.pairs.length;
  // A last partial batch too small to split over the workers (or to have in-batch negatives) is left out.
  const remainder = rows % config.batchSize;
  const stepsPerEpoch = Math.floor(rows / config.batchSize) + (remainder >= Math.max(2, ctx.workers) ? 1 : 0);
  if (stepsPerEpoch === 0)
    throw new InputError(`only ${rows} training pairs: fewer than ${Math.max(2, ctx.workers)}, nothing to train on`);
  const state = ctx.checkpoint?.state;
  let step = state?.step ?? 0;
  let best = state?.best ?? { epoch: 0, metric: -Infinity };
  let epochsWithoutGain = state?.epochsWithoutGain ?? 0;
  const saved = ctx.checkpoint?.minedPool;
  const negatives = createNegativeSampler(
    drawnNegatives(config),
    { index: data.negativeIndex, config: config.negatives, seed: config.seed },
    saved && state?.minedStep !== undefined
      ? { step: state.minedStep, table: saved.pool, width: saved.poolSize }
      : null,
  );
  if (!state) await recordZeroShot(data, config, metricsLog);

  let epoch = state?.epoch ?? 0;
  for (; !isFinished({ epoch, epochsWithoutGain, config }); epoch++) {
    const trained = await trainEpoch(ctx, epoch, step, stepsPerEpoch, negatives);
    step = trained.step;
    const val = await validate(data, config, {
      scenes: await engine.encode('valScenes'),
      products: await engine.encode('products'),
      dim: ctx.spec.out,
    });
    const metric = selectionValue(val, config.selection.metric);
    const improved = metric > best.metric;
    if (improved) best = { epoch: epoch + 1, metric };
    epochsWithoutGain = improved ? 0 : epochsWithoutGain + 1;

    // The epoch's record goes first: a kill between the two then leaves a record past the checkpoint, which a
    // resume drops and writes again, never a checkpoint whose epoch has no record.
    await ctx.lock.checkHeld();
    await metricsLog.append({ type: 'epoch', step, epoch: epoch + 1, ...trained.record, metric, best: improved, val });
    const sampled = negatives.state?.() ?? null;
    await saveCheckpoints(ctx, {
      state: checkpointState(ctx, {
        epoch: epoch + 1,
        step,
        metric,
        best,
        epochsWithoutGain,
        ...(sampled ? { minedStep: sampled.step } : {}),
      }),
      best: improved,
      sampled,
    });
    log(
      `epoch ${epoch + 1}/${config.epochs}: loss ${trained.record.loss.toFixed(4)}, val ${config.selection.protocol} ` +
        `${config.selection.metric} ${formatMetric(metric)}${improved ? ' (best)' : ''}, ` +
        `${Math.round(trained.record.samplesPerSec)} samples/s, ${formatDuration(trained.record.trainSeconds)}`,
    );
  }
  if (epoch < config.epochs) log(`early stop: no ${config.selection.metric} gain for ${config.patience} epochs`);
  log(
    `best ${config.selection.metric} ${formatMetric(best.metric)} at epoch ${best.epoch}; checkpoints in ${join(ctx.dir, 'checkpoints')}`,
  );
  return {
    run: ctx.name,
    dir: ctx.dir,
    best,
    epochs: epoch,
    metric: config.selection.metric,
    protocol: config.selection.protocol,
  };
}

/** The selection protocol on the raw embeddings (cosine), logged and recorded: what training has to beat. */
async function recordZeroShot(data: TrainingData, config: TrainConfig, metricsLog: MetricsLog): Promise<void> {
  const metrics = await validate(data, config, {
    scenes: l2NormalizeRows(data.val.scenes.slice(), data.dim),
    products: l2NormalizeRows(data.products.slice(), data.dim),
    dim: data.dim,
  });
  log(
    `zero-shot (raw embeddings, cosine): ${config.selection.metric} ${formatMetric(selectionValue(metrics, config.selection.metric))}`,
  );
  await metricsLog.append({ type: 'zero-shot', step: 0, epoch: 0, protocol: config.selection.protocol, metrics });
}

interface EpochResult {
  /** The step the next epoch starts at. */
  step: number;
  /** The epoch's means and speed, for its metrics record. */
  record: {
    loss: number;
    infonce: number;
    triplet: number;
    trainSeconds: number;
    samplesPerSec: number;
    liveTensors: number | undefined;
  };
}

/**
 * One epoch's steps over the train pairs in the order keyed by (seed, epoch), each step's record appended to the
 * metrics log; returns the next step and the epoch's means for its record.
 */
async function trainEpoch(
  ctx: LoopContext,
  epoch: number,
  firstStep: number,
  stepsPerEpoch: number,
  negatives: NegativeSampler,
): Promise<EpochResult> {
  const { config, data, engine, metricsLog } = ctx;
  const rows = data.train.pairs.length;
  const trainedRows = Math.min(rows, stepsPerEpoch * config.batchSize);
  const order = keyedRandom(config.seed, 'shuffle', epoch).shuffle(Array.from({ length: rows }, (_, i) => i));
  const progress = new Progress(`epoch ${epoch + 1}/${config.epochs}`, trainedRows, { unit: 'samples' });
  const started = performance.now();
  const sums = { loss: 0, infonce: 0, triplet: 0 };
  let liveTensors: number | undefined;
  let step = firstStep;
  let samples = 0;
  for (let b = 0; b < stepsPerEpoch; b++) {
    const batch = Int32Array.from(order.slice(b * config.batchSize, (b + 1) * config.batchSize));
    await negatives.refresh?.(step, engine);
    const lr = learningRate(config.schedule, config.optimizer.lr, step, stepsPerEpoch, config.epochs);
    const result = await engine.step(planStep(step, lr, batch, config, data, negatives));
    // A finite loss can come with gradients that overflowed: the update just made the weights NaN, and the next
    // checkpoint would keep them.
    const diverged = Object.entries({ loss: result.loss, 'gradient norm': result.gradNorm }).find(
      ([, value]) => !Number.isFinite(value),
    );
    if (diverged)
      throw new RunError(
        `${diverged[0]} is ${diverged[1]} at step ${step + 1} (epoch ${epoch + 1}, learning rate ${lr.toExponential(2)}): ` +
          `try a lower optimizer.lr or optimizer.gradClip (e.g. 1.0) in ${ctx.name}'s config, and check the embeddings with \`ctl data verify-embeddings\``,
      );
    step++;
    samples += batch.length;
    sums.loss += result.loss;
    sums.infonce += result.infonce;
    sums.triplet += result.triplet;
    liveTensors = result.tensors;
    await ctx.lock.checkHeld();
    await metricsLog.append({
      type: 'step',
      step,
      epoch: epoch + 1,
      loss: result.loss,
      infonce: result.infonce,
      triplet: result.triplet,
      lr,
      temperature: result.temperature,
      gradNorm: result.gradNorm,
      samplesPerSec: samples / ((performance.now() - started) / 1000),
    });
    const mean = (sum: number) => (sum / (b + 1)).toFixed(3); // the epoch's so far, as its summary line gives it
    progress.tick(
      batch.length,
      `loss ${mean(sums.loss)} (nce ${mean(sums.infonce)} trip ${mean(sums.triplet)}) lr ${lr.toExponential(1)} τ ${result.temperature.toFixed(3)}`,
    );
  }
  progress.finish();
  const trainSeconds = (performance.now() - started) / 1000;
  return {
    step,
    record: {
      loss: sums.loss / stepsPerEpoch,
      infonce: sums.infonce / stepsPerEpoch,
      triplet: sums.triplet / stepsPerEpoch,
      trainSeconds,
      samplesPerSec: trainedRows / trainSeconds,
      liveTensors,
    },
  };
}

/** What a checkpoint records besides the tensors: where the run is, and what it ran on (checked on resume). */
export function checkpointState(
  run: RunRecord,
  at: Pick<CheckpointState<TrainConfig>, 'epoch' | 'step' | 'metric' | 'best' | 'epochsWithoutGain'> &
    Partial<Pick<CheckpointState<TrainConfig>, 'minedStep' | 'imported'>>,
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
    optimizer: { kind: config.optimizer.kind, t: at.step },
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

/** The epoch's 'last' checkpoint (with the optimizer and mined pool, to resume from), and 'best' when it is. */
async function saveCheckpoints(
  ctx: LoopContext,
  { state, best, sampled }: { state: CheckpointState<TrainConfig>; best: boolean; sampled: SamplerState | null },
): Promise<void> {
  const params = await ctx.engine.params();
  const optimizer = await ctx.engine.optimizerState();
  // Adam's step count is the run's step, or further on for an imported run whose file's optimizer had stepped.
  const recorded = { ...state, optimizer: { ...state.optimizer, t: optimizer.t } };
  if (best) await saveCheckpoint(ctx.dir, 'best', ctx.layout, { state: recorded, params });
  await saveCheckpoint(ctx.dir, 'last', ctx.layout, {
    state: recorded,
    params,
    optimizer,
    ...(sampled ? { minedPool: { pool: sampled.table, poolSize: sampled.width } } : {}),
  });
}

/** The step's negatives and masks, all drawn from (seed, step). */
function planStep(
  step: number,
  lr: number,
  rows: Int32Array,
  config: TrainConfig,
  data: TrainingData,
  negatives: NegativeSampler,
): StepPlan {
  return {
    step,
    lr,
    rows,
    ...negatives.sample(rows, step),
    falseNegatives: config.loss.maskFalseNegatives ? inBatchFalseNegatives(data.negativeIndex, rows) : null,
  };
}

/** The selection protocol on the val pairs, scored with these scene and product vectors. */
function validate(
  data: TrainingData,
  config: TrainConfig,
  vectors: { scenes: Float32Array; products: Float32Array; dim: number },
): Promise<Metrics> {
  return evaluateProtocol(config.selection.protocol, {
    dataset: data.dataset,
    pairs: data.val.pairs,
    sceneVectors: vectors.scenes,
    productVectors: vectors.products,
    dim: vectors.dim,
    missingProducts: data.missingProducts,
  });
}

function formatMetric(x: number): string {
  return Number.isFinite(x) ? x.toFixed(4) : String(x);
}
