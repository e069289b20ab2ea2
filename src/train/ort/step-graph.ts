// The whole training step as one ONNX graph: forward through both towers (dropout masks fed in), the loss
// (symmetric InfoNCE with the model's temperature + weighted triplet on cosine distance against one explicit
// negative per row), the backward pass (derived by the tape, src/onnx/tape.ts), grad-norm clipping and the fused
// Adam/AdamW update. The parameters and both moments go in and come out as three flat vectors in the layout's
// order: each parameter tensor is a slice of the first, and the gradients are concatenated into one vector, so
// the norm and the update are a dozen kernels whatever the number of tensors (a GPU pays for each kernel).
// The math is the wasm engine's (gradients.ts, losses.ts, optimizer.ts) op for op, every negatives strategy and
// false-negative masking included.
import type { OnnxGraph } from '../../onnx/graph.js';
import { Tape, type Value } from '../../onnx/tape.js';
import { Dropout, GELU, LayerNorm, Linear, ReLU, ResidualBlock, Sequential, type Layer } from '../../model/layers.js';
import { LAYER_NORM_EPS, NORMALIZE_EPS } from '../../model/ops.js';
import type { TwoTower, Tower } from '../../model/two-tower.js';
import type { LossWeights } from '../losses.js';
import { paramTensors } from './flat-params.js';
import type { OptimizerConfig } from '../optimizer.js';

export interface StepGraphOptions {
  batchSize: number;
  /** Rows of the scene and product matrices the batch's rows are gathered from. */
  sceneRows: number;
  productRows: number;
  /** One explicit negative per row (a second pass of the product tower, the triplet term). */
  explicit: boolean;
  /** In-batch-hard negatives: each row's triplet negative is its hardest allowed batch product (a [B, B] input). */
  inBatchHard: boolean;
  /** False negatives taken out of InfoNCE's softmaxes (a [B, B] input). */
  falseNegatives: boolean;
  /** Dropout on (masks are graph inputs). */
  dropout: boolean;
  /** Masks as 0/1 bytes scaled in the graph: a quarter of the bytes where they cross a bus to a GPU (on the CPU
   * the two extra passes cost more than they save). */
  maskBytes: boolean;
  loss: LossWeights;
  optimizer: OptimizerConfig;
}

/** A dropout site's mask input: the layer (its name keys the mask), its shape. */
export interface MaskInput {
  input: string;
  site: Dropout;
  rows: number;
  cols: number;
  /** 0/1 bytes (`maskBytes`), else float32 values 0 or 1/(1-rate). */
  bytes: boolean;
}

/** The step's flat state: inputs and, in the same order, the outputs that replace them. */
export const STATE_INPUTS = ['params', 'm', 'v'] as const;
export const STATE_OUTPUTS = ['params_out', 'm_out', 'v_out'] as const;

export interface StepGraph {
  model: Uint8Array;
  masks: MaskInput[];
}

