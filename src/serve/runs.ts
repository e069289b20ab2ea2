// The runs of a workdir as the dashboard and `GET /api/runs` show them: config summary, status, best epoch,
// per-epoch curves from metrics.jsonl, and the eval reports. Read fresh on every request, so a training that is
// still running shows its latest epoch.
import { join } from 'node:path';
import { checkpointDir, parseCheckpointState, type CheckpointName, type CheckpointState } from '../model/checkpoint.js';
import { trainConfigSchema, type TrainConfig } from '../train/config.js';
import { readMetrics } from '../train/metrics-log.js';
import { isFinished } from '../train/resume.js';
import type { RunRecord } from '../train/run-record.js';
import { listRunNames, RUN_NAME, runPaths, workdirPaths } from '../data/workdir.js';
import { readEvalReports } from '../eval/report-file.js';
import { isDirectory, modifiedAt } from '../util/fs.js';
import { isLocked } from '../util/lock.js';
import { log } from '../util/log.js';
import { readJsonIfExists } from '../util/json.js';
import { issueLines, parseWith } from '../util/schema.js';

/** Step records kept for the loss curve (evenly thinned beyond this). */
const MAX_STEP_POINTS = 1500;

export interface RunSummary {
  name: string;
  /** `damaged`: its last checkpoint's state.json does not read (the server log says why). */
  status: 'finished' | 'running' | 'stopped' | 'not started' | 'damaged';
  /** Epochs completed, and out of how many. */
  epoch: number;
  epochs: number | null;
  best: { epoch: number; metric: number } | null;
  selection: string | null;
  config: {
    arch: string;
    embeddings: string;
    sceneView: string;
    split: string;
    hidden: number;
    out: number;
    batchSize: number;
    lr: number;
  } | null;
  /**
   * The catalog protocol's R@10 from the eval report of the best checkpoint as it is now (test part, else val), for
   * picking the default run; null without one.
   */
  catalogRecall10: number | null;
  /** The split of the scenes that report ranks: the dashboard says which number it shows. */
  catalogSplit: 'test' | 'val' | null;
  /** That report counts scenes the run trained on (a seed-split run's), or may (a run trained on other data): its
   * R@10 may be flattered. */
  catalogLeaks: boolean;
  updatedAt: string | null;
}

export interface RunDetail extends RunSummary {
  /** One record per epoch: losses, the selection metric and the validation metrics. */
  history: Record<string, unknown>[];
  /** Step records (thinned): loss and its parts, learning rate, temperature. */
  steps: Record<string, unknown>[];
  /** The zero-shot record written before training, if any. */
  zeroShot: Record<string, unknown> | null;
  /** Eval reports by file name (e.g. catalog-test). */
  reports: Record<string, unknown>;
}

/** Each problem with a run's files is logged once, not at every poll of the dashboard. */
const warned = new Set<string>();
function warnOnce(message: string): void {
  if (warned.has(message)) return;
  warned.add(message);
  log(`serve: ${message}; left out`);
}

/**
 * A checkpoint's state: null when there is none, 'damaged' when it does not read (said once). Not
 * readCheckpointState: that first finishes a killed trainer's folder swap, a write a dashboard must not make.
 */
async function readState(
  runDir: string,
  which: CheckpointName,
): Promise<CheckpointState<TrainConfig> | null | 'damaged'> {
  const file = join(checkpointDir(runDir, which), 'state.json');
  try {
    const document = await readJsonIfExists(file); // none yet, or between a trainer's two renames: null
    return document === undefined ? null : parseCheckpointState(document, file, trainConfigSchema);
  } catch (err) {
    warnOnce((err as Error).message);
    return 'damaged';
  }
}

/** The config a run was started with (runs/<name>/config.json), or null; a damaged one is said once. */
async function readStartConfig(runDir: string): Promise<TrainConfig | null> {
  const file = runPaths(runDir).config;
  let saved: unknown;
  try {
    saved = await readJsonIfExists(file);
  } catch (err) {
    warnOnce((err as Error).message);
    return null;
  }
  if (saved === undefined) return null;
  const { value, issues } = parseWith(trainConfigSchema, (saved as Partial<RunRecord<unknown>> | null)?.config);
  if (issues) warnOnce(issueLines(`${file}: config`, issues));
  return value ?? null;
}

function recall10(report: unknown): number | null {
  const value = (report as { metrics?: { recall?: Record<string, number> } } | null)?.metrics?.recall?.['10'];
  return typeof value === 'number' ? value : null;
}

