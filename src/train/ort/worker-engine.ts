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
  | { kind: 'start'; options: OrtEngineOptions }
  | { kind: 'step'; plan: StepPlan }
  | { kind: 'encode'; matrix: MatrixName }
  | { kind: 'params' }
  | { kind: 'optimizerState' }
  | { kind: 'dispose' };

type Reply = StepResult | Float32Array | OptimizerState | null;

const WORKER_TAG = 'ctl-train-ort-engine';

/** A handler that hosts one OrtEngine: started by the first request, released by the last. */
function engineHost(): Handler<Request, Reply> {
  let engine: OrtEngine | null = null;
  const started = (): OrtEngine => {
    if (!engine) throw new Error('the ort engine worker has no engine: it failed to start or was disposed');
    return engine;
  };
  return async (request) => {
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

  private constructor(private readonly pool: WorkerPool<Request, Reply>) {}

  /**
   * An OrtEngine on its own thread. The worker holds its own copy of `options` (the matrices too: onnxruntime-node
   * takes no SharedArrayBuffer); what `transfer` lists moves to it instead (do not use it afterwards).
   */
  static async create(options: OrtEngineOptions, transfer: Transferable[] = []): Promise<OrtWorkerEngine> {
    const pool = WorkerPool.start(import.meta.url, WORKER_TAG, engineHost(), 1);
    try {
      await pool.run({ kind: 'start', options }, transfer);
    } catch (err) {
      await pool.close();
      throw err;
    }
    return new OrtWorkerEngine(pool);
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
  }
}
