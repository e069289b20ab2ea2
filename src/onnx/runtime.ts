// onnxruntime-node's types, and the one way to load it. What runs ONNX graphs (the training step, a trained model's
// towers, eval's scoring) loads it when it first runs one, so a command that runs none starts without it.
export type Ort = typeof import('onnxruntime-node');
export type OrtSession = Awaited<ReturnType<Ort['InferenceSession']['create']>>;
export type OrtTensor = InstanceType<Ort['Tensor']>;

/** onnxruntime-node; rejects where its native library does not load. */
export async function loadOrt(): Promise<Ort> {
  return (await import('onnxruntime-node')) as Ort;
}
