// The two towers as ONNX graphs (opset 17), their nodes from model/onnx-tower.ts, the weights as initializers:
//   scene model:   scene_embedding [batch, D] float32 → scene_vector [batch, out] (L2-normalised)
//   product model: product_embedding [batch, D] float32, category [batch] int64 (v2 only: the checkpoint's
//                  cat_to_idx row) → product_vector [batch, out] (L2-normalised)
import { OnnxGraph } from '../onnx/graph.js';
import { emitTower } from '../model/onnx-tower.js';
import type { Tower, TwoTower } from '../model/two-tower.js';

/** The graphs' input and output names, per tower. */
export const ONNX_NAMES = {
  scene: { inputs: ['scene_embedding'], output: 'scene_vector' },
  product: { inputs: ['product_embedding', 'category'], output: 'product_vector' },
} as const;

const BATCH = 'batch';

/** A tower's ONNX model; `metadata` goes into the file's metadata_props. */
export function towerOnnx(
  model: TwoTower,
  params: Float32Array,
  tower: Tower,
  metadata: Record<string, string> = {},
): Uint8Array {
  const { inputDim, out } = model.spec;
  const g = new OnnxGraph(`${tower}_tower`);
  const weight = (name: string) => {
    const e = model.layout.get(name);
    return g.initializer(params.slice(e.offset, e.offset + e.size), e.shape, { name });
  };
  const x = g.input(ONNX_NAMES[tower].inputs[0], 'float32', [BATCH, inputDim]);
  const category =
    tower === 'product' && model.categoryEmbedding ? g.input(ONNX_NAMES.product.inputs[1], 'int64', [BATCH]) : null;
  const vector = emitTower(g, model, tower, weight, x, category, ONNX_NAMES[tower].output);
  g.output(vector, 'float32', [BATCH, out]);
  return g.encode({ producer: 'ctl export', metadata });
}
