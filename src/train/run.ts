// `ctl train`: train the towers on a split's train part, validate on its val part after every epoch with the
// configured protocol, keep the best and the last checkpoint, stop early when the selection metric stalls, and
// resume exactly where a killed run left off. One trainer per run at a time: a lock beside the run folder.
// The loop is loop.ts; what a checkpoint records, checkpointing.ts; where a run resumes from, resume.ts.
import { mkdir } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { categoryMapOf, categoryRows } from '../model/categories.js';
import type { Checkpoint } from '../model/checkpoint.js';
import type { ParamLayout } from '../model/params.js';
import { TwoTower, type ModelSpec } from '../model/two-tower.js';
import { acquireLock, STALE_LOCK_MS, type Lock } from '../util/lock.js';
import { log } from '../util/log.js';
import { checkRunName, runPaths, workdirPaths } from '../data/workdir.js';
import { chooseTrainBackend, chooseWorkers, createEngine, ortProvider, type TrainBackendChoice } from './backend.js';
import { resolveConfig, type TrainConfig } from './config.js';
import { loadTrainingData, type TrainingData } from './data.js';
import type { EngineOptions } from './engine.js';
import { formatMetric, recordZeroShot, trainLoop } from './loop.js';
import { MetricsLog } from './metrics-log.js';
import { drawnNegatives } from './negatives.js';
import { checkResumable, loadLastCheckpoint, resumePoint } from './resume.js';
import { writeRunRecord, type RunRecord } from './run-record.js';

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
  // Only the parameters' layout is needed here (each engine builds its own model from the spec); a model too large
  // for one parameter vector is refused here, before the run folder is written.
  const { layout } = new TwoTower(spec);
  if (previous) checkResumable(previous, { config, data, backend, set: options.set ?? [] });
  const checkpoint = previous ? await loadLastCheckpoint(dir, layout) : null;
  const workers = chooseWorkers(options.workers, backend, previous?.workers ?? null);

  await mkdir(dir, { recursive: true });
  if (!previous) await writeRunRecord(dir, newRunRecord(run, options.config, data));
  const metricsLog = await MetricsLog.open(runPaths(dir).metrics, checkpoint ? checkpoint.state.step : null);
  log(
    `train ${name}: ${config.model.arch}, ${data.train.pairs.length} train / ${data.val.pairs.length} val pairs (split ${config.split}), ` +
      `${data.dim}-d '${data.embeddingModel}' ${config.sceneView} scenes, ${layout.size.toLocaleString('en-US')} parameters, ` +
      `negatives ${drawnNegatives(config)}` +
      // The onnxruntime engines' threads are in their engine line.
      (ortProvider(backend) ? '' : `, ${workers} worker${workers > 1 ? 's' : ''}`),
  );
  if (previous)
    log(
      `resuming after epoch ${previous.epoch}/${config.epochs} (step ${previous.step}, best ${config.selection.metric} ` +
        `${formatMetric(previous.best.metric)} at epoch ${previous.best.epoch})`,
    );

  // Before the engine starts: the ort-cpu engine takes the embedding matrices the zero-shot record reads.
  if (!checkpoint) await recordZeroShot(data, config, metricsLog);
  const start = engineOptions({ config, data, spec, layout, categoryRow, checkpoint });
  // A step trains on at most every training pair, whatever the configured batch.
  const largestBatch = Math.min(config.batchSize, data.train.pairs.length);
  const engine = await createEngine({ name: backend, ortThreads }, workers, start, largestBatch);

  try {
    const { best, epochs } = await trainLoop({
      name,
      dir,
      config,
      data,
      spec,
      layout,
      categoryMap,
      engine,
      metricsLog,
      checkpoint,
      backend,
      workers,
      overrides,
      lock: run.lock,
    });
    return { run: name, dir, best, epochs, metric: config.selection.metric, protocol: config.selection.protocol };
  } finally {
    await engine.dispose();
  }
}

/** A new run's record (config.json): the config it starts with, from which file, and what its data holds. */
function newRunRecord(
  { config, overrides }: { config: TrainConfig; overrides: Record<string, unknown> },
  configFile: string,
  data: TrainingData,
): RunRecord {
  return {
    config,
    overrides,
    configFile,
    embeddings: { model: data.embeddingModel, dim: data.dim },
    data: {
      fingerprint: data.fingerprint,
      trainPairs: data.train.pairs.length,
      valPairs: data.val.pairs.length,
      missing: data.missing,
    },
    createdAt: new Date().toISOString(),
  };
}

/**
 * What the engine starts from: the model and the config's optimizer and loss, the checkpoint's weights and Adam's
 * moments (fresh weights for a new run), and the matrices it trains and validates on.
 */
function engineOptions(run: {
  config: TrainConfig;
  data: TrainingData;
  spec: ModelSpec;
  layout: ParamLayout;
  /** Dataset category → its row of the category embedding. */
  categoryRow: Int32Array;
  checkpoint: Checkpoint<TrainConfig> | null;
}): EngineOptions {
  const { config, data, checkpoint, categoryRow } = run;
  return {
    spec: run.spec,
    optimizer: config.optimizer,
    loss: config.loss,
    seed: config.seed,
    params: checkpoint ? checkpoint.params : run.layout.initialise(config.seed),
    optimizerState: checkpoint?.optimizer,
    matrices: {
      trainScenes: data.train.scenes,
      trainSceneRow: data.train.sceneRow,
      valScenes: data.val.scenes,
      products: data.products,
      productCategory: Int32Array.from(data.productCategory, (c) => categoryRow[c]),
      rowProduct: data.rowProduct,
    },
  };
}
