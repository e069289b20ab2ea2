// The hand-written gradients of src/model/ops.ts against tfjs's own autodiff of the same math, on the wasm
// backend (the one training runs on) and the cpu backend.
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import {
  columnSums,
  gelu,
  inputLinear,
  l2Normalize,
  layerNorm,
  linear,
  matMul,
  rowLogSumExp,
} from '../src/model/ops.js';
import { keyedRandom } from '../src/util/random.js';

const rng = keyedRandom(11, 'ops-test');
const random = (shape: number[], scale = 1) =>
  tf.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * scale),
    shape,
  );

function expectClose(a: tf.Tensor, b: tf.Tensor, tolerance = 1e-4): void {
  expect(a.shape).toEqual(b.shape);
  const x = a.dataSync();
  const y = b.dataSync();
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]) / (1 + Math.abs(y[i])));
  expect(worst).toBeLessThan(tolerance);
}

/** Values and gradients of ours and the reference w.r.t. every input, under a random linear readout of the output. */
// The ops take tensors of a given rank (Tensor2D, ...); the inputs are made to fit them.
type Op = (...xs: any[]) => tf.Tensor;

function compare(ours: Op, reference: Op, inputs: tf.Tensor[], tolerance = 1e-4): void {
  tf.tidy(() => {
    const readout = random(ours(...inputs).shape);
    const scalar =
      (f: (...xs: tf.Tensor[]) => tf.Tensor) =>
      (...xs: tf.Tensor[]) =>
        tf.sum(tf.mul(f(...xs), readout)) as tf.Scalar;
    const a = tf.valueAndGrads(scalar(ours))(inputs);
    const b = tf.valueAndGrads(scalar(reference))(inputs);
    expectClose(a.value, b.value, tolerance);
    a.grads.forEach((g, i) => expectClose(g, b.grads[i], tolerance));
  });
}

describe.each(['wasm', 'cpu'])('custom-gradient layers on %s', (backend) => {
  it('initialises the backend', async () => {
    expect(await tf.setBackend(backend)).toBe(true);
  });

  it('matMul', () => {
    compare(matMul, (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D), [random([5, 7]), random([7, 3])]);
  });

  it('linear', () => {
    compare(linear, (x, w, b) => tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b), [
      random([6, 8]),
      random([8, 4]),
      random([4]),
    ]);
  });

  it('columnSums', () => {
    compare(columnSums, (x) => tf.sum(x, 0), [random([9, 5])]);
  });

  it('layerNorm (eps 1e-5, as PyTorch)', () => {
    const reference = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      const { mean, variance } = tf.moments(x, -1, true);
      return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b);
    };
    compare(layerNorm, reference, [random([7, 16], 3), random([16]), random([16])], 2e-4);
  });

  it('gelu (exact erf form)', () => {
    const reference = (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
    compare(gelu, reference, [random([10, 12], 2)]);
  });

  it('rowLogSumExp', () => {
    compare(rowLogSumExp, (x) => tf.logSumExp(x, 1), [random([6, 9], 5)]);
  });

  it('inputLinear matches a linear layer on [x, extra], with no gradient for x', () => {
    const x = random([6, 5]);
    const reference = (extra: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
      tf.add(tf.matMul(tf.concat([x, extra], 1) as tf.Tensor2D, w as tf.Tensor2D), b);
    compare(
      (extra, w, b) => inputLinear(x as tf.Tensor2D, extra as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D),
      reference,
      [random([6, 3]), random([8, 4]), random([4])],
    );
    compare(
      (w, b) => inputLinear(x as tf.Tensor2D, null, w as tf.Tensor2D, b as tf.Tensor1D),
      (w, b) => tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b),
      [random([5, 4]), random([4])],
    );
  });

  it('l2Normalize gives unit rows', () => {
    const y = l2Normalize(random([4, 6], 3) as tf.Tensor2D);
    expectClose(tf.sum(tf.square(y), 1), tf.ones([4]));
  });
});
