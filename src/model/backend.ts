// Picks the TensorFlow.js backend. `auto` prefers the native TensorFlow bindings when the user installed them
// (optional peer dependencies, loaded by a dynamic import so nothing breaks without them), else WebAssembly,
// else the plain JavaScript cpu backend. The choice is logged in one line. tfjs is imported on first use, so
// commands that only list options stay quick to start.
import type { TensorInfo } from '@tensorflow/tfjs';
import { InputError } from '../util/errors.js';
import { log } from '../util/log.js';

export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: BackendChoice[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

/** What runs a trained model's towers (eval, export, serve): these, or onnxruntime-node (tower-encoder.ts). */
export type TowerBackendChoice = BackendChoice | 'ort-cpu';
export const TOWER_BACKEND_CHOICES: TowerBackendChoice[] = [...BACKEND_CHOICES, 'ort-cpu'];

/** A --backend named that this machine cannot run: the machine's problem, not a run's (every run fails alike). */
export class BackendUnavailableError extends InputError {}

/** The native packages, GPU first. Each registers the `tensorflow` backend when imported. */
const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];

type Tf = typeof import('@tensorflow/tfjs');

async function tryNative(tf: Tf): Promise<string | undefined> {
  for (const pkg of NATIVE_PACKAGES) {
    try {
      await import(pkg);
      if (await tf.setBackend('tensorflow')) return pkg;
    } catch {
      // Not installed, or its native library failed to load: try the next one.
    }
  }
  return undefined;
}

async function tryWasm(tf: Tf): Promise<boolean> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    if (!(await tf.setBackend('wasm'))) return false;
  } catch {
    return false;
  }
  shareIdentity(tf);
  return true;
}

/**
 * The wasm backend's Identity copies its input, and tfjs clones (Identity) every tensor it saves for the backward
 * pass: a copy of most activations on every step. Tensors are immutable, so share the buffer instead, as the cpu
 * backend and the wasm backend's own Reshape do.
 */
function shareIdentity(tf: Tf): void {
  type Info = { dataId: object; shape: number[]; dtype: string };
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({
    kernelName: 'Identity',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const x = inputs.x as unknown as Info;
      (backend as unknown as { incRef(dataId: object): void }).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype } as unknown as TensorInfo;
    },
  });
}

/** Select and initialise a backend; returns its tfjs name ('tensorflow' | 'wasm' | 'cpu'). */
export async function useBackend(choice: BackendChoice, { quiet = false } = {}): Promise<string> {
  const tf = await import('@tensorflow/tfjs');
  let detail = '';
  if (choice === 'tensorflow' || choice === 'auto') {
    const pkg = await tryNative(tf);
    if (pkg) detail = pkg;
    else if (choice === 'tensorflow')
      throw new BackendUnavailableError(
        "--backend tensorflow needs '@tensorflow/tfjs-node' or '@tensorflow/tfjs-node-gpu' (same version as @tensorflow/tfjs) installed",
      );
  }
  if (!detail && (choice === 'wasm' || choice === 'auto')) {
    if (await tryWasm(tf)) detail = '@tensorflow/tfjs-backend-wasm';
    else if (choice === 'wasm')
      throw new BackendUnavailableError('--backend wasm: @tensorflow/tfjs-backend-wasm failed to initialise');
  }
  if (!detail) {
    // tfjs greets the cpu backend's first tensor with a banner to install tfjs-node; our one line says so (or, quiet,
    // the caller's does). Production mode silences tfjs's warnings, and nothing else.
    tf.enableProdMode();
    await tf.setBackend('cpu');
    detail = 'pure JavaScript, slow';
  }
  await tf.ready();
  if (!quiet) log(`backend: ${tf.getBackend()} (${detail}${choice === 'auto' ? ', chosen by --backend auto' : ''})`);
  return tf.getBackend();
}
