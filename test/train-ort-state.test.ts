// Where the ONNX training step keeps its flat state (src/train/ort/state.ts), checked on a toy step with the
// step graph's state names (params' = params + 1, m' = 2m, v' = v + params, loss = sum of params): on the host the
// step writes into the spare vectors; on the WebGPU provider the state stays in device buffers between steps
// and is read back on request; a matrix the steps gather from is uploaded once. Both must give the same state
// after three steps. The device half needs an
// adapter (CI: lavapipe); under CI=true it cannot skip.
import { describe, expect, it } from 'vitest';
import { OnnxGraph } from '../src/onnx/graph.js';
import { DeviceState, HostState, type StepState } from '../src/train/ort/state.js';
import { STATE_INPUTS, STATE_OUTPUTS } from '../src/train/ort/step-graph.js';
import { webgpuRuns } from './ort-webgpu.js';

const ort = await import('onnxruntime-node');
const webgpu = await webgpuRuns();
const size = 1000;

function toyStep(): Uint8Array {
  const g = new OnnxGraph('toy_step');
  const [params, m, v] = STATE_INPUTS.map((name) => g.input(name, 'float32', [size]));
  const [paramsOut, mOut, vOut] = STATE_OUTPUTS;
  g.op('Add', [params, g.float32([1], [])], {}, paramsOut);
  g.op('Mul', [m, g.float32([2], [])], {}, mOut);
  g.op('Add', [v, params], {}, vOut);
  g.op('ReduceSum', [params], { keepdims: 0 }, 'loss');
  for (const name of STATE_OUTPUTS) g.output(name, 'float32', [size]);
  g.output('loss', 'float32', []);
  return g.encode();
}

const initial = () => ({
  params: Float32Array.from({ length: size }, (_, i) => i / size),
  m: new Float32Array(size).fill(1),
  v: new Float32Array(size),
});

async function threeSteps(state: StepState, provider: 'cpu' | 'webgpu') {
  const session = await ort.InferenceSession.create(toyStep(), {
    executionProviders: [provider],
    ...state.sessionOptions,
  });
  const losses: number[] = [];
  const locations: string[] = [];
  for (let s = 0; s < 3; s++) {
    const results = await state.run(session, {}, ['loss']);
    losses.push((results.loss.data as Float32Array)[0]);
    locations.push(...STATE_OUTPUTS.filter((name) => name in results).map((name) => results[name].location));
  }
  const read = await state.read();
  await session.release();
  await state.dispose();
  return { losses, locations, read };
}

function expectAfterThreeSteps(read: { params: Float32Array; m: Float32Array; v: Float32Array }) {
  const start = initial();
  for (let i = 0; i < size; i += 97) {
    expect(read.params[i]).toBeCloseTo(start.params[i] + 3, 5);
    expect(read.m[i]).toBe(8);
    expect(read.v[i]).toBeCloseTo(3 * start.params[i] + 3, 5); // p + (p + 1) + (p + 2)
  }
}

describe('the ort engine’s step state', () => {
  it('on the host: the step writes the next state into the spare vectors, and read() copies it', async () => {
    const start = initial();
    const { losses, locations, read } = await threeSteps(new HostState(ort, start), 'cpu');
    expect(locations.every((l) => l === 'cpu')).toBe(true);
    expect(losses[1] - losses[0]).toBeCloseTo(size, 1);
    expectAfterThreeSteps(read);
    read.params[0] = 99; // a copy, not the live vectors
    expect(start.params[0]).not.toBe(99);
  });

  it.runIf(webgpu || process.env.CI === 'true')(
    'on the WebGPU provider: the state stays in device buffers between steps and reads back the same',
    async () => {
      expect(webgpu, 'no WebGPU adapter for onnxruntime (CI installs lavapipe)').toBe(true);
      const { losses, locations, read } = await threeSteps(new DeviceState(ort, initial(), 'webgpu'), 'webgpu');
      expect(locations).toEqual(Array(9).fill('gpu-buffer'));
      expect(losses[2] - losses[0]).toBeCloseTo(2 * size, 1);
      expectAfterThreeSteps(read);
    },
    60_000,
  );

  it.runIf(webgpu || process.env.CI === 'true')(
    'on the WebGPU provider: a resident matrix is uploaded once and a step gathers from it',
    async () => {
      const state = new DeviceState(ort, initial(), 'webgpu');
      const matrix = Float32Array.from({ length: 12 }, (_, i) => i);
      const [first, again] = [await state.resident('m', matrix, [4, 3]), await state.resident('m', matrix, [4, 3])];
      expect(first.location).toBe('gpu-buffer');
      expect(again).toBe(first);
      const g = new OnnxGraph('gather');
      const rows = g.input('rows', 'int32', [2]);
      g.output(g.op('Gather', [g.input('matrix', 'float32', [4, 3]), rows], { axis: 0 }, 'y'), 'float32', [2, 3]);
      const session = await ort.InferenceSession.create(g.encode(), { executionProviders: ['webgpu'] });
      const { y } = await session.run({ matrix: first, rows: new ort.Tensor('int32', Int32Array.of(3, 1), [2]) });
      expect(Array.from(y.data as Float32Array)).toEqual([9, 10, 11, 3, 4, 5]);
      await session.release();
      await state.dispose();
    },
    60_000,
  );
});
