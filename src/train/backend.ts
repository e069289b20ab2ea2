// Which engine trains. `ort-cpu` runs each step as one ONNX graph in onnxruntime-node (src/train/ort, native CPU
// GEMMs); `webgpu` runs the same graph on onnxruntime's WebGPU execution provider; `tensorflow`, `wasm` and `cpu`
// are TensorFlow.js backends for the tfjs engines (engine.ts, parallel.ts). `auto` picks webgpu when a hardware
// adapter is found (never a software one: lavapipe is slower than the CPU), else ort-cpu, the fastest engine
// measured on CPU (bench/train/README.md), else (onnxruntime-node failing to load) tfjs's own auto choice; it logs
// which and why. createEngine then builds the chosen engine, chooseWorkers the wasm engine's threads.
import { availableParallelism } from 'node:os';
import { describeAdapter, probeWebGpuAdapter, WEBGPU_SETUP } from '../util/webgpu-adapter.js';
import { BACKEND_CHOICES, useBackend, type BackendChoice } from '../model/backend.js';
import { loadOrt } from '../onnx/runtime.js';
import { InputError } from '../util/errors.js';
import { log } from '../util/log.js';
import type { EngineOptions, TrainEngine } from './engine.js';

export type TrainBackendChoice = BackendChoice | 'ort-cpu' | 'webgpu';
export const TRAIN_BACKEND_CHOICES: TrainBackendChoice[] = [...BACKEND_CHOICES, 'ort-cpu', 'webgpu'];

export interface TrainBackend {
  /** 'ort-cpu', 'webgpu', or the tfjs backend's name ('tensorflow' | 'wasm' | 'cpu'): what checkpoints record. */
  name: string;
  /** Intra-op threads of the onnxruntime engine (0 for the tfjs engines). */
  ortThreads: number;
}

/** Whether the backend trains with the onnxruntime engine (OrtEngine), and on which execution provider. */
export function ortProvider(backend: string): 'cpu' | 'webgpu' | null {
  return backend === 'ort-cpu' ? 'cpu' : backend === 'webgpu' ? 'webgpu' : null;
}

async function ortLoads(): Promise<string | null> {
  try {
    await loadOrt();
    return null;
  } catch (error) {
    return `onnxruntime-node failed to load (${(error as Error).message})`;
  }
}

/** Select the engine for `choice` (and initialise tfjs where a tfjs engine trains). */
export async function chooseTrainBackend(choice: TrainBackendChoice): Promise<TrainBackend> {
  if (choice !== 'ort-cpu' && choice !== 'webgpu' && choice !== 'auto')
    return { name: await useBackend(choice), ortThreads: 0 };
  const unavailable = await ortLoads();
  if (unavailable) {
    if (choice !== 'auto') throw new InputError(`--backend ${choice}: ${unavailable}. Use --backend wasm`);
    log(`engine: tfjs (--backend auto: ${unavailable})`);
    return { name: await useBackend('auto'), ortThreads: 0 };
  }
  const webgpu = choice === 'ort-cpu' ? null : await probeWebGpuAdapter();
  if (choice === 'webgpu' && !webgpu?.adapter)
    throw new InputError(
      `--backend webgpu: ${webgpu && 'reason' in webgpu ? webgpu.reason : 'no adapter'}. ${WEBGPU_SETUP}; or use --backend ort-cpu`,
    );
  const ortThreads = availableParallelism();
  if (webgpu?.adapter && (choice === 'webgpu' || !webgpu.adapter.software)) {
    const why =
      choice === 'auto'
        ? '; chosen by --backend auto: a hardware adapter was found'
        : webgpu.adapter.software
          ? '; right for tests, slower than --backend ort-cpu'
          : '';
    log(
      `engine: webgpu (onnxruntime-node's WebGPU provider on ${describeAdapter(webgpu.adapter)}, the whole step as one ONNX graph${why})`,
    );
    return { name: 'webgpu', ortThreads };
  }
  const noGpu = !webgpu
    ? ''
    : webgpu.adapter
      ? `; WebGPU has only ${describeAdapter(webgpu.adapter)}, which auto never takes (--backend webgpu does)`
      : `; WebGPU: ${webgpu.reason}`;
  log(
    `engine: ort-cpu (onnxruntime-node, the whole step as one ONNX graph, ${ortThreads} thread${ortThreads > 1 ? 's' : ''}` +
      `${choice === 'auto' ? `; chosen by --backend auto: the fastest CPU engine measured${noGpu}` : ''})`,
  );
  return { name: 'ort-cpu', ortThreads };
}

/**
 * The engine that trains on `backend`: onnxruntime's, else tfjs's on `workers` threads (parallel.ts, its buffers
 * sized for `largestBatch` rows) or this one. Each is loaded when chosen: the CLI starts without onnxruntime or tfjs.
 * On the CPU onnxruntime's engine runs on a worker thread of its own (ort/worker-engine.ts) and takes the three
 * embedding matrices there (~265 MB at full size, not copied): after this call they are empty on this thread.
 */
export async function createEngine(
  backend: TrainBackend,
  workers: number,
  options: EngineOptions,
  largestBatch: number,
): Promise<TrainEngine> {
  const provider = ortProvider(backend.name);
  if (provider === 'cpu') {
    const { OrtWorkerEngine } = await import('./ort/worker-engine.js');
    const { trainScenes, valScenes, products } = options.matrices;
    const taken = new Set([trainScenes, valScenes, products].map((matrix) => matrix.buffer as ArrayBuffer));
    return OrtWorkerEngine.create({ ...options, threads: backend.ortThreads, provider }, [...taken]);
  }
  if (provider === 'webgpu') {
    // On a GPU the step's state stays there (no per-step copies to collect): the engine runs on this thread.
    const { OrtEngine } = await import('./ort/engine.js');
    return OrtEngine.create({ ...options, threads: backend.ortThreads, provider });
  }
  if (workers > 1) {
    const { ParallelEngine } = await import('./parallel.js');
    return ParallelEngine.create({
      ...options,
      workers,
      backend: backend.name as BackendChoice,
      batchSize: largestBatch,
    });
  }
  const { LocalEngine } = await import('./local-engine.js');
  return new LocalEngine(options);
}

/**
 * Worker threads for the data-parallel wasm engine: as asked (other engines have one), else the resumed run's, else
 * one per core up to 2. `previousWorkers`: what the resumed run trained with, or null for a new run.
 */
export function chooseWorkers(
  requested: number | 'auto' | undefined,
  backend: string,
  previousWorkers: number | null,
): number {
  if (typeof requested === 'number') {
    if (requested > 1 && backend !== 'wasm') {
      log(
        ortProvider(backend)
          ? `--workers ${requested}: worker threads are for the wasm backend; ${backend} runs on onnxruntime's own thread pool`
          : `--workers ${requested}: worker threads are for the wasm backend; training on one thread with ${backend}`,
      );
      return 1;
    }
    if (previousWorkers !== null && previousWorkers !== requested)
      log(
        `note: the run trained with ${previousWorkers} worker(s) so far; with ${requested} the sums round differently (results differ within float noise)`,
      );
    return requested;
  }
  if (previousWorkers !== null && (backend === 'wasm' || previousWorkers === 1)) return previousWorkers;
  return backend === 'wasm' ? Math.max(1, Math.min(2, availableParallelism())) : 1;
}
