// Layers that declare their parameters and use them in one place. A layer is built in a Scope (a name prefix
// plus the list of parameter declarations of the whole model); its constructor declares each parameter under the
// PyTorch module path it has in the reference (`scene_encoder.0.weight`), and its `forward` reads the same
// declarations back from the named tensors P. A Sequential numbers its children as nn.Sequential does, layers
// without parameters (GELU, ReLU, Dropout) included, so the positional names come out as PyTorch's.
// The declarations become the flat ParamLayout (params.ts); init follows PyTorch's defaults.
import * as tf from '@tensorflow/tfjs';
import { keyedRandom } from '../util/random.js';
import { gelu, inputLinear, layerNorm, linear, matMul } from './ops.js';
import type { Init, ParamSpec } from './params.js';

/** Named parameter tensors of one forward pass (ParamLayout.named). */
export type Weights = Record<string, tf.Tensor>;

/** Training-time dropout: masks are a function of (seed, step, layer, global row). Null = evaluation. */
export interface DropoutContext {
  seed: number;
  step: number;
  /** Global row index in the step's batch of each row of this call, so sharded batches draw the same masks. */
  rowIds: ArrayLike<number>;
}

/** One declared parameter: its full name, and a typed read of its tensor. */
export class Param<T extends tf.Tensor> {
  constructor(readonly name: string) {}

  of(P: Weights): T {
    const t = P[this.name];
    if (!t) throw new Error(`no tensor for parameter ${this.name}`);
    return t as T;
  }
}

/** Where a layer declares its parameters: a name prefix and the model's list of declarations. */
export class Scope {
  private constructor(
    readonly specs: ParamSpec[],
    readonly prefix: string,
  ) {}

  static root(): Scope {
    return new Scope([], '');
  }

  child(name: string): Scope {
    return new Scope(this.specs, this.prefix ? `${this.prefix}.${name}` : name);
  }

  /** Declare a parameter; `transposed` marks linear weights (ours [in, out], PyTorch's [out, in]). */
  param<T extends tf.Tensor>(name: string, shape: number[], init: Init, transposed = false): Param<T> {
    const full = this.child(name).prefix;
    if (this.specs.some((s) => s.name === full)) throw new Error(`parameter ${full} declared twice`);
    this.specs.push({ name: full, shape, transposed, init });
    return new Param<T>(full);
  }
}

/** A layer of a tower: [rows, in] → [rows, out]. */
export interface Layer {
  forward(P: Weights, x: tf.Tensor2D, ctx: DropoutContext | null): tf.Tensor2D;
}

/** nn.Linear(in, out): weight stored [in, out] here; PyTorch's init U(±1/sqrt(in)) for weight and bias. */
export class Linear implements Layer {
  readonly weight: Param<tf.Tensor2D>;
  readonly bias: Param<tf.Tensor1D>;

  constructor(scope: Scope, inDim: number, outDim: number) {
    const init: Init = { kind: 'uniform', bound: 1 / Math.sqrt(inDim) };
    this.weight = scope.param('weight', [inDim, outDim], init, true);
    this.bias = scope.param('bias', [outDim], init);
  }

  forward(P: Weights, x: tf.Tensor2D): tf.Tensor2D {
    return linear(x, this.weight.of(P), this.bias.of(P));
  }

  /** As the first layer of a tower: x is input data (no gradient), `extra` (a category embedding, concatenated
   * after x) is not. */
  forwardInput(P: Weights, x: tf.Tensor2D, extra: tf.Tensor2D | null): tf.Tensor2D {
    return inputLinear(x, extra, this.weight.of(P), this.bias.of(P));
  }
}

/** nn.LayerNorm(dim): weight 1, bias 0. */
export class LayerNorm implements Layer {
  readonly weight: Param<tf.Tensor1D>;
  readonly bias: Param<tf.Tensor1D>;

  constructor(scope: Scope, dim: number) {
    this.weight = scope.param('weight', [dim], { kind: 'constant', value: 1 });
    this.bias = scope.param('bias', [dim], { kind: 'constant', value: 0 });
  }

  forward(P: Weights, x: tf.Tensor2D): tf.Tensor2D {
    return layerNorm(x, this.weight.of(P), this.bias.of(P));
  }
}

/** nn.Embedding(count, dim): N(0, 1) rows. Read by a one-hot matMul (tf.gather's gradient needs a kernel the wasm
 * backend lacks). */
