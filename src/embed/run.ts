// `ctl embed` as a function (the command and `ctl demo` call it): resolve the model or service, plan the views,
// run the pipeline, and sum up.
import { loadDataset } from '../data/stl/dataset-io.js';
import type { Shard } from '../data/shard.js';
import type { Domain, ImageKind } from '../data/types.js';
import { lockStoreWriter } from '../data/store/writers.js';
import { runningDownload } from '../download/locks.js';
import { heldBy, type Lock } from '../util/lock.js';
import { Progress } from '../util/progress.js';
import { workdirPaths, type EmbeddingView, type SceneView } from '../data/workdir.js';
import type { Encoder, Provider } from './encoder.js';
import type { HideMode } from './hide.js';
import { httpEncoder, type HttpEncoderOptions } from './http-encoder.js';
import { planJobs } from './jobs.js';
import type { Device } from './device.js';
import { loadLocalEncoder } from './local-encoder.js';
import type { Dtype } from './dtype.js';
import { checkModelFiles, resolveModel } from './model-source.js';
import { planViews, runView, type ViewResult } from './pipeline.js';

export interface EmbedOptions {
  workdir: string;
  domain: Domain;
  /** Hub id, local folder, or a generated preset (tiny, small, vit-b16). With the http provider: the id the store records. */
  model: string;
  revision?: string;
  offline: boolean;
  provider: Provider;
  device: Device;
  dtype: Dtype;
  threads?: number;
  batch: number;
  prefetch: number;
  commitEvery: number;
  kind: ImageKind | 'all';
  sceneView: SceneView;
  hide: HideMode;
  shard?: Shard;
  limit?: number;
  http?: Omit<HttpEncoderOptions, 'model' | 'revision'>;
  /** Draw a progress bar / log lines on stderr. */
  progress: boolean;
  stop?: AbortSignal;
}

export interface EmbedSummary {
  model: string;
  revision?: string;
  provider: Provider;
  device: string;
  dtype?: Dtype;
  views: ViewResult[];
  embedded: number;
  failed: number;
  stopped: boolean;
  /** Loading the model (or nothing, for http). */
  loadSeconds: number;
  /** The whole run. */
  seconds: number;
  /** Rows embedded per second of pipeline time (decode included, model loading not). */
  imagesPerSecond: number;
  /**
   * The `ctl download` that was fetching images of the selection into this workdir when the run started (its
   * process, in words): the images missing then may be on disk by a re-run. Null when none was.
   */
  downloadRunning: string | null;
}

async function openEncoder(opts: EmbedOptions): Promise<Encoder> {
  if (opts.provider === 'http') return httpEncoder({ ...opts.http!, model: opts.model, revision: opts.revision });
  const modelsDir = workdirPaths(opts.workdir).modelsDir;
  const source = await resolveModel(opts.model, { modelsDir, revision: opts.revision });
  await checkModelFiles(source, opts.dtype, { modelsDir, offline: opts.offline });
  return loadLocalEncoder(source, {
    device: opts.device,
    dtype: opts.dtype,
    threads: opts.threads,
    batch: opts.batch,
    offline: opts.offline,
    modelsDir,
  }) as Promise<Encoder>;
}

export async function runEmbed(opts: EmbedOptions): Promise<EmbedSummary> {
  const started = performance.now();
  const dataset = await loadDataset(opts.workdir, opts.domain);
  const downloadRunning = await runningDownload(workdirPaths(opts.workdir).imagesDir, opts.kind);
  const encoder = await openEncoder(opts);
  const loaded = performance.now();
  const locks: Lock[] = [];
  try {
    const paths = workdirPaths(opts.workdir);
    const plans = planJobs(dataset, opts.workdir, opts, (view) => paths.embeddings(encoder.model, view));
    const writer = opts.shard ? `s${opts.shard.index}of${opts.shard.count}` : 'w';
    for (const plan of plans) locks.push(await lockStore(plan.dir, writer));
    const hideFor = (view: EmbeddingView) => (view === 'scenes-hide-product' ? { hide: opts.hide } : {});
    const planned = await planViews(plans, encoder, hideFor, opts.limit);
    const total = planned.reduce((n, p) => n + p.todo.length, 0);
    const progress = opts.progress ? new Progress('embed', total, { unit: 'images' }) : undefined;

    const views: ViewResult[] = [];
    for (const p of planned) {
      const result = await runView(p, encoder, hideFor(p.plan.view), { ...opts, writer, progress });
      views.push(result);
      if (result.stopped) break;
    }
    progress?.finish();

    const now = performance.now();
    const embedded = views.reduce((n, v) => n + v.embedded, 0);
    return {
      model: encoder.model,
      revision: encoder.revision,
      provider: opts.provider,
      device: encoder.device,
      dtype: opts.provider === 'local' ? opts.dtype : undefined,
      views,
      embedded,
      failed: views.reduce((n, v) => n + v.failed.length, 0),
      stopped: views.some((v) => v.stopped),
      loadSeconds: (loaded - started) / 1000,
      seconds: (now - started) / 1000,
      imagesPerSecond: embedded / Math.max((now - loaded) / 1000, 1e-9),
      downloadRunning,
    };
  } finally {
    for (const lock of locks) await lock.release();
    await encoder.dispose();
  }
}

/**
 * Hold the lock of a store for one writer (a shard, or the whole): the same `ctl embed` run twice at once would
 * embed every image twice. Shards of one store run side by side.
 */
export async function lockStore(dir: string, writer: string): Promise<Lock> {
  return lockStoreWriter(
    dir,
    writer,
    (holder, file) =>
      `${dir}: another ctl embed is writing this store${writer === 'w' ? '' : ' (the same shard)'}: ` +
      heldBy(holder, file),
  );
}
