// The whole training step as one ONNX graph: forward through both towers (dropout masks fed in), the loss
// (symmetric InfoNCE with the model's temperature + weighted triplet on cosine distance against one explicit
// negative per row), the backward pass (derived by the tape, src/onnx/tape.ts), grad-norm clipping and the fused
// Adam/AdamW update of the flat parameter vector. Parameters and moments go in and come out each step.
// The math is the wasm engine's (gradients.ts, losses.ts, optimizer.ts) op for op; only the explicit-negative
// and no-negative cases are built (in-batch-hard mining and false-negative masking are not).
import { Tape, type Value } from '../../onnx/tape.js';
import { Dropout, GELU, LayerNorm, Linear, ReLU, ResidualBlock, Sequential, type Layer } from '../../model/layers.js';
import type { TwoTower, Tower } from '../../model/two-tower.js';
import type { LossWeights } from '../losses.js';
import type { OptimizerConfig } from '../optimizer.js';

export interface StepGraphOptions {
  batchSize: number;
  /** One explicit negative per row (a second pass of the product tower, the triplet term). */
  explicit: boolean;
  /** Dropout on (masks are graph inputs). */
  dropout: boolean;
  loss: LossWeights;
  optimizer: OptimizerConfig;
}

/** A dropout site's mask input: the layer's key, which tower rows it sees, its shape. */
export interface MaskInput {
  input: string;
  site: Dropout;
  tower: Tower;
  rows: number;
  cols: number;
}

export interface StepGraph {
  model: Uint8Array;
  masks: MaskInput[];
}

// Flushing moments below this to zero, as FlatAdam does.
const FLUSH_BELOW = 1e-30;

