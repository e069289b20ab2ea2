// splitVector (src/train/ort/flat-params.ts) cuts the flat parameter vector into the layout's tensors with Split
// nodes of at most 7 outputs (WebGPU's default limit is 8 storage buffers per shader): every piece must hold its
// slice of the vector, on the CPU provider and, where an adapter is found (CI: lavapipe), on the WebGPU one.
import { describe, expect, it } from 'vitest';
import { OnnxGraph } from '../src/onnx/graph.js';
import { splitVector } from '../src/train/ort/flat-params.js';
import { webgpuRuns } from './ort-webgpu.js';

const ort = await import('onnxruntime-node');
const webgpu = await webgpuRuns();

/** The graph, and the output count of each Split node in it. */
function build(sizes: number[]): { model: Uint8Array; widths: number[] } {
  const g = new OnnxGraph('split');
  const widths: number[] = [];
  const node = g.node.bind(g);
  g.node = (type, inputs, attrs, outputs) => {
    if (type === 'Split') widths.push(typeof outputs === 'number' ? outputs : outputs!.length);
    return node(type, inputs, attrs, outputs);
  };
  const total = sizes.reduce((a, b) => a + b, 0);
  const pieces = splitVector(g, g.input('vector', 'float32', [total]), sizes);
  pieces.forEach((piece, i) => g.output(g.op('Identity', [piece], {}, `piece_${i}`), 'float32', [sizes[i]]));
  return { model: g.encode(), widths };
}

describe('splitVector', () => {
  for (const count of [1, 2, 7, 8, 47, 120])
    it(`cuts a vector into ${count} pieces with Splits of at most 7 outputs`, async () => {
      const sizes = Array.from({ length: count }, (_, i) => 1 + ((i * 7) % 5));
      const { model, widths } = build(sizes);
      expect(Math.max(...widths)).toBeLessThanOrEqual(7);
      if (count > 7) expect(widths.length).toBeLessThan(count); // fewer nodes than a Slice per piece
      const vector = Float32Array.from({ length: sizes.reduce((a, b) => a + b, 0) }, (_, i) => i);
      for (const provider of webgpu ? ['cpu', 'webgpu'] : ['cpu']) {
        const session = await ort.InferenceSession.create(model, { executionProviders: [provider] });
        const out = await session.run({ vector: new ort.Tensor('float32', vector, [vector.length]) });
        let offset = 0;
        sizes.forEach((size, i) => {
          expect([...(out[`piece_${i}`].data as Float32Array)], `${provider} piece ${i}`).toEqual([
            ...vector.subarray(offset, offset + size),
          ]);
          offset += size;
        });
        await session.release();
      }
    });
});
