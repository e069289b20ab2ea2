// onnxruntime-node's types, and the one way to load it. What runs ONNX graphs (the training step, a trained model's
// towers, eval's scoring) loads it when it first runs one, so a command that runs none starts without it.
export type Ort = typeof import('onnxruntime-node');
export type OrtSession = Awaited<ReturnType<Ort['InferenceSession']['create']>>;
export type OrtTensor = InstanceType<Ort['Tensor']>;

/** onnxruntime-node; rejects where its native library does not load. */
export async function loadOrt(): Promise<Ort> {
  return (await import('onnxruntime-node')) as Ort;
}

/**
 * Session options for a graph run now and then on the CPU beside other work: `threads` intra-op threads that sleep
 * when idle instead of spinning (a server waits between requests; eval scans between runs, on the JS thread).
 */
export function cpuSessionOptions(threads: number) {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}