export function buildStepGraph(model: TwoTower, options: StepGraphOptions): StepGraph {
  const { batchSize: B, explicit, loss, optimizer } = options;
  const { spec, layout } = model;
  const t = new Tape('train_step');
  const g = t.graph;

  const flatParams = g.input('params', 'float32', [layout.size]);
  const tensor = paramTensors(g, layout, flatParams);
  const params = new Map(layout.entries.map((e) => [e.name, t.leaf(tensor(e.name), e.shape)]));
  const param = (name: string) => params.get(name)!;

  // The batch is gathered here from the whole matrices (resident on the device under WebGPU): a step feeds row
  // indices, not rows. Product rows are the positives, then (explicit) each row's negative.
  const productRows = explicit ? 2 * B : B;
  const gather = (matrix: string, rows: number, indices: string, count: number): Value => ({
    name: g.op('Gather', [g.input(matrix, 'float32', [rows, spec.inputDim]), g.input(indices, 'int32', [count])], {
      axis: 0,
    }),
    shape: [count, spec.inputDim],
    grad: false,
  });
  const scenesIn = gather('scene_matrix', options.sceneRows, 'scene_rows', B);
  const productsIn = gather('product_matrix', options.productRows, 'product_rows', productRows);

  const masks: MaskInput[] = [];
  const layer = (l: Layer, x: Value): Value => {
    if (l instanceof Linear) return t.linear(x, param(l.weight.name), param(l.bias.name));
    if (l instanceof LayerNorm) return t.layerNorm(x, param(l.weight.name), param(l.bias.name), LAYER_NORM_EPS);
    if (l === GELU) return t.gelu(x);
    if (l === ReLU) return t.relu(x);
    if (l instanceof Dropout) {
      if (!options.dropout || l.rate === 0) return x;
      const [rows, cols] = x.shape;
      const name = `mask:${l.name}`;
      if (!options.maskBytes) {
        masks.push({ input: name, site: l, rows, cols, bytes: false });
        return t.mul(x, t.input(name, [rows, cols]));
      }
      const input = g.input(name, 'uint8', [rows, cols]);
      masks.push({ input, site: l, rows, cols, bytes: true });
      const scaled = g.op('Mul', [g.cast(input, 'float32'), g.float32([1 / (1 - l.rate)], [])]);
      return t.mul(x, { name: scaled, shape: [rows, cols], grad: false });
    }
    if (l instanceof ResidualBlock)
      return t.layerNorm(
        t.add(x, sequence(l.net, x, 0)),
        param(l.norm.weight.name),
        param(l.norm.bias.name),
        LAYER_NORM_EPS,
      );
    if (l instanceof Sequential) return sequence(l, x, 0);
    throw new Error(`the ort engine cannot build a ${l.constructor.name} layer`);
  };
  const sequence = (s: Sequential, x: Value, from: number): Value => {
    for (let i = from; i < s.layers.length; i++) x = layer(s.layers[i], x);
    return x;
  };
  const towerOf = (tower: Tower, x: Value, extra: Value | null): Value => {
    const { input, layers } = model.towers[tower];
    const [w, b] = [param(input.weight.name), param(input.bias.name)];
    const first = extra ? t.inputLinear(x, extra, w, b) : t.linear(x, w, b);
    // Normalised here either way: the loss wants unit rows (gradients.ts does the same when the model does not).
    return t.l2Normalize(sequence(layers, first, 1), NORMALIZE_EPS);
  };

  let category: Value | null = null;
  if (model.categoryEmbedding) {
    const { count } = model.categoryEmbedding;
    const identity = g.float32(
      Array.from({ length: count * count }, (_, i) => (i % (count + 1) === 0 ? 1 : 0)),
      [count, count],
    );
    const ids = g.input('product_categories', 'int32', [productRows]);
    const oneHot = { name: g.op('Gather', [identity, ids], { axis: 0 }), shape: [productRows, count], grad: false };
    category = t.matMul(oneHot, param(model.categoryEmbedding.weight.name));
  }
  const scenes = towerOf('scene', scenesIn, null);
  const encoded = towerOf('product', productsIn, category);
  const [products, negatives] = explicit ? t.splitRows(encoded, B) : [encoded, null];
  // A [B, B] 0/1 matrix fed as bytes, as floats.
  const byteMatrix = (name: string) => g.cast(g.input(name, 'uint8', [B, B]), 'float32');

  const temp = spec.temperature;
  const temperature = !model.temperatureParam
    ? t.scalar(temp.init)
    : temp.parametrisation === 'raw'
      ? param(model.temperatureParam.name)
      : t.clip(t.exp(param(model.temperatureParam.name)), temp.min, temp.max);

  const positiveSims = t.rowDot(scenes, products);
  const hard = options.inBatchHard && loss.triplet > 0;
  const sims = loss.infonce > 0 || hard ? t.matMul(scenes, products, true) : null;
  let total: Value | null = null;
  const addTerm = (term: Value, weight: number) => {
    const weighted = t.scale(term, weight);
    total = total ? t.add(total, weighted) : weighted;
  };
  let infonce: Value = t.scalar(0);
  if (loss.infonce > 0) {
    let logits = t.div(sims!, temperature);
    if (options.falseNegatives) {
      // A false negative's logit drops by 1e9: out of both softmaxes, as losses.ts does (the diagonal never is one).
      const bias = g.op('Mul', [byteMatrix('false_negatives'), g.float32([-1e9], [])]);
      logits = t.add(logits, { name: bias, shape: [B, B], grad: false });
    }
    const diagonal = t.div(positiveSims, temperature);
    const rows = t.mean(t.sub(t.logSumExp(logits, 1), diagonal));
    const cols = t.mean(t.sub(t.logSumExp(logits, 0), diagonal));
    infonce = t.scale(t.add(rows, cols), 0.5);
    addTerm(infonce, loss.infonce);
  }
  // Each row's allowed column of highest similarity, the first of equals as hardestAllowed picks it (disallowed
  // columns pushed 1e9 down), as a one-hot row that picks its similarity as pickColumns does; rows with none
  // allowed have valid 0. Built from float compares, not ArgMax: the WebGPU provider has no int64 Equal or Cast.
  const hardestAllowed = (sims: Value): Value => {
    const isRowMax = (x: string) =>
      g.cast(g.op('Equal', [x, g.op('ReduceMax', [x], { axes: [1], keepdims: 1 })]), 'float32');
    const disallowed = g.op('Sub', [g.float32([1], []), byteMatrix('hard_candidates')]);
    const pushed = g.op('Sub', [sims.name, g.op('Mul', [disallowed, g.float32([1e9], [])])]);
    // Among a row's maxima, the one of lowest column has the highest B - column.
    const lowFirst = g.float32(Array.from({ length: B }, (_, j) => B - j));
    const oneHot = isRowMax(g.op('Mul', [isRowMax(pushed), lowFirst]));
    return t.rowDot(sims, { name: oneHot, shape: [B, B], grad: false });
  };
  const negativeSims =
    loss.triplet <= 0 ? null : negatives ? t.rowDot(scenes, negatives) : hard ? hardestAllowed(sims!) : null;
  let triplet: Value = t.scalar(0);
  if (negativeSims) {
    // Rows without a negative have valid 0; `tripletScale` is 1 / (rows with one), or 0 when none has.
    const valid = t.input('valid', [B]);
    const scale = t.input('triplet_scale', []);
    const hinge = t.relu(t.add(t.sub(negativeSims, positiveSims), t.scalar(loss.margin)));
    triplet = t.mul(t.sum(t.mul(hinge, valid)), scale);
    addTerm(triplet, loss.triplet);
  }
  if (!total) throw new Error('the ort engine needs a loss: both loss weights are 0');
  const grads = t.backward(total, [...params.values()]);

  const gradNorm = appendClipAndAdam(g, grads, flatParams, layout.size, optimizer);
  for (const name of STATE_OUTPUTS) g.output(name, 'float32', [layout.size]);
  g.op('Identity', [gradNorm], {}, 'grad_norm');
  g.output('grad_norm', 'float32', []);
  t.output(total, 'loss');
  t.output(infonce, 'infonce');
  t.output(triplet, 'triplet');
  t.output(temperature, 'temperature');
  return { model: g.encode(), masks };
}

