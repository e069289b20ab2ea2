// `ctl reproduce`: train (or reuse the finished runs of) each config, evaluate the runs and the zero-shot
// baseline, and print one report: our runs beside the reference's numbers under the reference's `seed` protocol,
// then everything under the honest `catalog` and `category` protocols. The report names the data it ran on; a
// synthetic dataset's numbers are labelled synthetic, never STL.
//
// No row is scored on scenes its model trained on. The seed protocol evaluates the seed split's val part and the
// honest protocols the scene split's, and each split's train part holds most of the other split's evaluated scenes.
// So each config trains twice: on the seed split for the seed row, and on the scene split for the catalog and
// category rows. The run on the config's own split keeps the config's name; its twin on the other split is named
// `<run>-<split>` (v1 and v2 name the seed split, so their twins are `v1-scene`, `v2-scene`) and is trained from the
// same config with `--set split=<split>`, which its config.json records.
import { datasetDigest, OTHER_DATA, trainedOnOtherData, type Dataset } from '../data/dataset.js';
import { loadDataset } from '../data/stl/dataset-io.js';
import { SPLIT_SCHEMES, type SplitScheme } from '../data/types.js';
import { checkRunName, workdirPaths } from '../data/workdir.js';
import type { EngineName } from '../eval/engines.js';
import { evaluateRun, evaluateZeroShot, type EvalReport, type EvalRequest } from '../eval/evaluate.js';
import type { EvalSplit, Protocol } from '../eval/protocols.js';
import { REFERENCE, referenceMetrics } from '../eval/reference.js';
import { formatTable, reportNote, type TableRow } from '../eval/table.js';
import type { TrainBackendChoice } from '../train/backend.js';
import { readCheckpointState } from '../model/checkpoint.js';
import {
  defaultRunName,
  loadTrainConfig,
  resolveConfig,
  trainConfigSchema,
  type TrainConfig,
} from '../train/config.js';
import { configChanges, isFinished } from '../train/resume.js';
import { trainRun } from '../train/run.js';
import { InputError } from '../util/errors.js';
import { log } from '../util/log.js';

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

/** One trained run and the protocols it was scored on. */
export interface ReproducedRun {
  config: string;
  run: string;
  /** The split it trained on: seed for the seed row, scene for the catalog and category rows. */
  split: SplitScheme;
  trained: boolean;
  reports: EvalReport[];
}

export interface ReproduceResult {
  /** `embeddings`: the models whose embeddings the configs trained on (v1's and v2's differ). */
  data: { source: Dataset['source']; domain: Dataset['domain']; embeddings: string[]; label: string };
  /** Per config, its seed-split run, then its scene-split run. */
  runs: ReproducedRun[];
  zeroShot: EvalReport[];
  reference: typeof REFERENCE;
  /** The printed report. */
  lines: string[];
}

/** Which split's runs are scored under which protocols. */
const PROTOCOLS_OF: Record<SplitScheme, Protocol[]> = { seed: ['seed'], scene: ['catalog', 'category'] };

