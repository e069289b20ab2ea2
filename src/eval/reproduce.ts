// `ctl reproduce`: train (or reuse the finished runs of) each config, evaluate every run and the zero-shot
// baseline, and print one report: our runs beside the reference's numbers under the reference's `seed` protocol,
// then everything under the honest `catalog` and `category` protocols. The report names the data it ran on; a
// synthetic dataset's numbers are labelled synthetic, never STL.
import type { Dataset } from '../data/dataset.js';
import { loadDataset } from '../data/stl/dataset-io.js';
import type { TrainBackendChoice } from '../train/backend.js';
import { readCheckpointState } from '../model/checkpoint.js';
import { loadTrainConfig, type TrainConfig } from '../train/config.js';
import { trainRun } from '../train/run.js';
import { InputError } from '../util/errors.js';
import { log } from '../util/log.js';
import { modelSlug, workdirPaths } from '../data/workdir.js';
import type { EngineName } from './engines.js';
import { defaultSplit, evaluateRun, evaluateZeroShot, type EvalReport, type EvalSplit } from './evaluate.js';
import { PROTOCOLS, type Protocol } from './protocols.js';
import { REFERENCE, referenceMetrics } from './reference.js';
import { formatTable, reportNote, type TableRow } from './table.js';

export interface ReproduceOptions {
  workdir: string;
  configs: string[];
  /** Train and evaluate on this embedding model's store instead of each config's. */
  embeddings?: string;
  /** The part catalog and category are evaluated on (seed always uses its val part). */
  split: EvalSplit;
  backend?: TrainBackendChoice;
  engine?: EngineName;
}

export interface ReproduceResult {
  data: { source: Dataset['source']; domain: Dataset['domain']; embeddings: string; label: string };
  runs: { config: string; run: string; trained: boolean; reports: EvalReport[] }[];
  zeroShot: EvalReport[];
  reference: typeof REFERENCE;
  /** The printed report. */
  lines: string[];
}

export async function reproduce(options: ReproduceOptions): Promise<ReproduceResult> {
  if (options.configs.length === 0) throw new InputError('--configs: give at least one config file');
  const configs = await Promise.all(
    options.configs.map(async (file) => ({ file, config: await loadTrainConfig(file) })),
  );
  const domain = configs[0].config.domain;
  if (configs.some((c) => c.config.domain !== domain))
    throw new InputError('--configs: the configs name different domains; reproduce one domain at a time');
  const requests = PROTOCOLS.map((protocol) => ({
    protocol,
    split: protocol === 'seed' ? defaultSplit(protocol) : options.split,
  }));

  const runs: ReproduceResult['runs'] = [];
  for (const { file, config } of configs) {
    const run = options.embeddings ? `${config.name}-${modelSlug(options.embeddings)}` : config.name;
    const trained = await trainUnlessFinished(options, file, config, run);
    runs.push({
      config: file,
      run,
      trained,
      reports: await evaluateRun(options.workdir, run, 'best', requests, options.engine),
    });
  }

  const dataset = await loadDataset(options.workdir, domain);
  const embeddings = options.embeddings ?? configs[0].config.embeddings.model;
  const zeroShot = await evaluateZeroShot(
    options.workdir,
    dataset,
    embeddings,
    configs[0].config.sceneView,
    requests,
    options.engine,
  );
  const data = describeData(dataset, embeddings);
  return {
    data,
    runs,
    zeroShot,
    reference: REFERENCE,
    lines: report(
      data.label,
      runs,
      zeroShot,
      configs.map((c) => c.config),
    ),
  };
}

/** Train the run unless its last checkpoint says it is done (all epochs, or stopped early); true if it trained. */
async function trainUnlessFinished(
  options: ReproduceOptions,
  file: string,
  config: TrainConfig,
  run: string,
): Promise<boolean> {
  const state = await readCheckpointState<TrainConfig>(workdirPaths(options.workdir).run(run), 'last');
  const finished =
    state &&
    (state.epoch >= state.config.epochs ||
      (state.config.patience > 0 && state.epochsWithoutGain >= state.config.patience));
  if (finished) {
    log(
      `reproduce: run '${run}' is finished (${state.epoch} epochs, best ${state.best.metric.toFixed(4)} at epoch ${state.best.epoch}): reusing it`,
    );
    return false;
  }
  log(`reproduce: ${state ? 'resuming' : 'training'} run '${run}' from ${file}`);
  await trainRun({
    workdir: options.workdir,
    config: file,
    run,
    resume: Boolean(state),
    embeddings: options.embeddings,
    backend: options.backend,
  });
  return true;
}

function describeData(dataset: Dataset, embeddings: string): ReproduceResult['data'] {
  const label =
    dataset.source === 'stl'
      ? `STL-${dataset.domain} (real data), image embeddings '${embeddings}'`
      : `SYNTHETIC data (${dataset.domain}-shaped), embeddings '${embeddings}': not STL results`;
  return { source: dataset.source, domain: dataset.domain, embeddings, label };
}

function report(
  dataLabel: string,
  runs: ReproduceResult['runs'],
  zeroShot: EvalReport[],
  configs: TrainConfig[],
): string[] {
  const of = (reports: EvalReport[], protocol: Protocol) => reports.find((r) => r.protocol === protocol)!;
  const lines = [`data: ${dataLabel}`, ''];

  const seedRows: TableRow[] = [];
  runs.forEach((run, i) => {
    const reference = REFERENCE.find((r) => r.config === configs[i].name);
    if (reference)
      seedRows.push({
        label: `reference ${reference.config} (STL-Fashion, published)`,
        metrics: referenceMetrics(reference),
      });
    seedRows.push({
      label: `ours ${run.run}`,
      metrics: of(run.reports, 'seed').metrics,
      note: reportNote(of(run.reports, 'seed')),
    });
  });
  seedRows.push({
    label: 'zero-shot (raw embeddings)',
    metrics: of(zeroShot, 'seed').metrics,
    note: reportNote(of(zeroShot, 'seed')),
  });
  const seedReport = of(zeroShot, 'seed');
  lines.push(
    `seed protocol (the reference's: its 90/10 pair split, ${seedReport.pairs.evaluated} val pairs scored n×n; leaks scenes, counts a scene's other products as negatives)`,
    ...formatTable(seedRows),
    '',
  );
  for (const protocol of ['catalog', 'category'] as const) {
    const z = of(zeroShot, protocol);
    const what =
      protocol === 'catalog'
        ? `every one of ${z.metrics.candidates} catalog products ranked, the scene's other products filtered`
        : "the true product ranked among its own category's products (AUC vs same-category negatives)";
    lines.push(
      `${protocol} protocol (scene-disjoint split, ${z.split.part} part, ${z.pairs.evaluated} pairs; ${what})`,
      ...formatTable([
        ...runs.map((run) => ({
          label: `ours ${run.run}`,
          metrics: of(run.reports, protocol).metrics,
          note: reportNote(of(run.reports, protocol)),
        })),
        { label: 'zero-shot (raw embeddings)', metrics: z.metrics },
      ]),
      '',
    );
  }
  return lines;
}
