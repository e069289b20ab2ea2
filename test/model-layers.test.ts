// The layer helper: a layer's declarations are the names its forward reads, numbered as nn.Sequential numbers
// them; dropout masks are a function of (seed, step, layer, global row) only; init is seeded.
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { Dropout, GELU, LayerNorm, Linear, Scope, Sequential, dropoutMask } from '../src/model/layers.js';
import { ParamLayout } from '../src/model/params.js';
import { TwoTower } from '../src/model/two-tower.js';
import { TINY_V2 } from './model-fixtures.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

describe('Scope and Sequential', () => {
  it('name children by index, parameter-free layers included, and forward reads exactly those names', () => {
    const root = Scope.root();
    const seq = new Sequential(root.child('tower'));
    seq.add((s) => new Linear(s, 3, 4));
    seq.add(() => GELU);
    seq.add((s) => new Dropout(s, 0.5));
    seq.add((s) => new LayerNorm(s, 4));
    expect(root.specs.map((s) => [s.name, s.shape])).toEqual([
      ['tower.0.weight', [3, 4]],
      ['tower.0.bias', [4]],
      ['tower.3.weight', [4]],
      ['tower.3.bias', [4]],
    ]);
    const layout = new ParamLayout(root.specs);
    const tensors = layout.tensors(layout.initialise(1));
    const P = layout.named(tensors);
    const y = seq.forward(P, tf.ones([2, 3]) as tf.Tensor2D, null);
    expect(y.shape).toEqual([2, 4]);
    // A missing tensor is named, not read as undefined.
    delete P['tower.3.bias'];
    expect(() => seq.forward(P, tf.ones([2, 3]) as tf.Tensor2D, null)).toThrow('no tensor for parameter tower.3.bias');
    tf.dispose([...tensors, y]);
  });

  it('refuse a parameter declared twice', () => {
    const root = Scope.root();
    new Linear(root.child('a'), 2, 2);
    expect(() => new Linear(root.child('a'), 2, 2)).toThrow('parameter a.weight declared twice');
  });
});

describe('dropout and init', () => {
  it('draws the same mask for a row whatever batch or shard it is in', () => {
    const whole = dropoutMask([7, 3, 'x.2'], [0, 1, 2, 3], 16, 0.25);
    const shard = dropoutMask([7, 3, 'x.2'], [2, 3], 16, 0.25);
    expect(shard).toEqual(whole.subarray(2 * 16));
    expect(dropoutMask([7, 4, 'x.2'], [2, 3], 16, 0.25)).not.toEqual(shard);
    const kept = whole.filter((v) => v !== 0);
    expect(new Set(kept)).toEqual(new Set([Math.fround(1 / 0.75)]));
    expect(kept.length).toBeGreaterThan(32);
    expect(kept.length).toBeLessThan(64);
  });

  it('initialises every parameter from (seed, name): same seed same vector, PyTorch defaults', () => {
    const { layout } = new TwoTower(TINY_V2);
    const a = layout.initialise(3);
    expect(layout.initialise(3)).toEqual(a);
    expect(layout.initialise(4)).not.toEqual(a);
    const values = (name: string) => {
      const e = layout.get(name);
      return Array.from(a.subarray(e.offset, e.offset + e.size));
    };
    expect(values('scene_encoder.4.norm.weight').every((v) => v === 1)).toBe(true);
    expect(values('scene_encoder.0.weight').every((v) => Math.abs(v) <= 1 / Math.sqrt(5))).toBe(true);
    expect(values('log_temperature')[0]).toBeCloseTo(Math.log(0.07), 6);
  });

  it('refuses a model whose parameters would not fit one Float32Array, naming the sizes, before allocating', () => {
    expect(() => new TwoTower({ ...TINY_V2, hidden: 100_000, inputDim: 768 })).toThrow(
      /model: [\d,]+ parameters \(hidden 100000, .*768-d inputs\): at most 4,294,967,296 fit; lower model\.hidden/,
    );
  });
});

describe('TwoTower', () => {
  it('keeps a learnable log temperature within [min, max]', () => {
    const model = new TwoTower(TINY_V2); // min 0.01, max 1
    const entry = model.layout.get('log_temperature');
    const temperatureAt = (value: number) => {
      const params = model.layout.initialise(1);
      params[entry.offset] = Math.log(value);
      const tensors = model.layout.tensors(params);
      const t = model.temperature(model.layout.named(tensors));
      const out = t.dataSync()[0];
      tf.dispose([...tensors, t]);
      return out;
    };
    expect(temperatureAt(0.2)).toBeCloseTo(0.2, 6);
    expect(temperatureAt(5)).toBeCloseTo(1, 6);
    expect(temperatureAt(0.001)).toBeCloseTo(0.01, 6);
  });
});
