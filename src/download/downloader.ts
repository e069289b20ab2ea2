// The download run: reconcile, then fetch what is left with a keep-alive pool, bounded and adaptive concurrency,
// retries, a manifest line per outcome and a progress line; stop cleanly when asked.
import { setMaxListeners } from 'node:events';
import { mkdir } from 'node:fs/promises';
import pLimit, { type LimitFunction } from 'p-limit';
import { Agent } from 'undici';
import { cleanTempFiles } from '../util/atomic.js';
import { Progress } from '../util/progress.js';
import { log } from '../util/log.js';
import { workdirPaths, type WorkdirPaths } from '../data/workdir.js';
import { Aimd } from './aimd.js';
import { fetchImageOnce, type AttemptContext } from './fetch-image.js';
import { IMAGE_KINDS } from '../data/types.js';
import type { Shard } from '../data/shard.js';
import { ManifestWriter, readManifest, type ImageStatus, type ManifestRecord } from './manifest.js';
import { reconcile, type Plan } from './reconcile.js';
import { ImageSaver } from './save-image.js';
import { retryDelay, sleep, type BackoffPolicy } from '../util/retry.js';
import { imageUrl } from '../data/image-host.js';
import type { ImageTarget } from './targets.js';
import type { ValidationMode } from './validate.js';
import { forEachBounded } from '../util/bounded.js';
import { lockTargets } from './locks.js';

export interface ImageDownloadOptions {
  workdir: string;
  baseUrl: string;
  /** Most requests in flight; AIMD moves below it while the host throttles. */
  concurrency: number;
  /** Connect, headers and body-idle timeout, ms; a whole attempt gets at most 4× this. */
  timeoutMs: number;
  /** Retries after the first attempt, for transient failures. */
  retries: number;
  backoff: BackoffPolicy;
  /** Size cap of one image, bytes. */
  maxBytes: number;
  /** Decode every image (full, the default) or check its structure only (fast). */
  validation?: ValidationMode;
  retryFailed: boolean;
  verifyExisting: boolean;
  /** After a stop request, how long in-flight requests may finish before they are cut, ms. */
  graceMs: number;
  /** The shard of N the targets were selected from: the shards of one N run side by side (see lockTargets). */
  shard?: Shard;
  /** Aborting it asks for a graceful stop (SIGINT/SIGTERM). */
  stop?: AbortSignal;
  /** The plan line and a progress line on stderr (default); false for neither (tests). */
  progress?: boolean;
}

export type StatusCounts = Record<ImageStatus, number>;

export interface DownloadSummary {
  selected: number;
  /** Settled by earlier runs and not asked again, by status. */
  settled: StatusCounts;
  adopted: number;
  removedInvalid: number;
  tempFilesRemoved: number;
  tornManifestBytes: number;
  /** Asked for in this run. */
  todo: number;
  /** Outcomes recorded in this run. */
  results: StatusCounts;
  /** Of this run's failures, those the next run asks again for without --retry-failed (transient errors). */
  retryable: number;
  /** Of `todo`, not settled because the run stopped. */
  pending: number;
  requests: number;
  retries: number;
  bytes: number;
  seconds: number;
  imagesPerSec: number;
  mbPerSec: number;
  concurrency: { max: number; min: number; final: number };
  /** The most frequent reasons among this run's non-ok outcomes. */
  topReasons: { reason: string; count: number }[];
  stopped: boolean;
  /** Every selected image after this run, by status (pending: not yet settled). */
  state: StatusCounts & { pending: number };
}

/**
 * Images in progress per request allowed at the host: one at the host, two received and in or waiting for their
 * checks and writes, so that the host stays busy while the checks catch up. Bodies in memory: at most this ×
 * concurrency × the size cap; images fetched again after a kill: as many.
 */
export const IN_PROGRESS_PER_REQUEST = 3;

const emptyCounts = (): StatusCounts => ({ ok: 0, missing: 0, invalid: 0, failed: 0 });

