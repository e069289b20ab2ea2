// The training loop: epochs of steps over the train pairs, a validation after each, its record in the metrics log
// and its checkpoints; the zero-shot record a new run starts with (written before its engine starts).
import { join } from 'node:path';
import { evaluateProtocol, type Metrics } from '../eval/protocols.js';
import type { Checkpoint } from '../model/checkpoint.js';
import type { ParamLayout } from '../model/params.js';
import { InputError, RunError } from '../util/errors.js';
import type { Lock } from '../util/lock.js';
import { formatDuration, log } from '../util/log.js';
import { gatherRows, l2NormalizeRows } from '../util/matrix.js';
import { Progress } from '../util/progress.js';
import { keyedRandom } from '../util/random.js';
import { saveCheckpoints, type RunSetup } from './checkpointing.js';
import { selectionValue, type TrainConfig } from './config.js';
import type { TrainingData } from './data.js';
import type { StepPlan, TrainEngine } from './engine.js';
import type { MetricsLog } from './metrics-log.js';
import { createNegativeSampler, drawnNegatives, type NegativeSampler } from './negatives.js';
import { inBatchFalseNegatives } from './negatives/negative-index.js';
import { isFinished } from './resume.js';
import { learningRate } from './schedule.js';

interface LoopContext extends RunSetup {
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
 * The epochs from where the checkpoint left off (or from the zero-shot record): train an epoch, validate, record it,
 * checkpoint; stop early when the selection metric has not improved for `patience` epochs. Returns the best epoch
 * and the epochs done.
 */
export async function trainLoop(
  ctx: LoopContext,
): Promise<{ best: { epoch: number; metric: number }; epochs: number }> {
  const { config, data, engine, metricsLog } = ctx;
  const stepsPerEpoch = countSteps(data.train.pairs.length, config.batchSize, ctx.workers);
  const state = ctx.checkpoint?.state;
  let step = state?.step ?? 0;
  let best = state?.best ?? { epoch: 0, metric: -Infinity };
  let epochsWithoutGain = state?.epochsWithoutGain ?? 0;
  const negatives = resumedSampler(ctx);

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
    await saveCheckpoints(
      ctx,
      { epoch: epoch + 1, step, metric, best, epochsWithoutGain },
      { best: improved, sampled },
    );
    log(
      `epoch ${epoch + 1}/${config.epochs}: loss ${trained.record.loss.toFixed(4)}, val ${config.selection.protocol} ` +
        `${config.selection.metric} ${formatMetric(metric)}${improved ? ' (best)' : ''}, ` +
        `${Math.round(trained.record.samplesPerSec)} samples/s, ${formatDuration(trained.record.trainSeconds)}`,
    );
  }
  if (epoch < config.epochs) log(`early stop: no ${config.selection.metric} gain for ${config.patience} epochs`);
  log(
    `best val ${config.selection.protocol} ${config.selection.metric} ${formatMetric(best.metric)} at epoch ${best.epoch}; checkpoints in ${join(ctx.dir, 'checkpoints')}`,
  );
  return { best, epochs: epoch };
}

/** An epoch's steps: whole batches, and a last partial one large enough to split over the workers. */
function countSteps(rows: number, batchSize: number, workers: number): number {
  // A last partial batch too small to split over the workers (or to have in-batch negatives) is left out.
  const remainder = rows % batchSize;
  const steps = Math.floor(rows / batchSize) + (remainder >= Math.max(2, workers) ? 1 : 0);
  if (steps === 0)
    throw new InputError(`only ${rows} training pairs: fewer than ${Math.max(2, workers)}, nothing to train on`);
  return steps;
}

/** The config's negative sampler, with the mined pool of the checkpoint resumed from (when it saved one). */
function resumedSampler({ config, data, checkpoint }: LoopContext): NegativeSampler {
  const state = checkpoint?.state;
  const saved = checkpoint?.minedPool;
  return createNegativeSampler(
    drawnNegatives(config),
    { index: data.negativeIndex, config: config.negatives, seed: config.seed },
    saved && state?.minedStep !== undefined
      ? { step: state.minedStep, table: saved.pool, width: saved.poolSize }
      : null,
  );
}

/**
 * The selection protocol on the raw embeddings (cosine), logged and recorded: what training has to beat. A new run
 * writes it before its engine starts: the ort-cpu engine takes the matrices it reads (backend.ts createEngine).
 */
