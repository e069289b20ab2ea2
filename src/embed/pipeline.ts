// The embedding loop: for each view, skip rows already stored, prepare images ahead of the model (decode, hide,
// preprocess run concurrently while the previous batch is embedded), embed in batches, and commit a store shard
// every few batches. A killed run loses at most the uncommitted batches; a re-run continues from the store.
import { join } from 'node:path';
import { EmbeddingStore } from '../data/store/embeddings.js';
import { InputError, RunError } from '../util/errors.js';
import type { Progress } from '../util/progress.js';
import type { EmbeddingView } from '../data/workdir.js';
import type { Encoder, PreparedBase } from './encoder.js';
import { ImageProblem, type ImageJob, type ProblemReason } from './images.js';
import { COMMIT_SECONDS, MAX_CONSECUTIVE_SERVICE_FAILURES } from './pipeline-limits.js';

export interface ViewPlan {
  view: EmbeddingView;
  /** The store folder. */
  dir: string;
  /** Rows of this view (already limited to this process's shard). */
  jobs: ImageJob[];
}

export interface Failure {
  id: string;
  file: string;
  reason: ProblemReason;
  message: string;
}

export interface ViewResult {
  view: EmbeddingView;
  dir: string;
  /** Rows of the view in this shard. */
  selected: number;
  /** Of those, already in the store when the run started. */
  alreadyStored: number;
  embedded: number;
  failed: Failure[];
  /** hide-product rows where crop had to mask (the box covered the whole scene). */
  maskFallbacks: number;
  /** Rows in the store now. */
  stored: number;
  dim?: number;
  /** Stopped early by a signal. */
  stopped: boolean;
}

export interface PipelineOptions {
  batch: number;
  /** Batches prepared ahead of the model. */
  prefetch: number;
  /** Commit a shard after this many batches (or COMMIT_SECONDS, whichever comes first). */
  commitEvery: number;
  /** Store shard writer name (keeps `--shard` machines' files apart). */
  writer: string;
  progress?: Progress;
  /** Aborted (SIGINT/SIGTERM): commit what is embedded and stop after the current batch. */
  stop?: AbortSignal;
}

type Settled<P> = { ok: true; value: P } | { ok: false; error: unknown };

/** Prepared items in job order, `window` of them in flight ahead of the consumer. */
async function* prepareAhead<P>(
  jobs: ImageJob[],
  prepare: (job: ImageJob) => Promise<P>,
  window: number,
): AsyncGenerator<[ImageJob, Settled<P>]> {
  const inFlight: Promise<Settled<P>>[] = [];
  let next = 0;
  const fill = () => {
    while (next < jobs.length && inFlight.length < window)
      inFlight.push(
        prepare(jobs[next++]).then(
          (value) => ({ ok: true as const, value }),
          (error: unknown) => ({ ok: false as const, error }),
        ),
      );
  };
  fill();
  for (let i = 0; i < jobs.length; i++) {
    const settled = await inFlight.shift()!;
    fill();
    yield [jobs[i], settled];
  }
}

/** A store written with other settings (dtype, hide mode, provider) must not be extended with different vectors. */
function checkCompatible(store: EmbeddingStore, encoder: Encoder, hide: Record<string, unknown>): void {
  const want: Record<string, unknown> = { ...encoder.preprocessing, ...hide };
  const have = store.meta.preprocessing ?? {};
  // The provider first: an http run into a local store differs in dtype too, and the provider says why. The local
  // provider records none.
  for (const key of ['provider', 'dtype', 'hide', 'output']) {
    const show = (value: unknown) => JSON.stringify(value ?? (key === 'provider' ? 'local' : 'none'));
    if (JSON.stringify(have[key]) !== JSON.stringify(want[key]))
      throw new InputError(
        `${join(store.dir, 'meta.json')}: preprocessing.${key}: the store was written with ${show(have[key])}, ` +
          `this run uses ${show(want[key])} (use the same settings, another --workdir, or remove the store)`,
      );
  }
  for (const key of ['model', 'revision'] as const) {
    const theirs = store.meta[key];
    const ours = encoder[key];
    if (theirs !== undefined && ours !== undefined && theirs !== ours)
      throw new InputError(
        `${join(store.dir, 'meta.json')}: ${key}: the store holds ${JSON.stringify(theirs)}, this run uses ${JSON.stringify(ours)}`,
      );
  }
}

interface PlannedView {
  plan: ViewPlan;
  store: EmbeddingStore | null;
  todo: ImageJob[];
  alreadyStored: number;
}

/** Open the stores and work out what is left to do, before anything runs (so progress knows the total). */
export async function planViews(
  plans: ViewPlan[],
  encoder: Encoder,
  hideFor: (view: EmbeddingView) => Record<string, unknown>,
  limit?: number,
): Promise<PlannedView[]> {
  const planned: PlannedView[] = [];
  for (const plan of plans) {
    const store = await EmbeddingStore.openIfExists(plan.dir);
    if (store) checkCompatible(store, encoder, hideFor(plan.view));
    const left = store ? plan.jobs.filter((j) => !store.has(j.id)) : plan.jobs;
    planned.push({
      plan,
      store,
      todo: limit === undefined ? left : left.slice(0, limit),
      alreadyStored: plan.jobs.length - left.length,
    });
  }
  return planned;
}

/**
 * Rows embedded but not yet stored. They go to the store as one shard every `commitEvery` batches or COMMIT_SECONDS,
 * and when the run ends or stops; the store is created on the first commit, with the model's dim.
 */
class PendingRows {
  private ids: string[] = [];
  private rows: Float32Array[] = [];
  private batches = 0;
  private lastCommit = performance.now();