/** Fetch `targets` into the workdir's images/; no two runs at once that may fetch a same image (see lockTargets). */
export async function downloadImages(targets: ImageTarget[], options: ImageDownloadOptions): Promise<DownloadSummary> {
  const lock = await lockTargets(workdirPaths(options.workdir).imagesDir, targets, options.shard);
  try {
    return await downloadLocked(targets, options);
  } finally {
    await lock.release();
  }
}

/** downloadImages's work, with the selection's lock held. */
async function downloadLocked(targets: ImageTarget[], options: ImageDownloadOptions): Promise<DownloadSummary> {
  const started = performance.now();
  const paths = workdirPaths(options.workdir);
  const resumed = await resume(targets, paths, options);
  const { plan, writer } = resumed;
  if (options.progress !== false) log(describePlan(plan));

  const dispatcher = new Agent({
    connections: options.concurrency,
    keepAliveTimeout: 30_000,
    connectTimeout: options.timeoutMs,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
  });
  const stop = new StopControl(options.graceMs, options.concurrency, options.stop);
  // At most `concurrency` requests at the host (fewer while it throttles: AIMD).
  const hostSlots = pLimit(options.concurrency);
  const aimd = new Aimd(hostSlots, options.concurrency);
  const progress =
    options.progress === false ? undefined : new Progress('download', plan.todo.length, { unit: 'images' });
  const run: FetchRun = {
    options,
    paths,
    attempt: {
      dispatcher,
      maxBytes: options.maxBytes,
      validation: options.validation ?? 'full',
      saver: ImageSaver.start(),
      deadlineMs: 4 * options.timeoutMs,
      hardStop: stop.hardStop,
    },
    hostSlots,
    aimd,
    tally: new Tally(writer, aimd, progress),
    stopping: stop.stopping,
  };

  let fatal: unknown;
  await forEachBounded(plan.todo, IN_PROGRESS_PER_REQUEST * options.concurrency, stop.stopping, (target) =>
    fetchWithRetries(target, run).catch((err) => {
      // A disk failure (RunError) or a bug: stop everything, report it after the manifest is flushed.
      fatal ??= err;
      stop.abortNow();
    }),
  );

  stop.dispose();
  // A manifest that cannot be written is reported like any fatal error, once the workers and sockets (which keep
  // the process alive) are closed too.
  await writer.close().catch((err) => (fatal ??= err));
  await run.attempt.saver.close();
  await (stop.stopping.aborted ? dispatcher.destroy() : dispatcher.close());
  progress?.finish(run.tally.progressText());
  if (fatal) throw fatal;
  const seconds = (performance.now() - started) / 1000;
  return summarise(targets.length, resumed, run, seconds, stop.stopping.aborted);
}

/** What a run takes over from earlier ones, and the manifest it appends its outcomes to. */
interface Resumed {
  plan: Plan;
  writer: ManifestWriter;
  tempFilesRemoved: number;
  tornManifestBytes: number;
}

/** Clean stale temp files, open the manifest for appending and reconcile the targets with it and the disk. */
async function resume(targets: ImageTarget[], paths: WorkdirPaths, options: ImageDownloadOptions): Promise<Resumed> {
  let tempFilesRemoved = 0;
  for (const kind of IMAGE_KINDS) {
    await mkdir(paths.images(kind), { recursive: true });
    tempFilesRemoved += await cleanTempFiles(paths.images(kind));
  }
  const { latest, end, tornBytes } = await readManifest(paths.imageManifest);
  const writer = await ManifestWriter.open(paths.imageManifest, { end, tornBytes });
  const plan = await reconcile(targets, latest, { ...options, writer }).catch(async (err) => {
    await writer.close();
    throw err;
  });
  latest.clear();
  return { plan, writer, tempFilesRemoved, tornManifestBytes: tornBytes };
}