async function describe(workdir: string, name: string): Promise<{ summary: RunSummary; detail: RunDetail }> {
  const dir = workdirPaths(workdir).run(name);
  const read = await readState(dir, 'last');
  // Best's state: the checkpoint serve takes, and without a readable last how far the run got.
  const best = await readState(dir, 'best');
  const state = read === 'damaged' ? null : read;
  const shown = state ?? (best === 'damaged' ? null : best);
  const config = shown?.config ?? (await readStartConfig(dir));
  const metricsFile = runPaths(dir).metrics;
  const [records, mtime] = await Promise.all([readMetrics(metricsFile), modifiedAt(metricsFile)]);
  // A damaged report is left out (the dashboard and the default run go by the others), and said once.
  const reports = Object.fromEntries(await readEvalReports(dir, (err) => warnOnce(err.message)));
  const epochRecords = records.filter((r) => r.type === 'epoch');
  const epoch = shown?.epoch ?? 0;
  const finished = state !== null && config !== null && isFinished({ ...state, config });
  let status: RunSummary['status'] = read === 'damaged' ? 'damaged' : shown ? 'stopped' : 'not started';
  if (await isLocked(dir)) status = 'running'; // a trainer holds the run's lock
  if (finished) status = 'finished';
  // Only a report of the checkpoint serve takes (best, at its epoch) speaks for the run: not an earlier best's.
  const bestEpoch = best === null || best === 'damaged' ? undefined : best.epoch;
  const ofBest = (name: string) => {
    const report = reports[name];
    return report?.checkpoint?.which === 'best' && report.checkpoint.epoch === bestEpoch ? report : undefined;
  };
  const catalogSplit = (['test', 'val'] as const).find((split) => ofBest(`catalog-${split}`)) ?? null;
  const catalog = catalogSplit === null ? undefined : ofBest(`catalog-${catalogSplit}`);
  const catalogRecall10 = recall10(catalog);
  const stepRecords = records.filter((r) => r.type === 'step');
  const stride = Math.max(1, Math.ceil(stepRecords.length / MAX_STEP_POINTS));
  const summary: RunSummary = {
    name,
    status,
    epoch,
    epochs: config?.epochs ?? null,
    best: shown?.best ?? null,
    selection: config ? `${config.selection.protocol} ${config.selection.metric}` : null,
    config: config
      ? {
          arch: config.model.arch,
          embeddings: shown?.embeddings.model ?? config.embeddings.model,
          sceneView: config.sceneView,
          split: config.split,
          hidden: config.model.hidden,
          out: config.model.out,
          batchSize: config.batchSize,
          lr: config.optimizer.lr,
        }
      : null,
    catalogRecall10,
    catalogSplit: catalogRecall10 === null ? null : catalogSplit,
    catalogLeaks: leaks(catalog),
    updatedAt: mtime === undefined ? null : new Date(mtime).toISOString(),
  };
  return {
    summary,
    detail: {
      ...summary,
      history: epochRecords,
      steps: stepRecords.filter((_, i) => i % stride === 0 || i === stepRecords.length - 1),
      zeroShot: records.find((r) => r.type === 'zero-shot') ?? null,
      reports,
    },
  };
}

export async function listRuns(workdir: string): Promise<RunSummary[]> {
  const names = await listRunNames(workdir);
  return Promise.all(names.map(async (name) => (await describe(workdir, name)).summary));
}

/** One run's detail, or null when the workdir has no run of that name. */
export async function readRun(workdir: string, name: string): Promise<RunDetail | null> {
  if (!RUN_NAME.test(name) || !(await isDirectory(workdirPaths(workdir).run(name)))) return null;
  return (await describe(workdir, name)).detail;
}

/** Does a catalog report count scenes its run trained on, or can it not tell (the run trained on other data)? */
function leaks(report: unknown): boolean {
  const r = report as { trainSceneOverlap?: number | null; trainedOnOtherData?: true } | null;
  return r?.trainedOnOtherData === true || (r?.trainSceneOverlap ?? 0) > 0;
}

/**
 * The run `ctl serve` picks by default: the best catalog R@10 of the reports on unseen scenes (of any report when
 * none is), else the most recently updated run.
 */
export function pickDefaultRun(runs: RunSummary[]): RunSummary | null {
  const trained = runs.filter((r) => r.epoch > 0);
  const scored = trained.filter((r) => r.catalogRecall10 !== null);
  // A report on scenes the run trained on is only a fallback: it would beat every honest one.
  const honest = scored.filter((r) => !r.catalogLeaks);
  const pool = honest.length > 0 ? honest : scored;
  if (pool.length > 0) return pool.reduce((a, b) => (b.catalogRecall10! > a.catalogRecall10! ? b : a));
  if (trained.length === 0) return null;
  return trained.reduce((a, b) => ((b.updatedAt ?? '') > (a.updatedAt ?? '') ? b : a));
}
