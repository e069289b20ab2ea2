// Which engine trains. `ort-cpu` runs each step as one ONNX graph in onnxruntime-node (src/train/ort, native CPU
// GEMMs); `tensorflow`, `wasm` and `cpu` are TensorFlow.js backends for the tfjs engines (engine.ts, parallel.ts).
// `auto` picks ort-cpu, the fastest engine measured on CPU (bench/train/README.md), when it can train the config,
// else tfjs's own auto choice; it logs which and why.
import { availableParallelism } from 'node:os';
import { BACKEND_CHOICES, useBackend, type BackendChoice } from '../model/backend.js';
import { InputError } from '../util/errors.js';
import { log } from '../util/log.js';
import type { TrainConfig } from './config.js';

export type TrainBackendChoice = BackendChoice | 'ort-cpu';
export const TRAIN_BACKEND_CHOICES: TrainBackendChoice[] = [...BACKEND_CHOICES, 'ort-cpu'];

export interface TrainBackend {
  /** 'ort-cpu', or the tfjs backend's name ('tensorflow' | 'wasm' | 'cpu'): what checkpoints record. */
  name: string;
  /** Intra-op threads of the ort-cpu engine (0 for the tfjs engines). */
  ortThreads: number;
}

/** What in the config the ort-cpu engine cannot train, or null. */
export function ortUnsupported(config: TrainConfig): string | null {
  if (config.negatives.strategy === 'in-batch-hard') return "negatives.strategy 'in-batch-hard'";
  if (config.loss.maskFalseNegatives) return 'loss.maskFalseNegatives';
  return null;
}

async function ortLoads(): Promise<string | null> {
  try {
    await import('onnxruntime-node');
    return null;
  } catch (error) {
    return `onnxruntime-node failed to load (${(error as Error).message})`;
  }
}

/** Select the engine for `choice` (tfjs is initialised either way: evaluation encodes through it). */
export async function chooseTrainBackend(choice: TrainBackendChoice, config: TrainConfig): Promise<TrainBackend> {
  if (choice !== 'ort-cpu' && choice !== 'auto') return { name: await useBackend(choice), ortThreads: 0 };
  const unsupported = ortUnsupported(config) ?? (await ortLoads());
  if (unsupported) {
    if (choice === 'ort-cpu')
      throw new InputError(`--backend ort-cpu cannot train this config: ${unsupported}. Use --backend wasm`);
    log(`engine: tfjs (--backend auto: the ort-cpu engine cannot train this config: ${unsupported})`);
    return { name: await useBackend('auto'), ortThreads: 0 };
  }
  const tfjs = await useBackend('auto', { quiet: true });
  const ortThreads = availableParallelism();
  log(
    `engine: ort-cpu (onnxruntime-node, the whole step as one ONNX graph, ${ortThreads} thread${ortThreads > 1 ? 's' : ''}; ` +
      `tfjs ${tfjs} encodes for evaluation${choice === 'auto' ? '; chosen by --backend auto: the fastest CPU engine measured' : ''})`,
  );
  return { name: 'ort-cpu', ortThreads };
}
