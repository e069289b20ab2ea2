// The flat Adam/AdamW against PyTorch's formulas (and torch.optim itself when python3-torch is installed), slices
// against the whole, clipping, and the learning-rate schedule.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { keyedRandom } from '../src/util/random.js';
import { FlatAdam, clipScale, sumOfSquares, type OptimizerConfig } from '../src/train/optimizer.js';
import { learningRate } from '../src/train/schedule.js';

const PYTHON = '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

const rng = keyedRandom(4, 'optimizer-test');
const vector = (n: number, scale = 1) => Float32Array.from({ length: n }, () => rng.normal() * scale);

/** PyTorch's Adam / AdamW step, in double precision, straight from the documentation. */
function referenceSteps(config: OptimizerConfig, p0: Float32Array, grads: Float32Array[], lr: number): number[] {
  const p = Array.from(p0);
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  const [b1, b2] = config.betas;
  grads.forEach((g, step) => {
    const t = step + 1;
    const norm = Math.sqrt(g.reduce((a, x) => a + x * x, 0));
    const scale = config.gradClip > 0 ? Math.min(1, config.gradClip / (norm + 1e-6)) : 1;
    for (let i = 0; i < p.length; i++) {
      let gi = g[i] * scale;
      if (config.kind === 'adam') gi += config.weightDecay * p[i];
      else p[i] *= 1 - lr * config.weightDecay;
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      const mhat = m[i] / (1 - b1 ** t);
      const vhat = v[i] / (1 - b2 ** t);
      p[i] -= (lr * mhat) / (Math.sqrt(vhat) + config.eps);
    }
  });
  return p;
}

function ours(config: OptimizerConfig, p0: Float32Array, grads: Float32Array[], lr: number, slices = 1): Float32Array {
  const params = p0.slice();
  const bounds = Array.from({ length: slices + 1 }, (_, k) => Math.round((k * p0.length) / slices));
  const optimizers = bounds.slice(0, -1).map((lo, k) => new FlatAdam(config, lo, bounds[k + 1]));
  for (const g of grads) {
    const scale = clipScale(Math.sqrt(sumOfSquares(g)), config.gradClip);
    optimizers.forEach((o) => o.update(params, g.subarray(o.lo, o.hi), lr, scale));
  }
  return params;
}

const configs: OptimizerConfig[] = [
  { kind: 'adamw', lr: 1e-2, weightDecay: 0.01, betas: [0.9, 0.999], eps: 1e-8, gradClip: 1 },
  { kind: 'adam', lr: 1e-2, weightDecay: 0.1, betas: [0.8, 0.99], eps: 1e-6, gradClip: 0 },
  // Adam's L2 term joins the gradient after clipping, unscaled.
  { kind: 'adam', lr: 1e-2, weightDecay: 0.1, betas: [0.9, 0.999], eps: 1e-8, gradClip: 0.5 },
];

