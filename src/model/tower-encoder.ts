// What runs a trained model's towers for the later stages (eval, export, serve), chosen by `--backend`:
// - `ort-cpu`: onnxruntime-node, each tower as the ONNX model export writes (ort-tower-encoder.ts);
// - `tensorflow`, `wasm`, `cpu`: the tfjs forward (encode.ts) on that TensorFlow.js backend (backend.ts).
// `auto` = ort-cpu, or tfjs's own auto choice where onnxruntime-node cannot load. The choice is logged in one line.
// Both run the same layers and agree within float noise (1e-5); the tfjs forward stays the reference that export
// checks its ONNX files against.
import { availableParallelism } from 'node:os';
import { firstLineOf } from '../util/errors.js';
import { log } from '../util/log.js';
import { BackendUnavailableError, useBackend, type BackendChoice, type TowerBackendChoice } from './backend.js';
import type { Tower, TwoTower } from './two-tower.js';

export interface TowerEncoder {
  /** What runs the towers: 'ort-cpu', or the tfjs backend's name ('tensorflow' | 'wasm' | 'cpu'). */
  readonly backend: string;
  /**
   * `rows` rows of input embeddings x (the product tower with category rows: the checkpoint's) through a tower,
   * dropout off → L2-normalised [rows, out]. `onChunk` is told the rows of each chunk done (progress).
   */
  encode(
    tower: Tower,
    x: Float32Array,
    categories: Int32Array | null,
    rows: number,
    onChunk?: (rows: number) => void,
  ): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/** The encoder `choice` names (see the top of this file), logged in one line. */
export async function openTowerEncoder(
  choice: TowerBackendChoice,
  model: TwoTower,
  params: Float32Array,
): Promise<TowerEncoder> {
  if (choice !== 'ort-cpu' && choice !== 'auto') {
    const encoder = await tfjsTowerEncoder(model, params, choice);
    log(`towers: ${encoder.backend} (TensorFlow.js)`);
    return encoder;
  }
  let unavailable: string;
  try {
    const { OrtTowerEncoder } = await import('./ort-tower-encoder.js');
    const threads = availableParallelism();
    const encoder = await OrtTowerEncoder.create(model, params, threads);
    log(
      `towers: ort-cpu (onnxruntime-node, ${threads} thread${threads > 1 ? 's' : ''}${choice === 'auto' ? ', chosen by --backend auto' : ''})`,
    );
    return encoder;
  } catch (err) {
    unavailable = `onnxruntime-node unavailable (${firstLineOf(err)})`;
  }
  if (choice === 'ort-cpu') throw new BackendUnavailableError(`--backend ort-cpu: ${unavailable}; use --backend wasm`);
  const encoder = await tfjsTowerEncoder(model, params, 'auto');
  log(`towers: ${encoder.backend} (TensorFlow.js; --backend auto: ${unavailable})`);
  return encoder;
}

/**
 * The tfjs forward (encode.ts) as an encoder. `auto` keeps the tfjs backend already selected (a test's, or the
 * trainer's), or selects one; a named backend is selected.
 */
export async function tfjsTowerEncoder(
  model: TwoTower,
  params: Float32Array,
  choice: BackendChoice = 'auto',
): Promise<TowerEncoder> {
  const tf = await import('@tensorflow/tfjs');
  if (choice !== 'auto' || !tf.engine().backendName) await useBackend(choice, { quiet: true });
  const { encodeRows } = await import('./encode.js');
  return {
    backend: tf.getBackend(),
    encode: async (tower, x, categories, rows, onChunk) =>
      encodeRows(model, params, tower, x, categories, rows, onChunk),
    dispose: async () => {},
  };
}
