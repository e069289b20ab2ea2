// The training config: plain JSON data (configs/*.json), checked against one schema before any work, so a typo or
// a bad value fails with the file and the field named. The schema also gives the TypeScript type, the defaults
// and the field table of configs/README.md (`npm run configs:doc`). `--set PATH=VALUE` flags edit the file's
// data before the check; the resolved config is what a run records and what `--resume` compares.
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import * as z from 'zod';
import { RECALL_KS } from '../eval/metrics.js';
import { PROTOCOLS, type Metrics } from '../eval/protocols.js';
import { modelConfigSchema } from '../model/config.js';
import { InputError } from '../util/errors.js';
import { modelSlug, SCENE_VIEWS } from '../data/workdir.js';
import { isObject, parseJsonFile } from '../util/json.js';
import { flag, int, nonEmptyString, number, oneOf, parseWith, satisfying, section } from '../util/schema.js';
import { NEGATIVE_STRATEGIES } from './negatives.js';
import { isRunRecord } from './run-record.js';
import { DOMAINS, SPLIT_SCHEMES } from '../data/types.js';

const SELECTION_METRICS = [...RECALL_KS.map((k) => `recall@${k}` as const), 'mrr' as const];

const isPair = (value: unknown, isValid: (x: unknown) => boolean): value is [number, number] =>
  Array.isArray(value) && value.length === 2 && value.every(isValid);

const negativesConfigSchema = section({
  strategy: oneOf(NEGATIVE_STRATEGIES).meta({ description: 'negatives for the triplet loss' }),
  refreshSteps: int(1)
    .default(500)
    .meta({ description: 'mined: re-encode the catalog and re-mine every K steps (same-category-random before)' }),
  rankWindow: satisfying<[number, number]>(
    (w) => isPair(w, (r) => Number.isInteger(r) && (r as number) >= 0) && w[0] < w[1],
    '[lo, hi] ranks with 0 <= lo < hi',
  )
    .default([5, 50])
    .meta({ description: "mined: ranks [lo, hi) of a scene's same-category non-positives to draw from (0 = closest)" }),
  poolSize: int(1).default(8).meta({ description: 'mined: candidates kept per training pair; each step draws one' }),
});

