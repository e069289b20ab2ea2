// A tower as an ONNX graph for the training engine's encoder (validation, mined negatives): the rows of a matrix
// the engine keeps where its step runs, through the tower with the current flat parameters, L2-normalised. A
// chunk of rows per run (their indices fed, the rows gathered in the graph), so memory stays bounded whatever the
// matrix's size; the step's parameters are fed as they are, never copied to the host.
import { OnnxGraph } from '../../onnx/graph.js';
import { emitTower } from '../../model/onnx-tower.js';
import type { Tower, TwoTower } from '../../model/two-tower.js';
import { paramTensors } from './flat-params.js';

/** Inputs: params [size], matrix [rows, inputDim], row_indices int32 [chunk], categories int32 [chunk] (the
 * product tower of a model with a category embedding). Output: vectors [chunk, out]. */
export function buildEncodeGraph(model: TwoTower, tower: Tower, rows: number, chunk: number): Uint8Array {
  const { inputDim, out } = model.spec;
  const g = new OnnxGraph(`encode_${tower}`);
  const weight = paramTensors(g, model.layout, g.input('params', 'float32', [model.layout.size]));
  const matrix = g.input('matrix', 'float32', [rows, inputDim]);
  const x = g.op('Gather', [matrix, g.input('row_indices', 'int32', [chunk])], { axis: 0 });
  const category = tower === 'product' && model.categoryEmbedding ? g.input('categories', 'int32', [chunk]) : null;
  g.output(emitTower(g, model, tower, weight, x, category, 'vectors'), 'float32', [chunk, out]);
  return g.encode();
}
