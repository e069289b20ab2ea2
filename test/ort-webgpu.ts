// Whether onnxruntime's WebGPU execution provider has an adapter here (a GPU, or the software Vulkan driver
// lavapipe from Mesa >= 25 that .ci/run installs): a one-node graph runs on it.
import { OnnxGraph } from '../src/onnx/graph.js';

export async function webgpuRuns(): Promise<boolean> {
  const ort = await import('onnxruntime-node');
  const g = new OnnxGraph('probe');
  g.output(g.op('Relu', [g.input('x', 'float32', [1])], {}, 'y'), 'float32', [1]);
  try {
    const session = await ort.InferenceSession.create(g.encode(), { executionProviders: ['webgpu'] });
    await session.run({ x: new ort.Tensor('float32', Float32Array.of(1), [1]) });
    await session.release();
    return true;
  } catch {
    return false;
  }
}