export const trainConfigSchema = section({
  name: nonEmptyString().meta({ description: 'default run name', defaultText: 'file name' }),
  description: nonEmptyString().optional().meta({ description: 'what the config is for (free text)' }),
  domain: oneOf(DOMAINS).default('fashion').meta({ description: 'STL domain' }),
  embeddings: section({
    model: nonEmptyString().meta({ description: 'embedding model id, as in `workdir/embeddings/<slug>/`' }),
    dim: int(1).optional().meta({ description: 'expected input width, checked against the store' }),
  }),
  sceneView: oneOf(SCENE_VIEWS)
    .default('full')
    .meta({ description: "the whole scene, or the scene with the product's box hidden" }),
  split: oneOf(SPLIT_SCHEMES).meta({
    description: "`seed` (the reference's pair shuffle) or `scene` (scene-disjoint)",
  }),
  model: modelConfigSchema,
  loss: section({
    infonce: number(0).default(1).meta({ description: 'weight of the symmetric InfoNCE loss' }),
    triplet: number(0).default(0).meta({ description: 'weight of the triplet loss (cosine distance)' }),
    margin: number(0).default(0.2).meta({ description: 'triplet margin' }),
    maskFalseNegatives: flag().default(false).meta({
      description:
        "take a scene's other true products in the batch out of the InfoNCE softmax instead of treating them as negatives (the reference did not)",
    }),
  }),
  negatives: negativesConfigSchema.prefault({ strategy: 'none' }),
  optimizer: section({
    kind: oneOf(['adam', 'adamw']).meta({ description: '`adam` (L2 weight decay) or `adamw` (decoupled), as PyTorch' }),
    lr: number(1e-12).meta({ description: 'peak learning rate' }),
    weightDecay: number(0).default(0).meta({ description: 'weight decay' }),
    betas: satisfying<[number, number]>(
      (b) => isPair(b, (x) => typeof x === 'number' && x >= 0 && x < 1),
      '[beta1, beta2] with 0 <= beta < 1',
    )
      .default([0.9, 0.999])
      .meta({ description: "Adam's moment decay rates" }),
    eps: number(0).default(1e-8).meta({ description: "Adam's epsilon" }),
    gradClip: number(0).default(0).meta({ description: 'global gradient-norm clip (0 = off)' }),
  }),
  schedule: section({
    warmupFraction: number(0, 1).default(0).meta({ description: 'linear warm-up over this fraction of training' }),
    decay: oneOf(['cosine', 'constant']).default('cosine').meta({ description: 'learning rate after warm-up' }),
    unit: oneOf(['step', 'epoch'])
      .default('step')
      .meta({ description: '`epoch`: the rate changes once per epoch, as CosineAnnealingLR' }),
    minLr: number(0).default(0).meta({ description: 'floor of the cosine' }),
  }).prefault({}),
  batchSize: int(2).meta({ description: 'training pairs per step' }),
  epochs: int(1).meta({ description: 'maximum epochs' }),
  patience: int(0)
    .default(0)
    .meta({ description: 'stop after this many epochs without a gain of the selection metric (0 = never)' }),
  selection: section({
    protocol: oneOf(PROTOCOLS).meta({ description: "protocol run on the split's val part after every epoch" }),
    metric: oneOf(SELECTION_METRICS)
      .default('recall@10')
      .meta({ description: 'higher is better; picks the `best` checkpoint' }),
  }),
  seed: int(0)
    .default(42)
    .meta({ description: 'initialisation, shuffling, negatives and dropout (same seed and backend → same metrics)' }),
}).superRefine((config, ctx) => {
  const t = config.model.temperature;
  if (!(t.min <= t.init && t.init <= t.max))
    ctx.addIssue({ code: 'custom', path: ['model', 'temperature'], message: 'expected min <= init <= max', input: t });
  const [lo, hi] = config.negatives.rankWindow;
  if (config.negatives.poolSize > hi - lo)
    ctx.addIssue({
      code: 'custom',
      path: ['negatives', 'poolSize'],
      message: `expected at most the rank window's ${hi - lo} ranks (a pool holds distinct products of the window)`,
      input: config.negatives.poolSize,
    });
  if (config.schedule.minLr > config.optimizer.lr)
    ctx.addIssue({
      code: 'custom',
      path: ['schedule', 'minLr'],
      message: `expected at most optimizer.lr (${config.optimizer.lr}), the peak`,
      input: config.schedule.minLr,
    });
  if (config.loss.infonce === 0 && config.loss.triplet === 0)
    ctx.addIssue({
      code: 'custom',
      path: ['loss'],
      message: 'expected infonce or triplet weight > 0',
      input: config.loss,
    });
  if (config.loss.triplet > 0 && config.negatives.strategy === 'none')
    ctx.addIssue({
      code: 'custom',
      path: ['negatives', 'strategy'],
      message: 'expected a negative strategy when loss.triplet > 0 (the triplet loss needs negatives)',
      input: config.negatives.strategy,
    });
});

export type TrainConfig = z.output<typeof trainConfigSchema>;
export type NegativesConfig = z.output<typeof negativesConfigSchema>;

/** One `--set PATH=VALUE` flag: PATH dotted, VALUE parsed as JSON when it parses, else taken as a string. */
export interface ConfigOverride {
  flag: string;
  path: string;
  value: unknown;
}