describe('FlatAdam', () => {
  const p0 = vector(50);
  const grads = Array.from({ length: 6 }, () => vector(50, 0.5));

  it.each(configs)('matches the PyTorch formulas ($kind)', (config) => {
    const expected = referenceSteps(config, p0, grads, config.lr);
    const got = ours(config, p0, grads, config.lr);
    got.forEach((x, i) => expect(x).toBeCloseTo(expected[i], 5));
  });

  it('updates the same vector whether one optimizer or several slices do it', () => {
    expect(ours(configs[0], p0, grads, 1e-2, 3)).toEqual(ours(configs[0], p0, grads, 1e-2, 1));
  });

  it.skipIf(!hasTorch)('matches torch.optim.Adam and AdamW with clip_grad_norm_', () => {
    const script = `
import json, sys, torch
d = json.load(sys.stdin)
out = []
for c in d['configs']:
    p = torch.nn.Parameter(torch.tensor(d['p0']))
    cls = torch.optim.AdamW if c['kind'] == 'adamw' else torch.optim.Adam
    opt = cls([p], lr=c['lr'], betas=tuple(c['betas']), eps=c['eps'], weight_decay=c['weightDecay'])
    for g in d['grads']:
        opt.zero_grad()
        p.grad = torch.tensor(g)
        if c['gradClip'] > 0: torch.nn.utils.clip_grad_norm_([p], c['gradClip'])
        opt.step()
    out.append(p.detach().tolist())
print(json.dumps(out))`;
    const input = JSON.stringify({ p0: Array.from(p0), grads: grads.map((g) => Array.from(g)), configs });
    const run = spawnSync(PYTHON, ['-c', script], { input, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const expected = JSON.parse(run.stdout) as number[][];
    configs.forEach((config, k) =>
      ours(config, p0, grads, config.lr).forEach((x, i) => expect(x).toBeCloseTo(expected[k][i], 5)),
    );
  });

  it('leaves the state it resumes from as it was', () => {
    const state = { t: 3, m: vector(50), v: vector(50).map(Math.abs) };
    const before = { m: state.m.slice(), v: state.v.slice() };
    new FlatAdam(configs[0], 0, 50, state).update(p0.slice(), grads[0], 1e-2, 1);
    expect(state).toEqual({ t: 3, ...before });
  });

  it('flushes vanishing moments to zero instead of keeping denormals', () => {
    const o = new FlatAdam(configs[0], 0, 1);
    const params = Float32Array.from([1]);
    o.update(params, Float32Array.from([1e-3]), 1e-3, 1);
    for (let k = 0; k < 2000; k++) o.update(params, Float32Array.from([0]), 1e-3, 1);
    expect(o.m[0]).toBe(0);
  });

  it('clips like clip_grad_norm_', () => {
    expect(clipScale(4, 1)).toBeCloseTo(1 / (4 + 1e-6), 12);
    expect(clipScale(0.5, 1)).toBe(1);
    expect(clipScale(100, 0)).toBe(1);
  });
});

describe('learning-rate schedule', () => {
  const warmupCosine = { warmupFraction: 0.1, decay: 'cosine' as const, unit: 'step' as const, minLr: 0 };

  it('warms up linearly, then decays along a cosine to minLr', () => {
    const lr = (step: number) => learningRate(warmupCosine, 1, step, 10, 10); // 100 steps, 10 of warm-up
    expect(lr(0)).toBeCloseTo(0.1);
    expect(lr(9)).toBeCloseTo(1);
    expect(lr(10)).toBeCloseTo(1);
    expect(lr(55)).toBeCloseTo(0.5);
    expect(lr(100)).toBeCloseTo(0);
  });

  it('steps once per epoch with unit "epoch" (CosineAnnealingLR, T_max = epochs)', () => {
    const config = { warmupFraction: 0, decay: 'cosine' as const, unit: 'epoch' as const, minLr: 0 };
    const lr = (step: number) => learningRate(config, 1e-3, step, 5, 4);
    // 12 digits: toBeCloseTo's default (2) could not tell rates of order 1e-3 apart.
    expect(lr(0)).toBeCloseTo(1e-3, 12);
    expect(lr(4)).toBeCloseTo(1e-3, 12);
    expect(lr(5)).toBeCloseTo(1e-3 * 0.5 * (1 + Math.cos(Math.PI / 4)), 12);
    expect(lr(19)).toBeCloseTo(1e-3 * 0.5 * (1 + Math.cos((3 * Math.PI) / 4)), 12);
  });

  it('decays to minLr, not to 0, and holds the base rate after warm-up with decay "constant"', () => {
    const toMin = (step: number) => learningRate({ ...warmupCosine, minLr: 0.2 }, 1, step, 10, 10);
    expect(toMin(10)).toBeCloseTo(1, 12);
    expect(toMin(55)).toBeCloseTo(0.6, 12);
    expect(toMin(100)).toBeCloseTo(0.2, 12);
    const constant = (step: number) => learningRate({ ...warmupCosine, decay: 'constant' }, 1, step, 10, 10);
    expect(constant(0)).toBeCloseTo(0.1, 12);
    expect([10, 55, 99].map(constant)).toEqual([1, 1, 1]);
  });
});
