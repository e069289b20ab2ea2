// Loss values against cases computed by hand.
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { contrastiveLoss, infoNce, pickColumns, similarities, tripletLoss } from '../src/train/losses.js';

const lse = (...xs: number[]) => Math.log(xs.reduce((a, x) => a + Math.exp(x), 0));

beforeAll(async () => {
  await tf.setBackend('wasm');
});

// Two scenes, two products: sims [[1, 0.6], [0, 0.8]].
const scenes = () =>
  tf.tensor2d([
    [1, 0],
    [0, 1],
  ]);
const products = () =>
  tf.tensor2d([
    [1, 0],
    [0.6, 0.8],
  ]);

describe('InfoNCE', () => {
  it('is the mean of the row and column cross-entropies with the diagonal as label', () => {
    const tau = 0.5;
    // logits = sims / tau = [[2, 1.2], [0, 1.6]]
    const rows = (lse(2, 1.2) - 2 + (lse(0, 1.6) - 1.6)) / 2;
    const cols = (lse(2, 0) - 2 + (lse(1.2, 1.6) - 1.6)) / 2;
    const loss = infoNce(similarities(scenes(), products()), tf.scalar(tau));
    expect(loss.dataSync()[0]).toBeCloseTo((rows + cols) / 2, 5);
  });

  it('takes masked false negatives out of both softmaxes', () => {
    // (0, 1) masked: row 0 keeps only its diagonal, column 1 too.
    const rows = (0 + (lse(0, 1.6) - 1.6)) / 2;
    const cols = (lse(2, 0) - 2 + 0) / 2;
    const loss = infoNce(similarities(scenes(), products()), tf.scalar(0.5), Uint8Array.from([0, 1, 0, 0]));
    expect(loss.dataSync()[0]).toBeCloseTo((rows + cols) / 2, 5);
  });

  it('is log(B) when every similarity is equal', () => {
    const loss = infoNce(tf.zeros([4, 4]) as tf.Tensor2D, tf.scalar(0.07));
    expect(loss.dataSync()[0]).toBeCloseTo(Math.log(4), 5);
  });
});

describe('triplet loss (cosine distance)', () => {
  it('averages max(0, d(s,p) - d(s,n) + margin) over rows that have a negative', () => {
    // d = 1 - cos: hinge = cos(s,n) - cos(s,p) + margin
    const pos = tf.tensor1d([0.9, 0.2, 0.5]);
    const neg = tf.tensor1d([0.5, 0.4, 0.9]);
    const loss = tripletLoss(pos, neg, Float32Array.from([1, 1, 0]), 0.2);
    expect(loss.dataSync()[0]).toBeCloseTo((0 + 0.4) / 2, 6);
  });

  it('is zero when no row has a negative', () => {
    expect(tripletLoss(tf.tensor1d([0.1]), tf.tensor1d([0.9]), Float32Array.from([0]), 0.2).dataSync()[0]).toBe(0);
  });

  it('picks in-batch negatives by column', () => {
    const picked = pickColumns(
      tf.tensor2d([
        [1, 2, 3],
        [4, 5, 6],
      ]),
      Int32Array.from([2, -1]),
    );
    expect(Array.from(picked.dataSync())).toEqual([3, 0]);
  });
});

describe('weighted sum', () => {
  it('is infonce · w1 + triplet · w2', () => {
    const s = scenes();
    const p = products();
    const negativeSims = tf.tensor1d([0.9, 0.9]);
    const parts = contrastiveLoss(
      { scenes: s, products: p, temperature: tf.scalar(0.5), negativeSims, negativeValid: Float32Array.from([1, 1]) },
      { infonce: 1, triplet: 0.5, margin: 0.2 },
    );
    // positives (diagonal) 1 and 0.8: hinges max(0, 0.9 - 1 + 0.2) = 0.1 and 0.9 - 0.8 + 0.2 = 0.3
    expect(parts.triplet.dataSync()[0]).toBeCloseTo(0.2, 6);
    expect(parts.total.dataSync()[0]).toBeCloseTo(parts.infonce.dataSync()[0] + 0.5 * 0.2, 6);
  });
});