/**
 * A run's two stops. Asked for a graceful one (`stopping`): schedule nothing new, wake sleeping retries, give
 * in-flight requests `graceMs`, then cut them (`hardStop`).
 */
class StopControl {
  private readonly stoppingController = new AbortController();
  private readonly hardStopController = new AbortController();
  private graceTimer: NodeJS.Timeout | undefined;
  readonly stopping = this.stoppingController.signal;
  readonly hardStop = this.hardStopController.signal;

  /** `asked`: aborting it asks for the graceful stop (SIGINT/SIGTERM); it may have been already. */
  constructor(
    private readonly graceMs: number,
    concurrency: number,
    private readonly asked: AbortSignal | undefined,
  ) {
    // By design one listener per attempt in flight on hardStop, and one per target in progress (its retry's wait)
    // on stopping: not the leak Node warns of past 10.
    setMaxListeners(concurrency + 8, this.hardStop);
    setMaxListeners(IN_PROGRESS_PER_REQUEST * concurrency + 8, this.stopping);
    if (asked?.aborted) this.requestStop();
    asked?.addEventListener('abort', this.requestStop, { once: true });
  }

  /** The graceful stop: nothing new, in-flight requests cut after `graceMs`. */
  readonly requestStop = (): void => {
    if (this.stopping.aborted) return;
    this.stoppingController.abort();
    this.graceTimer = setTimeout(() => this.hardStopController.abort(), this.graceMs);
  };

  /** Stop at once, cutting requests in flight. */
  abortNow(): void {
    this.requestStop();
    this.hardStopController.abort();
  }

  /** Drop the grace timer and the listener on the asking signal. */
  dispose(): void {
    clearTimeout(this.graceTimer);
    this.asked?.removeEventListener('abort', this.requestStop);
  }
}

/** What the fetches of one run share. */
interface FetchRun {
  options: ImageDownloadOptions;
  paths: WorkdirPaths;
  /** The attempt context but for its slot at the host, which each target takes with its own AIMD stamp. */
  attempt: Omit<AttemptContext, 'hostSlot'>;
  hostSlots: LimitFunction;
  aimd: Aimd;
  tally: Tally;
  /** Aborted on a graceful stop: no new request, no retry. */
  stopping: AbortSignal;
}

/** Attempts for one image until it settles, runs out of retries, or the run stops (then: no record). */
async function fetchWithRetries(target: ImageTarget, run: FetchRun): Promise<void> {
  const { options, aimd, tally, stopping } = run;
  const url = imageUrl(options.baseUrl, target.sig);
  const dest = run.paths.imageFile(target.kind, target.sig);
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  let epoch = 0; // AIMD's stamp, taken as a request gets its slot at the host
  const context: AttemptContext = {
    ...run.attempt,
    hostSlot: (request) =>
      run.hostSlots(() => {
        if (stopping.aborted) return undefined;
        tally.requests++;
        epoch = aimd.started();
        return request();
      }),
  };
  for (let attempts = 1; ; attempts++) {
    const outcome = await fetchImageOnce(url, dest, context);
    if (outcome.type === 'aborted') return;
    if (outcome.type === 'ok') {
      aimd.succeeded();
      return tally.record(target, {
        status: 'ok',
        http: outcome.http,
        attempts,
        bytes: outcome.bytes,
        ms: ms(),
        format: outcome.format,
      });
    }
    if (outcome.type === 'final') {
      aimd.succeeded(); // the host answered without throttling
      const { status, reason, http, permanent } = outcome;
      return tally.record(target, { status, http, attempts, bytes: 0, ms: ms(), reason, permanent });
    }
    if (outcome.throttled) aimd.throttled(epoch);
    if (attempts > options.retries) {
      const reason = `${outcome.reason} (after ${attempts} attempts)`;
      return tally.record(target, {
        status: 'failed',
        http: outcome.http,
        attempts,
        bytes: 0,
        ms: ms(),
        reason,
        permanent: false,
      });
    }
    if (stopping.aborted) return;
    tally.retries++;
    if (!(await sleep(retryDelay(attempts, outcome.retryAfterMs, options.backoff), stopping))) return;
  }
}

