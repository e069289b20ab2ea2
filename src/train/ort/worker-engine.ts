// The ort engine on a worker thread of its own: what `ctl train` runs on the CPU. onnxruntime-node hands back a new
// ArrayBuffer copy of every output it fetches, ~38 MB a step at v2's size (the parameters and Adam's moments), and
// that external memory makes V8 collect the whole heap every other step. On the thread that holds the run's data
// (~90 MB of heap at full size) those collections slowed each step by a quarter; on a thread that holds only the
// engine they are cheap. This module is both sides: OrtWorkerEngine forwards each call to the worker, which hosts
// an OrtEngine (engine.ts) and answers one request at a time, in order. Under vitest, where this module is
// TypeScript source that a worker cannot load, the engine runs inline on the calling thread (worker-pool.ts).
import type { Transferable } from 'node:worker_threads';
import { serveRequests, WorkerPool, type Handler } from '../../util/worker-pool.js';
import type { MatrixName, StepPlan, StepResult, TrainEngine } from '../engine.js';
import type { OptimizerState } from '../optimizer.js';
import { OrtEngine, type OrtEngineOptions } from './engine.js';

type Request =
  | { kind: 'start'; options: OrtEngineOptions; state: Int32Array }
  | { kind: 'step'; plan: StepPlan }
  | { kind: 'encode'; matrix: MatrixName }
  | { kind: 'params' }
  | { kind: 'optimizerState' }
  | { kind: 'dispose' };

type Reply = StepResult | Float32Array | OptimizerState | null;

const WORKER_TAG = 'ctl-train-ort-engine';

/** How long the process's exit waits for the engine to finish the request it is answering (see create). */
const EXIT_WAIT_MS = 10_000;

/** The worker's state, in a shared Int32Array the start request brings: what the process's exit waits on. */
const IDLE = 0;
const BUSY = 1;
/** The process is exiting: the worker starts no other request. */
const CLOSED = 2;

/**
 * A handler that hosts one OrtEngine: started by the first request, released by the last. It holds the state BUSY
 * while it answers a request, and starts none once the state is CLOSED.
 */
function engineHost(): Handler<Request, Reply> {
  let engine: OrtEngine | null = null;
  let state: Int32Array<ArrayBufferLike> = new Int32Array(1); // the start request brings the shared one
  const started = (): OrtEngine => {
    if (!engine) throw new Error('the ort engine worker has no engine: it failed to start or was disposed');
    return engine;
  };
  const answer = async (request: Request): Promise<Reply> => {
    switch (request.kind) {
      case 'start':
        engine = await OrtEngine.create(request.options);
        return null;
      case 'step':
        return started().step(request.plan);
      case 'encode':
        return started().encode(request.matrix);
      case 'params':
        return started().params();
      case 'optimizerState':
        return started().optimizerState();
      case 'dispose':
        await engine?.dispose();
        engine = null;
        return null;
    }
  };
  return async (request) => {
    if (request.kind === 'start') state = request.state;
    if (Atomics.compareExchange(state, 0, IDLE, BUSY) === CLOSED) return new Promise<never>(() => {});
    try {
      return await answer(request);
    } finally {
      Atomics.store(state, 0, IDLE);
      Atomics.notify(state, 0);
    }
  };
}

/** The large arrays of a reply move back to the calling thread instead of being copied. */
function transferOf(reply: Reply): Transferable[] {
  // The engine's arrays are its own copies on ArrayBuffers (onnxruntime-node takes no SharedArrayBuffer).
  if (reply instanceof Float32Array) return [reply.buffer as ArrayBuffer];
  if (reply && 'm' in reply) return [reply.m.buffer as ArrayBuffer, reply.v.buffer as ArrayBuffer];
  return [];
}

serveRequests(WORKER_TAG, engineHost(), transferOf);

export class OrtWorkerEngine implements TrainEngine {
  readonly workers = 1;

  private constructor(
    private readonly pool: WorkerPool<Request, Reply>,
    private readonly waitForWorker: () => void,
  ) {}

  /**
   * An OrtEngine on its own thread. The worker holds its own copy of `options` (the matrices too: onnxruntime-node
   * takes no SharedArrayBuffer); what `transfer` lists moves to it instead (do not use it afterwards).
   * A process that exits (`ctl train` on SIGINT or SIGTERM) first waits for the worker to finish the request it is
   * answering: a worker ended inside an onnxruntime call aborts the whole process (exit 134, not 130 or 143).
   */
  static async create(options: OrtEngineOptions, transfer: Transferable[] = []): Promise<OrtWorkerEngine> {
    const pool = WorkerPool.start(import.meta.url, WORKER_TAG, engineHost(), 1);
    const state = new Int32Array(new SharedArrayBuffer(4));
    const waitForWorker = () => {
      const until = Date.now() + EXIT_WAIT_MS;
      while (Atomics.compareExchange(state, 0, IDLE, CLOSED) === BUSY && Date.now() < until)
        Atomics.wait(state, 0, BUSY, until - Date.now());
    };
    process.on('exit', waitForWorker);
    try {
      await pool.run({ kind: 'start', options, state }, transfer);
    } catch (err) {
      process.off('exit', waitForWorker);
      await pool.close();
      throw err;
    }
    return new OrtWorkerEngine(pool, waitForWorker);
  }

  async step(plan: StepPlan): Promise<StepResult> {
    return (await this.pool.run({ kind: 'step', plan })) as StepResult;
  }

  async encode(matrix: MatrixName): Promise<Float32Array> {
    return (await this.pool.run({ kind: 'encode', matrix })) as Float32Array;
  }

  async params(): Promise<Float32Array> {
    return (await this.pool.run({ kind: 'params' })) as Float32Array;
  }

  async optimizerState(): Promise<OptimizerState> {
    return (await this.pool.run({ kind: 'optimizerState' })) as OptimizerState;
  }

  /**
   * Release the engine's sessions and threads, then end the worker, also after it failed: that failure was the
   * answer to the call that met it, so it is not thrown again here (over the error a run is reporting).
   */
  async dispose(): Promise<void> {
    await this.pool.run({ kind: 'dispose' }).catch(() => {});
    await this.pool.close();
    process.off('exit', this.waitForWorker);
  }
}
