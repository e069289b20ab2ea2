// A trained model's towers in onnxruntime-node on the CPU (MLAS GEMMs on every core): each tower is the whole ONNX
// model `ctl export` writes (onnx-tower.ts towerOnnx), run a chunk of rows at a time. About twice as fast as tfjs's
// wasm backend over a 38,000-product catalog (README.md, "A trained run's towers": eval, serve start-up).
import { cpuSessionOptions, loadOrt, type Ort, type OrtSession, type OrtTensor } from '../onnx/runtime.js';
import { ONNX_NAMES, towerOnnx } from './onnx-tower.js';
import type { TowerEncoder } from './tower-encoder.js';
import type { ModelSpec, Tower, TwoTower } from './two-tower.js';

/**
 * Rows a run takes. A session's memory arena keeps its largest run's activations for as long as it lives (a server's
 * whole life): at 8,192 rows that held ~170 MB more than at 2,048, which encode as fast.
 */
const CHUNK = 2048;

export class OrtTowerEncoder implements TowerEncoder {
  readonly backend = 'ort-cpu';

  private constructor(
    private readonly ort: Ort,
    private readonly spec: ModelSpec,
    private readonly sessions: Record<Tower, OrtSession>,
  ) {}

  /** Both towers' sessions, made now: an onnxruntime that does not load, or refuses a graph, fails here. */
  static create(model: TwoTower, params: Float32Array, threads: number): Promise<OrtTowerEncoder> {
    const files = { scene: towerOnnx(model, params, 'scene'), product: towerOnnx(model, params, 'product') };
    return OrtTowerEncoder.open(model.spec, files, threads);
  }

  /** The towers of ONNX files as towerOnnx writes them (an export's, which its check runs), for a model of `spec`. */
  static async open(spec: ModelSpec, files: Record<Tower, Uint8Array>, threads: number): Promise<OrtTowerEncoder> {
    const ort = await loadOrt();
    const options = cpuSessionOptions(threads);
    const [scene, product] = await Promise.all(
      (['scene', 'product'] as const).map((tower) => ort.InferenceSession.create(files[tower], options)),
    );
    return new OrtTowerEncoder(ort, spec, { scene, product });
  }

  async encode(
    tower: Tower,
    x: Float32Array,
    categories: Int32Array | null,
    rows: number,
    onChunk?: (rows: number) => void,
  ): Promise<Float32Array> {
    const { inputDim, out } = this.spec;
    const { Tensor } = this.ort;
    const session = this.sessions[tower];
    const [input, categoryInput] = [ONNX_NAMES[tower].inputs[0], ONNX_NAMES.product.inputs[1]];
    const vectors = new Float32Array(rows * out);
    for (let start = 0; start < rows; start += CHUNK) {
      const count = Math.min(CHUNK, rows - start);
      const feeds: Record<string, OrtTensor> = {
        [input]: new Tensor('float32', x.subarray(start * inputDim, (start + count) * inputDim), [count, inputDim]),
      };
      if (session.inputNames.includes(categoryInput))
        feeds[categoryInput] = new Tensor(
          'int64',
          BigInt64Array.from(categories!.subarray(start, start + count), BigInt),
          [count],
        );
      const output = new Tensor('float32', vectors.subarray(start * out, (start + count) * out), [count, out]);
      await session.run(feeds, { [ONNX_NAMES[tower].output]: output });
      onChunk?.(count);
    }
    return vectors;
  }

  async dispose(): Promise<void> {
    await Promise.all([this.sessions.scene.release(), this.sessions.product.release()]);
  }
}
