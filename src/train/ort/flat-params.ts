// The flat parameter vector as a graph input, and the layout's tensors cut from it inside the graph: the training
// step (step-graph.ts) and the encoder (encode-graph.ts) take the parameters as one vector, which stays where the
// engine keeps it (state.ts).
import type { OnnxGraph } from '../../onnx/graph.js';
import type { ParamLayout } from '../../model/params.js';

/** A function naming each parameter tensor (reshaped to its layout shape, made on first use) of `vector`. */
export function paramTensors(g: OnnxGraph, layout: ParamLayout, vector: string): (name: string) => string {
  const pieces = splitVector(
    g,
    vector,
    layout.entries.map((e) => e.size),
  );
  const index = new Map(layout.entries.map((e, i) => [e.name, i]));
  const shaped = new Map<string, string>();
  return (name) => {
    let tensor = shaped.get(name);
    if (!tensor) {
      const i = index.get(name)!;
      tensor = g.op('Reshape', [pieces[i], g.int64s(layout.entries[i].shape)]);
      shaped.set(name, tensor);
    }
    return tensor;
  };
}

/**
 * A vector cut into consecutive pieces of `sizes` by Split nodes of at most `width` outputs each, nested where there
 * are more pieces: a few kernels, not one Slice per piece (a GPU pays for each kernel). The WebGPU provider writes
 * all of a Split's outputs from one shader, and WebGPU's default limit is 8 storage buffers per shader stage: the
 * input and 7 outputs.
 */
export function splitVector(g: OnnxGraph, vector: string, sizes: number[], width = 7): string[] {
  if (sizes.length <= width) return g.node('Split', [vector, g.int64s(sizes)], { axis: 0 }, sizes.length);
  const perGroup = Math.ceil(sizes.length / width);
  const groups = Array.from({ length: Math.ceil(sizes.length / perGroup) }, (_, k) =>
    sizes.slice(k * perGroup, (k + 1) * perGroup),
  );
  const parts = splitVector(
    g,
    vector,
    groups.map((group) => group.reduce((a, b) => a + b, 0)),
    width,
  );
  return groups.flatMap((group, k) => (group.length === 1 ? [parts[k]] : splitVector(g, parts[k], group, width)));
}
