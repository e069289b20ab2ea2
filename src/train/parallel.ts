// Data-parallel training on worker threads: one replica per worker, each with its own tfjs wasm backend (the
// wasm backend is single-threaded in Node), the batch split between them, gradients and embeddings exchanged
// through shared memory (exchange.ts). The training inputs are copied once into shared memory, so a step only
// sends row indices.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { RunError } from '../util/errors.js';
import type { BackendChoice } from '../model/backend.js';
import { TwoTower } from '../model/two-tower.js';
import { createSharedBuffers, type SharedBuffers } from './exchange.js';
import {
  rowsOf,
  type EngineMatrices,
  type EngineOptions,
  type MatrixName,
  type StepPlan,
  type StepResult,
  type TrainEngine,
} from './engine.js';
import type { OptimizerState } from './optimizer.js';
import { shardRange } from './replica.js';

/** What a worker starts from (structured-cloned; the SharedArrayBuffers are shared, not copied). */
export interface WorkerInit {
  rank: number;
  world: number;
  backend: BackendChoice;
  options: Omit<EngineOptions, 'params' | 'matrices' | 'optimizerState'>;
  optimizerState?: OptimizerState;
  buffers: SharedBuffers;
  matrices: Record<keyof EngineMatrices, SharedArrayBuffer>;
}

export type WorkerRequest =
  | { id: number; kind: 'step'; plan: StepPlan }
  | { id: number; kind: 'encode'; matrix: MatrixName; start: number; end: number; out: SharedArrayBuffer }
  | { id: number; kind: 'optimizer' };

export type WorkerReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/** The compiled worker script (under vitest this module is TypeScript source: use the build in dist/). */
function workerScript(): URL {
  const here = new URL('./worker.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const built = new URL(
    fileURLToPath(here).replace(/[\\/]src[\\/]train[\\/]worker\.js$/, '/dist/train/worker.js'),
    'file:',
  );
  if (existsSync(fileURLToPath(built))) return built;
  throw new RunError(`worker script ${fileURLToPath(here)} not found: run \`npm run build\``);
}

function shared<T extends Float32Array | Int32Array>(array: T): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(array.byteLength);
  new Uint8Array(buffer).set(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
  return buffer;
}

export class ParallelEngine implements TrainEngine {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private failure: Error | null = null;

  private constructor(
    private readonly workerThreads: Worker[],
    private readonly buffers: SharedBuffers,
    /** Rows of each matrix (the data itself lives in shared memory only). */
    private readonly rows: Record<MatrixName, number>,
    private readonly out: number,
  ) {
    for (const worker of workerThreads) {
      worker.on('message', (reply: WorkerReply) => this.settle(reply));
      worker.on('error', (err) => this.fail(new RunError(`training worker failed: ${err.message}`)));
      worker.on('exit', (code) => code !== 0 && this.fail(new RunError(`training worker exited with code ${code}`)));
    }
  }

  get workers(): number {
    return this.workerThreads.length;
  }

  static async create(
    options: EngineOptions & { workers: number; backend: BackendChoice; batchSize: number },
  ): Promise<ParallelEngine> {
    const { workers: world, backend, matrices, params, optimizerState, batchSize, ...rest } = options;
    const layout = new TwoTower(options.spec).layout;
    const buffers = createSharedBuffers(world, layout.size, batchSize, options.spec.out);
    new Float32Array(buffers.params).set(params);
    const sharedMatrices = Object.fromEntries(
      Object.entries(matrices).map(([k, v]) => [k, shared(v)]),
    ) as WorkerInit['matrices'];
    const script = workerScript();
    const threads: Worker[] = [];
    const ready: Promise<void>[] = [];
    for (let rank = 0; rank < world; rank++) {
      const [lo, hi] = shardRange(layout.size, world, rank);
      const init: WorkerInit = {
        rank,
        world,
        backend,
        options: rest,
        optimizerState: optimizerState && {
          t: optimizerState.t,
          m: optimizerState.m.slice(lo, hi),
          v: optimizerState.v.slice(lo, hi),
        },
        buffers,
        matrices: sharedMatrices,
      };
      const worker = new Worker(script, { workerData: init });
      threads.push(worker);
      ready.push(
        new Promise((resolve, reject) => {
          worker.once('message', (m: WorkerReply) =>
            m.ok ? resolve() : reject(new RunError(`training worker ${rank}: ${m.error}`)),
          );
          worker.once('error', reject);
        }),
      );
    }
    try {
      await Promise.all(ready);
    } catch (err) {
      await Promise.all(threads.map((t) => t.terminate()));
      throw err;
    }
    const dim = options.spec.inputDim;
    const rows = {
      trainScenes: rowsOf(matrices, 'trainScenes', dim),
      valScenes: rowsOf(matrices, 'valScenes', dim),
      products: rowsOf(matrices, 'products', dim),
    };
    return new ParallelEngine(threads, buffers, rows, options.spec.out);
  }

  private settle(reply: WorkerReply): void {
    const waiting = this.pending.get(reply.id);
    if (!waiting) return;
    if (reply.ok) waiting.resolve(reply.result);
    else this.fail(new RunError(reply.error));
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const { reject } of this.pending.values()) reject(err);
    this.pending.clear();
    // Survivors may be blocked at a barrier waiting for the failed one.
    for (const t of this.workerThreads) void t.terminate();
  }

  /** Send one request per worker (made by `make(rank)`), resolve with every worker's answer in rank order. */
  private async all<T>(make: (rank: number, id: number) => WorkerRequest): Promise<T[]> {
    if (this.failure) throw this.failure;
    return Promise.all(
      this.workerThreads.map(
        (worker, rank) =>
          new Promise<T>((resolve, reject) => {
            const id = this.nextId++;
            this.pending.set(id, {
              resolve: (v) => {
                this.pending.delete(id);
                resolve(v as T);
              },
              reject,
            });
            worker.postMessage(make(rank, id));
          }),
      ),
    );
  }

  async step(plan: StepPlan): Promise<StepResult> {
    const results = await this.all<StepResult>((_, id) => ({ id, kind: 'step', plan }));
    return results[0];
  }

  async encode(matrix: MatrixName): Promise<Float32Array> {
    const rows = this.rows[matrix];
    const out = new SharedArrayBuffer(rows * this.out * 4);
    await this.all((rank, id) => {
      const [start, end] = shardRange(rows, this.workers, rank);
      return { id, kind: 'encode', matrix, start, end, out };
    });
    return new Float32Array(out).slice();
  }

  async params(): Promise<Float32Array> {
    return new Float32Array(this.buffers.params).slice();
  }

  async optimizerState(): Promise<OptimizerState> {
    const slices = await this.all<OptimizerState>((_, id) => ({ id, kind: 'optimizer' }));
    const size = this.buffers.params.byteLength / 4;
    const m = new Float32Array(size);
    const v = new Float32Array(size);
    slices.forEach((s, rank) => {
      const [lo] = shardRange(size, this.workers, rank);
      m.set(s.m, lo);
      v.set(s.v, lo);
    });
    return { t: slices[0].t, m, v };
  }

  async dispose(): Promise<void> {
    this.failure ??= new RunError('training workers stopped');
    await Promise.all(this.workerThreads.map((t) => t.terminate()));
  }
}
