// Which engine trains. `ort-cpu` runs each step as one ONNX graph in onnxruntime-node (src/train/ort, native CPU
// GEMMs); `webgpu` runs the same graph on onnxruntime's WebGPU execution provider; `tensorflow`, `wasm` and `cpu`
// are TensorFlow.js backends for the tfjs engines (engine.ts, parallel.ts). `auto` picks webgpu when a hardware
// adapter is found (never a software one: lavapipe is slower than the CPU), else ort-cpu, the fastest engine
// measured on CPU (bench/train/README.md), else (onnxruntime-node failing to load) tfjs's own auto choice; it logs
// which and why.
import { availableParallelism } from 'node:os';
import { describeAdapter, probeWebGpuAdapter, WEBGPU_SETUP } from '../util/webgpu-adapter.js';
import { BACKEND_CHOICES, useBackend, type BackendChoice } from '../model/backend.js';
import { InputError } from '../util/errors.js';
import { log } from '../util/log.js';

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
    await import('onnxruntime-node');
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