/**
 * Clipping and the update, as optimizer.ts (clipScale, FlatAdam.update) with the step's scalars fed in and folded:
 * m' = b1·m + (1-b1)·s·g, v' = b2·v + (1-b2)·s²·g², p' = decay·p - stepSize·m' / (√v'·invRootBias2 + eps), into the
 * outputs m_out, v_out and params_out. Moments are not flushed below 1e-30 by hand: the session sets denormals to
 * zero. Returns the gradient norm's name (before clipping).
 */
function appendClipAndAdam(
  g: OnnxGraph,
  grads: string[],
  flatParams: string,
  size: number,
  optimizer: OptimizerConfig,
): string {
  const op = (type: string, inputs: string[], attrs = {}) => g.op(type, inputs, attrs);
  const c = (x: number) => g.float32([x], []);
  const scalarIn = (name: string) => g.input(name, 'float32', []);
  const [stepSize, invRootBias2, decay] = ['step_size', 'inv_root_bias2', 'decay'].map(scalarIn);
  const gradient = op(
    'Concat',
    grads.map((d) => op('Reshape', [d, g.int64s([-1])])),
    { axis: 0 },
  );
  const gradNorm = op('Sqrt', [op('ReduceSumSquare', [gradient], { keepdims: 0 })]);
  const scale =
    optimizer.gradClip > 0
      ? op('Min', [c(1), op('Div', [c(optimizer.gradClip), op('Add', [gradNorm, c(1e-6)])])])
      : c(1);
  const [b1, b2] = optimizer.betas;
  const mScale = op('Mul', [scale, c(1 - b1)]);
  const vScale = op('Mul', [op('Mul', [scale, scale]), c(1 - b2)]);
  const l2 = optimizer.kind === 'adam' && optimizer.weightDecay > 0 ? optimizer.weightDecay : 0;
  const [m, v] = ['m', 'v'].map((kind) => g.input(kind, 'float32', [size]));
  // Adam's (not AdamW's) weight decay adds l2·p to the clipped gradient: unfolded, a few more passes.
  const withL2 = (factor: string, power: 1 | 2) => {
    if (!l2) return op('Mul', [power === 1 ? gradient : op('Mul', [gradient, gradient]), factor]);
    const gi = op('Add', [op('Mul', [gradient, scale]), op('Mul', [flatParams, c(l2)])]);
    return op('Mul', [power === 1 ? gi : op('Mul', [gi, gi]), c(power === 1 ? 1 - b1 : 1 - b2)]);
  };
  g.op('Add', [op('Mul', [m, c(b1)]), withL2(mScale, 1)], {}, 'm_out');
  g.op('Add', [op('Mul', [v, c(b2)]), withL2(vScale, 2)], {}, 'v_out');
  const denominator = op('Add', [op('Mul', [op('Sqrt', ['v_out']), invRootBias2]), c(optimizer.eps)]);
  g.op(
    'Sub',
    [op('Mul', [flatParams, decay]), op('Div', [op('Mul', ['m_out', stepSize]), denominator])],
    {},
    'params_out',
  );
  return gradNorm;
}