export class Embedding {
  readonly weight: Param<tf.Tensor2D>;

  constructor(
    scope: Scope,
    readonly count: number,
    dim: number,
  ) {
    this.weight = scope.param('weight', [count, dim], { kind: 'normal', std: 1 });
  }

  forward(P: Weights, ids: Int32Array): tf.Tensor2D {
    const oneHot = new Float32Array(ids.length * this.count);
    ids.forEach((k, i) => (oneHot[i * this.count + k] = 1));
    return matMul(tf.tensor2d(oneHot, [ids.length, this.count]), this.weight.of(P));
  }
}

export const GELU: Layer = { forward: (_P, x) => gelu(x) };
export const ReLU: Layer = { forward: (_P, x) => tf.relu(x) };

/** nn.Dropout(rate), inverted. The mask of a call is keyed by the layer's name, so every site draws its own. */
export class Dropout implements Layer {
  /** The key of this site's masks (its module path). */
  readonly name: string;

  constructor(
    scope: Scope,
    readonly rate: number,
  ) {
    this.name = scope.prefix;
  }

  forward(_P: Weights, x: tf.Tensor2D, ctx: DropoutContext | null): tf.Tensor2D {
    if (!ctx || this.rate === 0) return x;
    const [rows, cols] = x.shape;
    if (rows !== ctx.rowIds.length) throw new Error(`dropout: ${rows} rows but ${ctx.rowIds.length} row ids`);
    return tf.mul(
      x,
      tf.tensor2d(dropoutMask([ctx.seed, ctx.step, this.name], ctx.rowIds, cols, this.rate), [rows, cols]),
    );
  }
}

/**
 * An inverted-dropout mask for rows whose global indices in the step's batch are `rowIds`: entries are 0
 * (dropped, with probability `rate`) or 1/(1-rate) — or 1 in a byte mask, which the caller scales (a quarter of
 * the bytes to move to a GPU). Row r's entries depend only on (key, global row).
 * Written into `mask` when given (a buffer reused from step to step).
 */
export function dropoutMask(
  key: (number | string)[],
  rowIds: ArrayLike<number>,
  cols: number,
  rate: number,
  mask: Float32Array | Uint8Array = new Float32Array(rowIds.length * cols),
): typeof mask {
  const threshold = Math.floor(rate * 2 ** 32);
  const keep = mask instanceof Uint8Array ? 1 : 1 / (1 - rate);
  for (let r = 0; r < rowIds.length; r++)
    keyedRandom(...key, rowIds[r]).fillMask(mask, r * cols, cols, threshold, keep);
  return mask;
}

/** nn.Sequential: children named 0, 1, 2, … in the order added. */
export class Sequential implements Layer {
  readonly layers: Layer[] = [];

  constructor(private readonly scope: Scope) {}

  /** Add the next child, built in its scope (`prefix.<index>`). */
  add<L extends Layer>(make: (scope: Scope) => L): L {
    const layer = make(this.scope.child(String(this.layers.length)));
    this.layers.push(layer);
    return layer;
  }

  /** Run the children from index `from` on. */
  forward(P: Weights, x: tf.Tensor2D, ctx: DropoutContext | null, from = 0): tf.Tensor2D {
    for (let i = from; i < this.layers.length; i++) x = this.layers[i].forward(P, x, ctx);
    return x;
  }
}

/** The reference's ResidualBlock: net = Sequential(Linear, LayerNorm, GELU, Dropout, Linear, Dropout);
 * x → norm(x + net(x)). */
export class ResidualBlock implements Layer {
  readonly net: Sequential;
  readonly norm: LayerNorm;

  constructor(scope: Scope, dim: number, dropout: number) {
    this.net = new Sequential(scope.child('net'));
    this.net.add((s) => new Linear(s, dim, dim));
    this.net.add((s) => new LayerNorm(s, dim));
    this.net.add(() => GELU);
    this.net.add((s) => new Dropout(s, dropout));
    this.net.add((s) => new Linear(s, dim, dim));
    this.net.add((s) => new Dropout(s, dropout));
    this.norm = new LayerNorm(scope.child('norm'), dim);
  }

  forward(P: Weights, x: tf.Tensor2D, ctx: DropoutContext | null): tf.Tensor2D {
    return this.norm.forward(P, tf.add(x, this.net.forward(P, x, ctx)));
  }
}