export function buildStepGraph(model: TwoTower, options: StepGraphOptions): StepGraph {
  const { batchSize: B, explicit, loss, optimizer } = options;
  const { spec, layout } = model;
  const t = new Tape('train_step');
  const g = t.graph;
  const P = layout.size;

  const flat = t.input('params', [P], true);
  const m = g.input('m', 'float32', [P]);
  const v = g.input('v', 'float32', [P]);
  const pieces = t.split(
    flat,
    layout.entries.map((e) => e.shape),
  );
  const param = (name: string) => pieces[layout.entries.indexOf(layout.get(name))];

  const productRows = explicit ? 2 * B : B;
  const scenesIn = t.input('scenes', [B, spec.inputDim]);
  const productsIn = t.input('products', [productRows, spec.inputDim]);

  const masks: MaskInput[] = [];
  const layer = (l: Layer, x: Value, tower: Tower): Value => {
    if (l instanceof Linear) return t.linear(x, param(l.weight.name), param(l.bias.name));
    if (l instanceof LayerNorm) return t.layerNorm(x, param(l.weight.name), param(l.bias.name));
    if (l === GELU) return t.gelu(x);
    if (l === ReLU) return t.relu(x);
    if (l instanceof Dropout) {
      if (!options.dropout || l.rate === 0) return x;
      const [rows, cols] = x.shape;
      const mask = t.input(`mask:${l.name}`, [rows, cols]);
      masks.push({ input: mask.name, site: l, tower, rows, cols });
      return t.mul(x, mask);
    }
    if (l instanceof ResidualBlock)
      return t.layerNorm(t.add(x, sequence(l.net, x, tower, 0)), param(l.norm.weight.name), param(l.norm.bias.name));
    if (l instanceof Sequential) return sequence(l, x, tower, 0);
    throw new Error(`the ort engine cannot build a ${l.constructor.name} layer`);
  };
  const sequence = (s: Sequential, x: Value, tower: Tower, from: number): Value => {
    for (let i = from; i < s.layers.length; i++) x = layer(s.layers[i], x, tower);
    return x;
  };
  const towerOf = (tower: Tower, x: Value, extra: Value | null): Value => {
    const { input, layers } = model.towers[tower];
    const [w, b] = [param(input.weight.name), param(input.bias.name)];
    const first = extra ? t.inputLinear(x, extra, w, b) : t.linear(x, w, b);
    // Normalised here either way: the loss wants unit rows (gradients.ts does the same when the model does not).
    return t.l2Normalize(sequence(layers, first, tower, 1));
  };

  let category: Value | null = null;
  if (model.categoryEmbedding) {
    const oneHot = t.input('categories', [productRows, model.categoryEmbedding.count]);
    category = t.matMul(oneHot, param(model.categoryEmbedding.weight.name));
  }
  const scenes = towerOf('scene', scenesIn, null);
  const encoded = towerOf('product', productsIn, category);
  const [products, negatives] = explicit ? t.splitRows(encoded, B) : [encoded, null];

  const temp = spec.temperature;
  const temperature = !model.temperatureParam
    ? t.scalar(temp.init)
    : temp.parametrisation === 'raw'
      ? param(model.temperatureParam.name)
      : t.clip(t.exp(param(model.temperatureParam.name)), temp.min, temp.max);

  const positiveSims = t.rowDot(scenes, products);
  let total: Value | null = null;
  const addTerm = (term: Value, weight: number) => {
    const weighted = t.scale(term, weight);
    total = total ? t.add(total, weighted) : weighted;
  };
  let infonce: Value = t.scalar(0);
  if (loss.infonce > 0) {
    const logits = t.div(t.matMul(scenes, products, true), temperature);
    const diagonal = t.div(positiveSims, temperature);
    const rows = t.mean(t.sub(t.logSumExp(logits, 1), diagonal));
    const cols = t.mean(t.sub(t.logSumExp(logits, 0), diagonal));
    infonce = t.scale(t.add(rows, cols), 0.5);
    addTerm(infonce, loss.infonce);
  }
  let triplet: Value = t.scalar(0);
  if (loss.triplet > 0 && negatives) {
    // Rows without a negative have valid 0; `tripletScale` is 1 / (rows with one), or 0 when none has.
    const valid = t.input('valid', [B]);
    const scale = t.input('triplet_scale', []);
    const hinge = t.relu(t.add(t.sub(t.rowDot(scenes, negatives), positiveSims), t.scalar(loss.margin)));
    triplet = t.mul(t.sum(t.mul(hinge, valid)), scale);
    addTerm(triplet, loss.triplet);
  }
  if (!total) throw new Error('the ort engine needs a loss: both loss weights are 0');
  const [grad] = t.backward(total, [flat]);

  // Clipping and the update, as optimizer.ts (clipScale, FlatAdam.update) with the step's scalars fed in.
  const scalarIn = (name: string) => g.input(name, 'float32', []);
  const [stepSize, invRootBias2, decay] = ['step_size', 'inv_root_bias2', 'decay'].map(scalarIn);
  const c = (x: number) => g.float32([x], []);
  const op = (type: string, inputs: string[], attrs = {}) => g.op(type, inputs, attrs);
  const gradNorm = op('Sqrt', [op('ReduceSumSquare', [grad], { keepdims: 0 })]);
  const clipScale =
    optimizer.gradClip > 0
      ? op('Min', [c(1), op('Div', [c(optimizer.gradClip), op('Add', [gradNorm, c(1e-6)])])])
      : c(1);
  const [b1, b2] = optimizer.betas;
  let gi = op('Mul', [grad, clipScale]);
  if (optimizer.kind === 'adam' && optimizer.weightDecay > 0)
    gi = op('Add', [gi, op('Mul', [flat.name, c(optimizer.weightDecay)])]);
  const mi = op('Add', [op('Mul', [m, c(b1)]), op('Mul', [gi, c(1 - b1)])]);
  const vi = op('Add', [op('Mul', [v, c(b2)]), op('Mul', [op('Mul', [gi, gi]), c(1 - b2)])]);
  const zero = c(0);
  const flushed = (x: string, magnitude: string) => op('Where', [op('Less', [magnitude, c(FLUSH_BELOW)]), zero, x]);
  g.op('Identity', [flushed(mi, op('Abs', [mi]))], {}, 'm_out');
  g.op('Identity', [flushed(vi, vi)], {}, 'v_out');
  const denominator = op('Add', [op('Mul', [op('Sqrt', [vi]), invRootBias2]), c(optimizer.eps)]);
  const update = op('Div', [op('Mul', [mi, stepSize]), denominator]);
  g.op('Sub', [op('Mul', [flat.name, decay]), update], {}, 'params_out');
  for (const name of ['params_out', 'm_out', 'v_out']) g.output(name, 'float32', [P]);
  g.op('Identity', [gradNorm], {}, 'grad_norm');
  g.output('grad_norm', 'float32', []);
  t.output(total, 'loss');
  t.output(infonce, 'infonce');
  t.output(triplet, 'triplet');
  t.output(temperature, 'temperature');
  return { model: g.encode(), masks };
}
