// The training config: plain JSON data (configs/*.json), validated field by field so a typo or a bad value
// fails before any work with the file and the field named. Optional fields get their defaults here, and the
// resolved config is what a run records and what `--resume` compares.
import { readFile } from 'node:fs/promises';
import type { Domain, SplitScheme } from '../data/types.js';
import type { SceneView } from '../data/store/pair-inputs.js';
import { PROTOCOLS, type Protocol } from '../eval/protocols.js';
import type { ModelConfig } from '../model/two-tower.js';
import { InputError } from '../util/errors.js';
import { NEGATIVE_STRATEGIES, type NegativeStrategy } from './negatives.js';
import type { OptimizerConfig } from './optimizer.js';
import type { ScheduleConfig } from './schedule.js';
import type { LossWeights } from './losses.js';

export interface NegativesConfig {
  strategy: NegativeStrategy;
  /** mined: re-mine every this many steps (before the first mining, negatives are same-category-random). */
  refreshSteps: number;
  /** mined: keep candidates ranked [lo, hi) among a scene's same-category non-positives (0 = the closest). */
  rankWindow: [number, number];
  /** mined: candidates kept per training pair; each step draws one. */
  poolSize: number;
}

export interface TrainConfig {
  /** Default run name. */
  name: string;
  description?: string;
  domain: Domain;
  embeddings: {
    /** Embedding model id, as in the store (workdir/embeddings/<slug>/...). */
    model: string;
    /** Expected input width; checked against the store when given. */
    dim?: number;
  };
  sceneView: SceneView;
  split: SplitScheme;
  model: ModelConfig;
  loss: LossWeights & {
    /** Take a scene's other true products in the batch out of the InfoNCE softmax instead of treating them as
     * negatives (the reference did not). */
    maskFalseNegatives: boolean;
  };
  negatives: NegativesConfig;
  optimizer: OptimizerConfig;
  schedule: ScheduleConfig;
  batchSize: number;
  /** Maximum epochs. */
  epochs: number;
  /** Stop after this many epochs without a gain of the selection metric; 0 = never. */
  patience: number;
  selection: {
    /** Protocol run on the split's val part after every epoch. */
    protocol: Protocol;
    /** "recall@K" (K in 1, 5, 10, 50) or "mrr"; higher is better. */
    metric: string;
  };
  seed: number;
}

export const SELECTION_METRICS = ['recall@1', 'recall@5', 'recall@10', 'recall@50', 'mrr'];

/** Read and validate a config file. */
export async function loadTrainConfig(path: string): Promise<TrainConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new InputError(`${path}: config file not found`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InputError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  return parseTrainConfig(raw, path);
}

