// The tape's log-sum-exp (src/onnx/tape.ts), the one op of the training step whose plain ONNX form differs
// between onnxruntime's providers: at InfoNCE's largest logits (1 / temperature = 100 at the clamp) and with
// masked entries at -1e9, its value and gradient must match a float64 reference on the CPU provider and on the
// WebGPU one (where a single ReduceLogSumExp overflows to Infinity). The WebGPU half needs an adapter (CI:
// lavapipe); under CI=true it cannot skip.
import { describe, expect, it } from 'vitest';
import { Tape } from '../src/onnx/tape.js';
import { webgpuRuns } from './ort-webgpu.js';

const ort = await import('onnxruntime-node');
const webgpu = await webgpuRuns();

const [rows, cols] = [2, 4];
const x = [100, 99, -1e9, 98, -1e9, 5, 4, 3];

/** loss = mean over rows of lse(row) + mean over columns of lse(column), and its gradient. */
function graph(): Uint8Array {
  const t = new Tape('lse');
  const input = t.input('x', [rows, cols], true);
  const loss = t.add(t.mean(t.logSumExp(input, 1)), t.mean(t.logSumExp(input, 0)));
  t.output(loss, 'loss');
  const [dx] = t.backward(loss, [input]);
  t.graph.op('Identity', [dx], {}, 'dx');
  t.graph.output('dx', 'float32', [rows, cols]);
  return t.graph.encode();
}

function reference(): { loss: number; dx: number[] } {
  const at = (i: number, j: number) => x[i * cols + j];
  const dx = new Array<number>(rows * cols).fill(0);
  let loss = 0;
  // One line of the matrix: its log-sum-exp, and softmax / count added to its entries' gradients.
  const line = (indices: [number, number][], count: number) => {
    const max = Math.max(...indices.map(([i, j]) => at(i, j)));
    const sum = indices.reduce((s, [i, j]) => s + Math.exp(at(i, j) - max), 0);
    loss += (max + Math.log(sum)) / count;
    for (const [i, j] of indices) dx[i * cols + j] += Math.exp(at(i, j) - max) / sum / count;
  };
  for (let i = 0; i < rows; i++)
    line(
      [...Array(cols).keys()].map((j) => [i, j]),
      rows,
    );
  for (let j = 0; j < cols; j++)
    line(
      [...Array(rows).keys()].map((i) => [i, j]),
      cols,
    );
  return { loss, dx };
}

async function run(provider: 'cpu' | 'webgpu') {
  const session = await ort.InferenceSession.create(graph(), { executionProviders: [provider], logSeverityLevel: 3 });
  const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from(x), [rows, cols]) });
  await session.release();
  return { loss: (out.loss.data as Float32Array)[0], dx: [...(out.dx.data as Float32Array)] };
}

describe('tape logSumExp at logits of 100 and masked entries', () => {
  it.runIf(process.env.CI === 'true')('CI has a WebGPU adapter (lavapipe): the test below cannot skip there', () => {
    expect(webgpu).toBe(true);
  });

  for (const provider of ['cpu', 'webgpu'] as const)
    it.skipIf(provider === 'webgpu' && !webgpu)(
      `matches the float64 reference on the ${provider} provider`,
      async () => {
        const want = reference();
        const got = await run(provider);
        expect(got.loss).toBeCloseTo(want.loss, 3);
        got.dx.forEach((d, k) => expect(d).toBeCloseTo(want.dx[k], 5));
      },
    );
});