/** The run's summary: what it took over, what it fetched, and the state of the selection after it. */
function summarise(
  selected: number,
  resumed: Resumed,
  run: FetchRun,
  seconds: number,
  stopped: boolean,
): DownloadSummary {
  const { plan } = resumed;
  const { tally, aimd } = run;
  const fetchSeconds = tally.seconds();
  const { results, bytes } = tally;
  const pending = plan.todo.length - (results.ok + results.missing + results.invalid + results.failed);
  return {
    selected,
    settled: plan.settled,
    adopted: plan.adopted,
    removedInvalid: plan.removedInvalid,
    tempFilesRemoved: resumed.tempFilesRemoved,
    tornManifestBytes: resumed.tornManifestBytes,
    todo: plan.todo.length,
    results,
    retryable: tally.retryable,
    pending,
    requests: tally.requests,
    retries: tally.retries,
    bytes,
    seconds,
    imagesPerSec: results.ok / fetchSeconds,
    mbPerSec: bytes / 1e6 / fetchSeconds,
    concurrency: { max: run.options.concurrency, min: aimd.min, final: aimd.current },
    topReasons: [...tally.reasons]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([reason, count]) => ({ reason, count })),
    stopped,
    state: {
      ok: plan.settled.ok + plan.adopted + results.ok,
      missing: plan.settled.missing + results.missing,
      invalid: plan.settled.invalid + results.invalid,
      failed: plan.settled.failed + results.failed,
      pending,
    },
  };
}

/** The outcomes of the run so far, each also a manifest line and a tick of the progress line. */
class Tally {
  readonly results = emptyCounts();
  /** Failure reasons, by how often they came. */
  readonly reasons = new Map<string, number>();
  /** Failures a later run may retry (not permanent). */
  retryable = 0;
  requests = 0;
  retries = 0;
  bytes = 0;
  private readonly started = performance.now();

  constructor(
    private readonly writer: ManifestWriter,
    private readonly aimd: Aimd,
    private readonly progress: Progress | undefined,
  ) {}

  record(target: ImageTarget, fields: Omit<ManifestRecord, 'sig' | 'kind' | 'at'>): void {
    this.writer.append({ sig: target.sig, kind: target.kind, ...fields, at: new Date().toISOString() });
    this.results[fields.status]++;
    this.bytes += fields.bytes;
    if (fields.status !== 'ok' && !fields.permanent) this.retryable++;
    if (fields.status !== 'ok' && fields.reason)
      this.reasons.set(fields.reason, (this.reasons.get(fields.reason) ?? 0) + 1);
    this.progress?.tick(1, this.progressText());
  }

  /** Seconds since fetching began. */
  seconds(): number {
    return Math.max((performance.now() - this.started) / 1000, 1e-9);
  }

  progressText(): string {
    const { ok, missing, invalid, failed } = this.results;
    const mbps = this.bytes / 1e6 / this.seconds();
    return `ok ${ok} missing ${missing} invalid ${invalid} failed ${failed}  ${mbps.toFixed(1)} MB/s  concurrency ${this.aimd.current}`;
  }
}

function describePlan(plan: Plan): string {
  const { ok, missing, invalid, failed } = plan.settled;
  const earlier = missing + invalid + failed;
  return (
    `download: ${plan.todo.length} to fetch; already ok ${ok}` +
    (earlier
      ? `, settled as missing ${missing} / invalid ${invalid} / failed ${failed} (--retry-failed asks again)`
      : '') +
    (plan.adopted ? `, ${plan.adopted} files on disk adopted` : '') +
    (plan.removedInvalid ? `, ${plan.removedInvalid} invalid files on disk removed` : '')
  );
}