export async function recordZeroShot(data: TrainingData, config: TrainConfig, metricsLog: MetricsLog): Promise<void> {
  const metrics = await validate(data, config, {
    scenes: l2NormalizeRows(data.val.scenes.slice(), data.dim),
    products: l2NormalizeRows(data.products.slice(), data.dim),
    dim: data.dim,
  });
  log(
    `zero-shot (raw embeddings, cosine): val ${config.selection.protocol} ${config.selection.metric} ${formatMetric(selectionValue(metrics, config.selection.metric))}`,
  );
  await metricsLog.append({ type: 'zero-shot', step: 0, epoch: 0, protocol: config.selection.protocol, metrics });
}

interface EpochResult {
  /** The step the next epoch starts at. */
  step: number;
  /** The epoch's means and speed, for its metrics record. */
  record: Losses & {
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
  const sums: Losses = { loss: 0, infonce: 0, triplet: 0 };
  let liveTensors: number | undefined;
  let step = firstStep;
  let samples = 0;
  for (let b = 0; b < stepsPerEpoch; b++) {
    const batch = Int32Array.from(order.slice(b * config.batchSize, (b + 1) * config.batchSize));
    await negatives.refresh?.(step, engine);
    const lr = learningRate(config.schedule, config.optimizer.lr, step, stepsPerEpoch, config.epochs);
    const result = await engine.step(planStep(step, lr, batch, config, data, negatives));
    checkFinite(result, { run: ctx.name, step, epoch, lr });
    step++;
    samples += batch.length;
    addLosses(sums, result);
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
    const mean = meanLosses(sums, b + 1); // the epoch's so far, as its summary line gives it
    progress.tick(
      batch.length,
      `loss ${mean.loss.toFixed(3)} (nce ${mean.infonce.toFixed(3)} trip ${mean.triplet.toFixed(3)}) lr ${lr.toExponential(1)} τ ${result.temperature.toFixed(3)}`,
    );
  }
  progress.finish();
  const trainSeconds = (performance.now() - started) / 1000;
  return {
    step,
    record: {
      ...meanLosses(sums, stepsPerEpoch),
      trainSeconds,
      samplesPerSec: trainedRows / trainSeconds,
      liveTensors,
    },
  };
}

/**
 * Refuse a step whose loss or gradient norm is not finite. A finite loss can come with gradients that overflowed: the
 * update just made the weights NaN, and the next checkpoint would keep them.
 */
function checkFinite(
  result: { loss: number; gradNorm: number },
  at: { run: string; step: number; epoch: number; lr: number },
): void {
  const diverged = Object.entries({ loss: result.loss, 'gradient norm': result.gradNorm }).find(
    ([, value]) => !Number.isFinite(value),
  );
  if (diverged)
    throw new RunError(
      `${diverged[0]} is ${diverged[1]} at step ${at.step + 1} (epoch ${at.epoch + 1}, learning rate ${at.lr.toExponential(2)}): ` +
        `try a lower optimizer.lr or optimizer.gradClip (e.g. 1.0) in ${at.run}'s config, and check the embeddings with \`ctl data verify-embeddings\``,
    );
}

/** A step's loss and its two terms; summed over an epoch's steps for their means. */
type Losses = { loss: number; infonce: number; triplet: number };

function addLosses(sums: Losses, step: Losses): void {
  sums.loss += step.loss;
  sums.infonce += step.infonce;
  sums.triplet += step.triplet;
}

const meanLosses = (sums: Losses, steps: number): Losses => ({
  loss: sums.loss / steps,
  infonce: sums.infonce / steps,
  triplet: sums.triplet / steps,
});

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

/** The selection protocol on the val pairs, scored with these vectors of the distinct val scenes (data.val.scenes'
 * rows) and of the products. */
function validate(
  data: TrainingData,
  config: TrainConfig,
  vectors: { scenes: Float32Array; products: Float32Array; dim: number },
): Promise<Metrics> {
  return evaluateProtocol(config.selection.protocol, {
    dataset: data.dataset,
    pairs: data.val.pairs,
    sceneVectors: gatherRows(vectors.scenes, data.val.sceneRow, vectors.dim),
    productVectors: vectors.products,
    dim: vectors.dim,
    missingProducts: data.missingProducts,
  });
}

export function formatMetric(x: number): string {
  return Number.isFinite(x) ? x.toFixed(4) : String(x);
}