  constructor(
    private store: EmbeddingStore | null,
    private readonly create: (dim: number) => Promise<EmbeddingStore>,
    private readonly opts: Pick<PipelineOptions, 'commitEvery' | 'writer'>,
  ) {}

  add(id: string, row: Float32Array): void {
    this.ids.push(id);
    this.rows.push(row);
  }

  /** A batch is done: commit when enough batches or time have gone by since the last commit. */
  async batchDone(): Promise<{ committed: number; store: EmbeddingStore | null }> {
    this.batches++;
    const due = this.batches >= this.opts.commitEvery || (performance.now() - this.lastCommit) / 1000 >= COMMIT_SECONDS;
    return due ? this.commit() : { committed: 0, store: this.store };
  }

  /** Store what is pending as one shard. */
  async commit(): Promise<{ committed: number; store: EmbeddingStore | null }> {
    let committed = 0;
    if (this.ids.length > 0) {
      const dim = this.rows[0].length;
      const store = (this.store ??= await this.create(dim));
      if (store.dim !== dim)
        throw new InputError(`${store.dir}: the store holds ${store.dim}-d vectors, this model gives ${dim}-d`);
      // A store created since the plan may hold another writer's rows (a --shard run beside the whole): they stay.
      const fresh = this.ids.flatMap((id, i) => (store.has(id) ? [] : [i]));
      committed = fresh.length;
      const rows = new Float32Array(committed * dim);
      fresh.forEach((from, to) => rows.set(this.rows[from], to * dim));
      await store.append(
        fresh.map((i) => this.ids[i]),
        rows,
        this.opts.writer,
      );
      [this.ids, this.rows] = [[], []];
    }
    this.batches = 0;
    this.lastCommit = performance.now();
    return { committed, store: this.store };
  }
}

export async function runView<P extends PreparedBase>(
  planned: PlannedView,
  encoder: Encoder<P>,
  hide: Record<string, unknown>,
  opts: PipelineOptions,
): Promise<ViewResult> {
  const { plan } = planned;
  const result: ViewResult = {
    view: plan.view,
    dir: plan.dir,
    selected: plan.jobs.length,
    alreadyStored: planned.alreadyStored,
    embedded: 0,
    failed: [],
    maskFallbacks: 0,
    stored: planned.store?.size ?? 0,
    dim: planned.store?.dim,
    stopped: false,
  };
  const pending = new PendingRows(
    planned.store,
    async (dim) => {
      const store = await EmbeddingStore.openOrCreate(plan.dir, {
        model: encoder.model,
        revision: encoder.revision,
        location: encoder.location,
        dim,
        view: plan.view,
        preprocessing: { ...encoder.preprocessing, ...hide },
      });
      // Another process (a shard of another --dtype) may have created it since the plan.
      checkCompatible(store, encoder, hide);
      return store;
    },
    opts,
  );
  const counted = ({ committed, store }: { committed: number; store: EmbeddingStore | null }) => {
    result.embedded += committed;
    if (store) [result.stored, result.dim] = [store.size, store.dim];
  };
  const commit = async () => counted(await pending.commit());

  let consecutiveServiceFailures = 0;
  const fail = (job: ImageJob, problem: ImageProblem) => {
    result.failed.push({ id: job.id, file: job.file, reason: problem.reason, message: problem.message });
    const fromService = problem.reason === 'service' || problem.reason === 'refused';
    consecutiveServiceFailures = fromService ? consecutiveServiceFailures + 1 : 0;
  };

  const embedBatch = async (jobs: ImageJob[], items: P[]) => {
    if (items.length > 0) {
      const vectors = await encoder.embed(items, jobs);
      vectors.forEach((v, i) => {
        if (v instanceof ImageProblem) return fail(jobs[i], v);
        consecutiveServiceFailures = 0;
        pending.add(jobs[i].id, v);
      });
    }
    if (consecutiveServiceFailures >= MAX_CONSECUTIVE_SERVICE_FAILURES) {
      await commit();
      const last = result.failed[result.failed.length - 1];
      // Refusals (4xx) come back on every run: a wrong --api-url path or a missing key, not a passing outage.
      const advice = last.reason === 'refused' ? 'check --api-url and what the service expects' : 're-run to continue';
      throw new RunError(
        `the embedding service failed ${consecutiveServiceFailures} images in a row (last: ${last.message}); ` +
          `stored rows are kept: ${advice}`,
      );
    }
    counted(await pending.batchDone());
  };

  let batchJobs: ImageJob[] = [];
  let batchItems: P[] = [];
  let seen = 0;
  let ticked = 0;
  try {
    for await (const [job, settled] of prepareAhead(
      planned.todo,
      (j) => encoder.prepare(j),
      opts.batch * opts.prefetch,
    )) {
      seen++;
      if (settled.ok) {
        batchJobs.push(job);
        batchItems.push(settled.value);
        if (settled.value.fellBack) result.maskFallbacks++;
      } else if (settled.error instanceof ImageProblem) fail(job, settled.error);
      else throw settled.error;
      if (batchItems.length === opts.batch || seen === planned.todo.length) {
        await embedBatch(batchJobs, batchItems);
        batchJobs = [];
        batchItems = [];
        opts.progress?.tick(seen - ticked, `${plan.view}: failed ${result.failed.length}`);
        ticked = seen;
        if (opts.stop?.aborted) {
          result.stopped = true;
          break;
        }
      }
    }
    await commit();
  } catch (err) {
    // Keep what is done: the next run continues from here.
    if (!(err instanceof InputError)) await commit().catch(() => undefined);
    throw err;
  }
  return result;
}