/** Validate plain data as a config; `source` names the file in errors. */
export function parseTrainConfig(raw: unknown, source: string): TrainConfig {
  const v = new Validator(source);
  const root = v.object(raw, '');
  const model = v.object(root.model, 'model');
  const arch = v.oneOf(model.arch, 'model.arch', ['v1', 'v2'] as const);
  const temperature = v.object(model.temperature ?? {}, 'model.temperature');
  const loss = v.object(root.loss, 'loss');
  const negatives = v.object(root.negatives ?? { strategy: 'none' }, 'negatives');
  const optimizer = v.object(root.optimizer, 'optimizer');
  const schedule = v.object(root.schedule ?? {}, 'schedule');
  const selection = v.object(root.selection, 'selection');
  const embeddings = v.object(root.embeddings, 'embeddings');

  const config: TrainConfig = {
    name: v.string(root.name ?? source.replace(/^.*[\\/]/, '').replace(/\.json$/, ''), 'name'),
    ...(root.description !== undefined ? { description: v.string(root.description, 'description') } : {}),
    domain: v.oneOf(root.domain ?? 'fashion', 'domain', ['fashion', 'home'] as const),
    embeddings: {
      model: v.string(embeddings.model, 'embeddings.model'),
      ...(embeddings.dim !== undefined ? { dim: v.int(embeddings.dim, 'embeddings.dim', 1) } : {}),
    },
    sceneView: v.oneOf(root.sceneView ?? 'full', 'sceneView', ['full', 'hide-product'] as const),
    split: v.oneOf(root.split, 'split', ['seed', 'scene'] as const),
    model: {
      arch,
      hidden: v.int(model.hidden, 'model.hidden', 1),
      out: v.int(model.out, 'model.out', 1),
      blocks: arch === 'v2' ? v.int(model.blocks ?? 2, 'model.blocks', 0) : 0,
      dropout: v.number(model.dropout ?? 0, 'model.dropout', 0, 0.99),
      categoryDim: v.int(model.categoryDim ?? 0, 'model.categoryDim', 0),
      normalize: v.boolean(model.normalize ?? true, 'model.normalize'),
      temperature: {
        init: v.number(temperature.init ?? 0.07, 'model.temperature.init', 1e-6),
        learnable: v.boolean(temperature.learnable ?? true, 'model.temperature.learnable'),
        min: v.number(temperature.min ?? 0.01, 'model.temperature.min', 1e-6),
        max: v.number(temperature.max ?? 1, 'model.temperature.max', 1e-6),
      },
    },
    loss: {
      infonce: v.number(loss.infonce ?? 1, 'loss.infonce', 0),
      triplet: v.number(loss.triplet ?? 0, 'loss.triplet', 0),
      margin: v.number(loss.margin ?? 0.2, 'loss.margin', 0),
      maskFalseNegatives: v.boolean(loss.maskFalseNegatives ?? false, 'loss.maskFalseNegatives'),
    },
    negatives: {
      strategy: v.oneOf(negatives.strategy, 'negatives.strategy', NEGATIVE_STRATEGIES),
      refreshSteps: v.int(negatives.refreshSteps ?? 500, 'negatives.refreshSteps', 1),
      rankWindow: v.window(negatives.rankWindow ?? [5, 50], 'negatives.rankWindow'),
      poolSize: v.int(negatives.poolSize ?? 8, 'negatives.poolSize', 1),
    },
    optimizer: {
      kind: v.oneOf(optimizer.kind, 'optimizer.kind', ['adam', 'adamw'] as const),
      lr: v.number(optimizer.lr, 'optimizer.lr', 1e-12),
      weightDecay: v.number(optimizer.weightDecay ?? 0, 'optimizer.weightDecay', 0),
      betas: v.betas(optimizer.betas ?? [0.9, 0.999], 'optimizer.betas'),
      eps: v.number(optimizer.eps ?? 1e-8, 'optimizer.eps', 0),
      gradClip: v.number(optimizer.gradClip ?? 0, 'optimizer.gradClip', 0),
    },
    schedule: {
      warmupFraction: v.number(schedule.warmupFraction ?? 0, 'schedule.warmupFraction', 0, 1),
      decay: v.oneOf(schedule.decay ?? 'cosine', 'schedule.decay', ['cosine', 'constant'] as const),
      unit: v.oneOf(schedule.unit ?? 'step', 'schedule.unit', ['step', 'epoch'] as const),
      minLr: v.number(schedule.minLr ?? 0, 'schedule.minLr', 0),
    },
    batchSize: v.int(root.batchSize, 'batchSize', 2),
    epochs: v.int(root.epochs, 'epochs', 1),
    patience: v.int(root.patience ?? 0, 'patience', 0),
    selection: {
      protocol: v.oneOf(selection.protocol, 'selection.protocol', PROTOCOLS),
      metric: v.oneOf(selection.metric ?? 'recall@10', 'selection.metric', SELECTION_METRICS),
    },
    seed: v.int(root.seed ?? 42, 'seed', 0),
  };

  const known = [
    'name',
    'description',
    'domain',
    'embeddings',
    'sceneView',
    'split',
    'model',
    'loss',
    'negatives',
    'optimizer',
    'schedule',
    'batchSize',
    'epochs',
    'patience',
    'selection',
    'seed',
  ];
  v.noUnknown(root, '', known);
  v.noUnknown(model, 'model.', [
    'arch',
    'hidden',
    'out',
    'blocks',
    'dropout',
    'categoryDim',
    'normalize',
    'temperature',
  ]);
  v.noUnknown(temperature, 'model.temperature.', ['init', 'learnable', 'min', 'max']);
  v.noUnknown(loss, 'loss.', ['infonce', 'triplet', 'margin', 'maskFalseNegatives']);
  v.noUnknown(negatives, 'negatives.', ['strategy', 'refreshSteps', 'rankWindow', 'poolSize']);
  v.noUnknown(optimizer, 'optimizer.', ['kind', 'lr', 'weightDecay', 'betas', 'eps', 'gradClip']);
  v.noUnknown(schedule, 'schedule.', ['warmupFraction', 'decay', 'unit', 'minLr']);
  v.noUnknown(selection, 'selection.', ['protocol', 'metric']);
  v.noUnknown(embeddings, 'embeddings.', ['model', 'dim']);

  const t = config.model.temperature;
  if (!(t.min <= t.init && t.init <= t.max))
    v.fail('model.temperature', `expected min <= init <= max, got ${t.min}, ${t.init}, ${t.max}`);
  if (config.loss.infonce === 0 && config.loss.triplet === 0) v.fail('loss', 'expected infonce or triplet weight > 0');
  if (config.loss.triplet > 0 && config.negatives.strategy === 'none')
    v.fail(
      'negatives.strategy',
      "expected a negative strategy when loss.triplet > 0 (the triplet loss needs negatives), got 'none'",
    );
  return config;
}

