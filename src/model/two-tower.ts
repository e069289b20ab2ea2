// The two towers of the reference project, built from the config: a scene tower and a product tower that map
// image embeddings into one space where a scene's products score high.
//
// Parameter names and layouts are the reference's PyTorch state_dict (CTLModel, CTLModelV2), so a checkpoint
// loads into the reference classes with `load_state_dict(strict=True)` (linear weights transposed to [out, in] on
// the way out, see state-dict.ts). Each tower T in {scene_encoder, product_encoder} is an nn.Sequential:
//
// v1 (CTLModel): Linear(in, hidden), ReLU, Dropout, Linear(hidden, out) → T.0.*, T.3.*; the temperature is a raw
//     learnable scalar `temperature` (logits are divided by it as it is, no clamp).
// v2 (CTLModelV2): Linear(in', hidden), LayerNorm, GELU, Dropout, one ResidualBlock per index from 4, then
//     Linear(hidden, out) at index 4 + blocks → T.0.*, T.1.*, T.4.net.{0,1,4}.*, T.4.norm.*, …, T.6.* (two
//     blocks). The product tower's in' = in + categoryDim: its input is [embedding, category_embedding(category)];
//     category_embedding.weight [categories, categoryDim]; `log_temperature` (exp, clamped to [min, max]).
// bench/train/torch_two_tower.py declares these classes as the reference writes them.
import * as tf from '@tensorflow/tfjs';
import { l2Normalize } from './ops.js';
import { ParamLayout } from './params.js';
import { InputError } from '../util/errors.js';
import {
  Dropout,
  Embedding,
  GELU,
  LayerNorm,
  Linear,
  Param,
  ReLU,
  ResidualBlock,
  Scope,
  Sequential,
  type DropoutContext,
  type Weights,
} from './layers.js';
import type { ModelConfig } from './config.js';

/** The config plus what the data decides: input width and category count (rows of the category embedding). */
export interface ModelSpec extends ModelConfig {
  inputDim: number;
  numCategories: number;
}

export type Tower = 'scene' | 'product';

/** The most values a Float32Array holds (V8's limit): the parameters are one. */
const MAX_PARAMS = 2 ** 32;

/** A tower as the reference's nn.Sequential; its first layer is a Linear whose input is data. */
function buildTower(scope: Scope, spec: ModelSpec, inDim: number): { input: Linear; layers: Sequential } {
  const layers = new Sequential(scope);
  const input = layers.add((s) => new Linear(s, inDim, spec.hidden));
  if (spec.arch === 'v1') {
    layers.add(() => ReLU);
    layers.add((s) => new Dropout(s, spec.dropout));
    layers.add((s) => new Linear(s, spec.hidden, spec.out));
    return { input, layers };
  }
  layers.add((s) => new LayerNorm(s, spec.hidden));
  layers.add(() => GELU);
  layers.add((s) => new Dropout(s, spec.dropout));
  for (let i = 0; i < spec.blocks; i++) layers.add((s) => new ResidualBlock(s, spec.hidden, spec.dropout));
  layers.add((s) => new Linear(s, spec.hidden, spec.out));
  return { input, layers };
}

export class TwoTower {
  readonly layout: ParamLayout;
  /** The learnable temperature's parameter, or null when the temperature is fixed. */
  readonly temperatureParam: Param<tf.Scalar> | null;
  /** Parameters the loss reads directly rather than through the towers' rows (the learnable temperature). */
  readonly lossParamNames: readonly string[];
  /** Each tower's layers (its first is `input`), as the reference's nn.Sequential; read by the ONNX export and
   * the engines that build the step themselves (src/train/ort). */
  readonly towers: Record<Tower, { input: Linear; layers: Sequential }>;
  /** The product tower's category table (v2), or null. */
  readonly categoryEmbedding: Embedding | null;

  constructor(readonly spec: ModelSpec) {
    // Declared in the order of PyTorch's state_dict: the module's own parameter, then its children.
    const root = Scope.root();
    const t = spec.temperature;
    this.temperatureParam = !t.learnable
      ? null
      : t.parametrisation === 'raw'
        ? root.param('temperature', [], { kind: 'constant', value: t.init })
        : root.param('log_temperature', [], { kind: 'constant', value: Math.log(t.init) });
    this.categoryEmbedding =
      spec.categoryDim > 0
        ? new Embedding(root.child('category_embedding'), spec.numCategories, spec.categoryDim)
        : null;
    this.towers = {
      scene: buildTower(root.child('scene_encoder'), spec, spec.inputDim),
      product: buildTower(root.child('product_encoder'), spec, spec.inputDim + spec.categoryDim),
    };
    this.lossParamNames = this.temperatureParam ? [this.temperatureParam.name] : [];
    this.layout = new ParamLayout(root.specs);
    // Checked before anything is allocated: the parameters live in one Float32Array (and Adam's moments in two more).
    if (this.layout.size > MAX_PARAMS)
      throw new InputError(
        `model: ${this.layout.size.toLocaleString('en-US')} parameters (hidden ${spec.hidden}, out ${spec.out}, ` +
          `${spec.blocks} blocks, ${spec.inputDim}-d inputs): at most ${MAX_PARAMS.toLocaleString('en-US')} fit; ` +
          'lower model.hidden or model.blocks',
      );
  }

  /** Scene embeddings [n, inputDim] → [n, out]. */
  encodeScenes(P: Weights, x: tf.Tensor2D, ctx: DropoutContext | null): tf.Tensor2D {
    return this.tower('scene', P, x, null, ctx);
  }

  /** Product embeddings [n, inputDim] and category rows → [n, out]. */
  encodeProducts(P: Weights, x: tf.Tensor2D, categories: Int32Array, ctx: DropoutContext | null): tf.Tensor2D {
    const category = this.categoryEmbedding ? this.categoryEmbedding.forward(P, categories) : null;
    return this.tower('product', P, x, category, ctx);
  }

  /** The softmax temperature the logits are divided by. */
  temperature(P: Weights): tf.Scalar {
    const { init, min, max, parametrisation } = this.spec.temperature;
    if (!this.temperatureParam) return tf.scalar(init);
    const value = this.temperatureParam.of(P);
    return parametrisation === 'raw' ? value : (tf.clipByValue(tf.exp(value), min, max) as tf.Scalar);
  }

  /** One tower; `extra` (the category embedding) is concatenated to the input x. */
  private tower(
    tower: Tower,
    P: Weights,
    x: tf.Tensor2D,
    extra: tf.Tensor2D | null,
    ctx: DropoutContext | null,
  ): tf.Tensor2D {
    const { input, layers } = this.towers[tower];
    const h = layers.forward(P, input.forwardInput(P, x, extra), ctx, 1);
    return l2Normalize(h);
  }
}