export async function reproduce(options: ReproduceOptions): Promise<ReproduceResult> {
  if (options.configs.length === 0) throw new InputError('--configs: give at least one config file');
  const configs = await Promise.all(
    options.configs.map(async (file) => ({ file, config: await loadTrainConfig(file) })),
  );
  const domain = configs[0].config.domain;
  if (configs.some((c) => c.config.domain !== domain))
    throw new InputError('--configs: the configs name different domains; reproduce one domain at a time');
  const requestsOf = (split: SplitScheme): EvalRequest[] =>
    PROTOCOLS_OF[split].map((protocol) => ({ protocol, split: protocol === 'seed' ? 'val' : options.split }));

  const dataset = await loadDataset(options.workdir, domain);
  const digest = datasetDigest(dataset);
  // Every run's name is checked before the first one trains: a twin's `-scene` may be what makes a name too long.
  const plan = configs.flatMap(({ file, config }) => {
    const base = defaultRunName(config, options.embeddings);
    return SPLIT_SCHEMES.map((split) => {
      const run = split === config.split ? base : `${base}-${split}`;
      checkRunName(run, '', `${file}: its ${split}-split run`);
      return { file, split, run, set: split === config.split ? [] : [`split=${split}`] };
    });
  });
  const runs: ReproducedRun[] = [];
  for (const { file, split, run, set } of plan) {
    const trained = await trainUnlessFinished(options, digest, file, set, run);
    const reports = await evaluateRun(options.workdir, run, 'best', requestsOf(split), options.engine);
    runs.push({ config: file, run, split, trained, reports });
  }

  // The floor each config is measured against: cosine on the raw embeddings it trained on (v1's CLIP, v2's SigLIP).
  const inputs = new Map(
    configs.map(({ config }) => {
      const embeddings = options.embeddings ?? config.embeddings.model;
      return [`${embeddings} ${config.sceneView}`, { embeddings, sceneView: config.sceneView }];
    }),
  );
  const zeroShot: EvalReport[] = [];
  for (const { embeddings, sceneView } of inputs.values())
    zeroShot.push(
      ...(await evaluateZeroShot(
        options.workdir,
        dataset,
        embeddings,
        sceneView,
        [...requestsOf('seed'), ...requestsOf('scene')],
        options.engine,
      )),
    );
  const data = describeData(dataset, [...new Set([...inputs.values()].map((i) => i.embeddings))]);
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
  /** datasetDigest of the workdir's dataset. */
  digest: string,
  configFile: string,
  set: string[],
  run: string,
): Promise<boolean> {
  const dir = workdirPaths(options.workdir).run(run);
  const state = await readCheckpointState(dir, 'last', trainConfigSchema);
  const finished = state && isFinished(state);
  if (state && trainedOnOtherData(state.data.dataset, digest))
    throw new InputError(
      `run '${run}' was ${OTHER_DATA}: remove ${dir} to train it again on this data, or reproduce in another --workdir`,
    );
  if (finished) {
    // A finished run stands for this config only if it trained with it (an unfinished one is checked on resume).
    const { config } = await resolveConfig({ config: configFile, set, embeddings: options.embeddings });
    const changes = configChanges(state.config, config);
    if (changes.length > 0)
      throw new InputError(
        `run '${run}' was trained with another config (${changes.join('; ')}): remove ${dir} to train it again, or reproduce in another --workdir`,
      );
    log(
      `reproduce: run '${run}' is finished (${state.epoch} epochs, best ${state.best.metric.toFixed(4)} at epoch ${state.best.epoch}): reusing it`,
    );
    return false;
  }
  const flags = set.map((s) => ` --set ${s}`).join('');
  log(`reproduce: ${state ? 'resuming' : 'training'} run '${run}' from ${configFile}${flags}`);
  await trainRun({
    workdir: options.workdir,
    config: configFile,
    set,
    run,
    resume: Boolean(state),
    embeddings: options.embeddings,
    backend: options.backend,
  });
  return true;
}

function describeData(dataset: Dataset, embeddings: string[]): ReproduceResult['data'] {
  const models = embeddings.map((m) => `'${m}'`).join(' and ');
  const label =
    dataset.source === 'stl'
      ? `STL-${dataset.domain} (real data), image embeddings ${models}`
      : `SYNTHETIC data (${dataset.domain}-shaped), embeddings ${models}: not STL results`;
  return { source: dataset.source, domain: dataset.domain, embeddings, label };
}

function report(dataLabel: string, runs: ReproducedRun[], zeroShot: EvalReport[], configs: TrainConfig[]): string[] {
  const of = (reports: EvalReport[], protocol: Protocol) => reports.find((r) => r.protocol === protocol)!;
  const zeroShotRows = (protocol: Protocol): TableRow[] =>
    zeroShot
      .filter((r) => r.protocol === protocol)
      .map((r) => ({
        label: `zero-shot (raw '${r.data.embeddings}'${r.data.sceneView === 'full' ? '' : ` ${r.data.sceneView}`})`,
        metrics: r.metrics,
        note: reportNote(r),
      }));
  const ours = (split: SplitScheme, protocol: Protocol): TableRow[] =>
    runs
      .filter((run) => run.split === split)
      .map((run) => ({
        label: `ours ${run.run}`,
        metrics: of(run.reports, protocol).metrics,
        note: reportNote(of(run.reports, protocol)),
      }));
  const lines = [`data: ${dataLabel}`, ''];

  const seedRows: TableRow[] = [];
  ours('seed', 'seed').forEach((row, i) => {
    const reference = REFERENCE.find((r) => r.config === configs[i].name);
    if (reference)
      seedRows.push({
        label: `reference ${reference.config} (STL-Fashion, published)`,
        metrics: referenceMetrics(reference),
      });
    seedRows.push(row);
  });
  const seedZeroShot = of(zeroShot, 'seed');
  seedRows.push(...zeroShotRows('seed'));
  lines.push(
    `seed protocol (the reference's: its 90/10 pair split, ${seedZeroShot.pairs.evaluated} val pairs scored n×n; leaks scenes, counts a scene's other products as negatives; our runs trained on its train part)`,
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
      `${protocol} protocol (scene-disjoint split, ${z.split.part} part, ${z.pairs.evaluated} pairs; ${what}; our runs trained on its train part)`,
      ...formatTable([...ours('scene', protocol), ...zeroShotRows(protocol)]),
      '',
    );
  }
  return lines;
}