/** Field checks that throw InputError("<file>: <field>: expected ..., got ..."). */
class Validator {
  constructor(private readonly source: string) {}

  fail(field: string, message: string): never {
    throw new InputError(`${this.source}: ${field || '(top level)'}: ${message}`);
  }

  private got(value: unknown): string {
    return value === undefined ? 'nothing' : JSON.stringify(value);
  }

  object(value: unknown, field: string): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      this.fail(field, `expected an object, got ${this.got(value)}`);
    return value as Record<string, unknown>;
  }

  string(value: unknown, field: string): string {
    if (typeof value !== 'string' || value === '')
      this.fail(field, `expected a non-empty string, got ${this.got(value)}`);
    return value;
  }

  boolean(value: unknown, field: string): boolean {
    if (typeof value !== 'boolean') this.fail(field, `expected true or false, got ${this.got(value)}`);
    return value;
  }

  number(value: unknown, field: string, min = -Infinity, max = Infinity): number {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max)
      this.fail(field, `expected a number${rangeText(min, max)}, got ${this.got(value)}`);
    return value;
  }

  int(value: unknown, field: string, min = -Infinity): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min)
      this.fail(field, `expected an integer${rangeText(min, Infinity)}, got ${this.got(value)}`);
    return value;
  }

  oneOf<T extends string>(value: unknown, field: string, choices: readonly T[]): T {
    if (!choices.includes(value as T))
      this.fail(field, `expected one of ${choices.map((c) => `'${c}'`).join(', ')}, got ${this.got(value)}`);
    return value as T;
  }

  betas(value: unknown, field: string): [number, number] {
    if (!Array.isArray(value) || value.length !== 2 || !value.every((b) => typeof b === 'number' && b >= 0 && b < 1))
      this.fail(field, `expected [beta1, beta2] with 0 <= beta < 1, got ${this.got(value)}`);
    return [value[0], value[1]];
  }

  window(value: unknown, field: string): [number, number] {
    if (
      !Array.isArray(value) ||
      value.length !== 2 ||
      !value.every((b) => Number.isInteger(b) && b >= 0) ||
      value[0] >= value[1]
    )
      this.fail(field, `expected [lo, hi] ranks with 0 <= lo < hi, got ${this.got(value)}`);
    return [value[0], value[1]];
  }

  noUnknown(object: Record<string, unknown>, prefix: string, known: string[]): void {
    for (const key of Object.keys(object))
      if (!known.includes(key)) this.fail(`${prefix}${key}`, `unknown field (known: ${known.join(', ')})`);
  }
}

function rangeText(min: number, max: number): string {
  if (min === -Infinity && max === Infinity) return '';
  if (max === Infinity) return ` >= ${min}`;
  if (min === -Infinity) return ` <= ${max}`;
  return ` in [${min}, ${max}]`;
}