export function parseOverride(assignment: string): ConfigOverride {
  const flag = `--set ${assignment}`;
  const m = /^([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)=(.*)$/s.exec(assignment);
  if (!m) throw new InputError(`${flag}: expected PATH=VALUE with a dotted field path, e.g. --set optimizer.lr=1e-3`);
  let value: unknown;
  try {
    value = JSON.parse(m[2]);
  } catch {
    value = m[2];
  }
  return { flag, path: m[1], value };
}

/** Read and validate a config file, with `overrides` applied to its data first (see readConfigFile). */
export async function loadTrainConfig(path: string, overrides: ConfigOverride[] = []): Promise<TrainConfig> {
  const file = await readConfigFile(path);
  return parseTrainConfig(file.document, file.source, overrides);
}

/**
 * A config file's JSON. A run's config.json serves too: the config it trains with is its `config`, and `run` is
 * its folder's name (an imported run, which has no file of its own, resumes from it).
 */
async function readConfigFile(path: string): Promise<{ document: unknown; source: string; run?: string }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(
      `${path}: ${code === 'ENOENT' ? 'config file not found' : `cannot read the config file (${code})`}`,
    );
  }
  const document = parseJsonFile(text, path);
  if (isRunRecord(document))
    return { document: document.config, source: `${path}: config`, run: basename(dirname(resolve(path))) };
  return { document, source: path };
}

/** Validate plain data as a config; `source` names the file in errors (and gives the default name). */
export function parseTrainConfig(raw: unknown, source: string, overrides: ConfigOverride[] = []): TrainConfig {
  let data = raw;
  if (isObject(raw)) {
    data = { ...raw, name: raw.name ?? source.replace(/^.*[\\/]/, '').replace(/\.json$/, '') };
    for (const override of overrides) data = withValue(data as Record<string, unknown>, override.path, override.value);
  }
  const { value, issues } = parseWith(trainConfigSchema, data);
  if (issues === undefined) return value;
  const fileSource = overrides.length ? `${source} with ${overrides.map((o) => o.flag).join(' ')}` : source;
  const lines = issues.map(({ field, message }) => {
    // An issue at, above or under a flag's path is that flag's; any other is the file's (or the combination's).
    const flags = overrides.filter((o) => related(o.path, field)).map((o) => o.flag);
    return `${flags.length ? flags.join(' ') : fileSource}: ${field || '(top level)'}: ${message}`;
  });
  throw new InputError(lines.join('\n'));
}

/** A copy of `object` with the dotted `path` set to `value`; missing or non-object sections become objects. */
function withValue(object: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const [key, ...rest] = path.split('.');
  if (rest.length === 0) return { ...object, [key]: value };
  const inner = isObject(object[key]) ? object[key] : {};
  return { ...object, [key]: withValue(inner, rest.join('.'), value) };
}

function related(path: string, field: string): boolean {
  return field !== '' && (path === field || path.startsWith(`${field}.`) || field.startsWith(`${path}.`));
}

/**
 * The config a run trains with: the file, its --set flags and the --embeddings override applied; `run`: the run a
 * run's config.json belongs to; `defaultRun`: the run it trains unless told another (defaultRunName).
 */
export async function resolveConfig(options: {
  /** The config file. */
  config: string;
  /** `--set PATH=VALUE` assignments. */
  set?: string[];
  /** Another embedding model than the config's. */
  embeddings?: string;
}): Promise<{ config: TrainConfig; overrides: Record<string, unknown>; run?: string; defaultRun: string }> {
  const set = options.set ?? [];
  const file = await readConfigFile(options.config);
  const config = parseTrainConfig(file.document, file.source, set.map(parseOverride));
  const embeddings = options.embeddings;
  const defaultRun = file.run ?? defaultRunName(config, embeddings);
  const overrides: Record<string, unknown> = set.length ? { set } : {};
  if (embeddings && embeddings !== config.embeddings.model) {
    overrides.embeddings = embeddings;
    // The config's dim belongs to its own model.
    config.embeddings = { model: embeddings };
  }
  return { config, overrides, run: file.run, defaultRun };
}

/**
 * The run a config trains unless told another: its name, plus the embedding model when `embeddings` is another model
 * than the config names (`--embeddings`), so the runs of one config on two stores do not share a folder.
 */
export function defaultRunName(config: TrainConfig, embeddings?: string): string {
  return embeddings && embeddings !== config.embeddings.model ? `${config.name}-${modelSlug(embeddings)}` : config.name;
}

/** "recall@10" → metrics.recall["10"]; "mrr" → metrics.mrr. */
export function selectionValue(metrics: Metrics, metric: string): number {
  return metric === 'mrr' ? metrics.mrr : metrics.recall[metric.replace('recall@', '')];
}
