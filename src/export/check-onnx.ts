// The export's check of its ONNX files: both towers run in onnxruntime-node on a batch and must give what the
// tfjs forward gives on the same rows, within ONNX_TOLERANCE (max abs difference), or the export fails. The tfjs
// forward, whatever runs the trained model's towers: onnxruntime running the same graph would check nothing.
import type { TrainedModel } from '../model/load.js';
import { OrtTowerEncoder } from '../model/ort-tower-encoder.js';
import { tfjsTowerEncoder } from '../model/tower-encoder.js';
import { TwoTower } from '../model/two-tower.js';
import { RunError } from '../util/errors.js';

const ONNX_TOLERANCE = 1e-5;

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/**
 * Run both ONNX towers on `rows` rows of input embeddings `x` (the product tower with `categories`) and compare
 * with the tfjs forward; returns the max abs difference per tower, throws past the tolerance.
 */
export async function checkOnnxTowers(
  model: TrainedModel,
  files: { scene: Uint8Array; product: Uint8Array },
  x: Float32Array,
  categories: Int32Array,
  rows: number,
): Promise<{ scene: number; product: number }> {
  const tfjs = await tfjsTowerEncoder(new TwoTower(model.spec), model.params);
  const expected = {
    scene: await tfjs.encode('scene', x, null, rows),
    product: await tfjs.encode('product', x, categories, rows),
  };
  const onnx = await OrtTowerEncoder.open(model.spec, files, 1);
  try {
    const differences = { scene: 0, product: 0 };
    for (const tower of ['scene', 'product'] as const) {
      const got = await onnx.encode(tower, x, categories, rows);
      differences[tower] = maxAbsDifference(got, expected[tower]);
      if (!(differences[tower] < ONNX_TOLERANCE))
        throw new RunError(
          `ONNX export: the ${tower} tower in onnxruntime differs from the tfjs forward by ${differences[tower]} (max abs, tolerance ${ONNX_TOLERANCE}) on ${rows} rows`,
        );
    }
    return differences;
  } finally {
    await onnx.dispose();
  }
}
