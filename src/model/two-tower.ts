// The two towers of the reference project, built from the config: a scene tower and a product tower that map
// image embeddings into one space where a scene's products score high.
//
// Parameter names are the reference PyTorch state_dict keys, so a checkpoint loads into the reference classes
// with `load_state_dict` (linear weights transposed to [out, in] on the way out, see params.ts):
//
// v1, per tower T in {scene_encoder, product_encoder}: nn.Sequential(Linear(in, hidden), ReLU, Dropout(p),
//     Linear(hidden, out)) → T.0.weight [hidden, in], T.0.bias, T.3.weight [out, hidden], T.3.bias;
//     plus log_temperature [] (scalar).
// v2, per tower T: input = nn.Sequential(Linear(in', hidden), LayerNorm, GELU, Dropout) → T.input.0.{weight,bias},
//     T.input.1.{weight,bias}; blocks = ModuleList of ResidualBlock(fc1, norm1, fc2, norm2) computing
//     x → norm2(x + Dropout(fc2(Dropout(GELU(norm1(fc1(x))))))) → T.blocks.{i}.{fc1,norm1,fc2,norm2}.{weight,bias};
//     output = Linear(hidden, out) → T.output.{weight,bias}. The product tower's in' = in + categoryDim: its input
//     is [embedding, category_embedding(category)]; category_embedding.weight [categories, categoryDim];
//     log_temperature [] (scalar).
// bench/train/torch_two_tower.py defines these classes.
import * as tf from '@tensorflow/tfjs';
import { gelu, inputLinear, l2Normalize, layerNorm, linear, matMul } from './ops.js';
import { ParamLayout, layerNormParams, linearParams, type ParamSpec } from './params.js';
import { dropoutMask, hashKey } from './random.js';
import type { ModelConfig } from './config.js';

/** The config plus what the data decides: input width and category count. */
export interface ModelSpec extends ModelConfig {
  inputDim: number;
  numCategories: number;
}

export type Tower = 'scene' | 'product';
const TOWER_PREFIX: Record<Tower, string> = { scene: 'scene_encoder', product: 'product_encoder' };

/** Training-time dropout: masks are a function of (seed, step, tower, site, global row). Null = evaluation. */
export interface DropoutContext {
  seed: number;
  step: number;
  /** Global row index in the step's batch of each row of this call, so sharded batches draw the same masks. */
  rowIds: ArrayLike<number>;
}

export function paramSpecs(spec: ModelSpec): ParamSpec[] {
  const specs: ParamSpec[] = [];
  for (const tower of ['scene', 'product'] as Tower[]) {
    const t = TOWER_PREFIX[tower];
    const inDim = spec.inputDim + (tower === 'product' ? spec.categoryDim : 0);
    if (spec.arch === 'v1') {
      specs.push(...linearParams(`${t}.0`, inDim, spec.hidden), ...linearParams(`${t}.3`, spec.hidden, spec.out));
      continue;
    }
    specs.push(...linearParams(`${t}.input.0`, inDim, spec.hidden), ...layerNormParams(`${t}.input.1`, spec.hidden));
    for (let i = 0; i < spec.blocks; i++) {
      const b = `${t}.blocks.${i}`;
      specs.push(
        ...linearParams(`${b}.fc1`, spec.hidden, spec.hidden),
        ...layerNormParams(`${b}.norm1`, spec.hidden),
        ...linearParams(`${b}.fc2`, spec.hidden, spec.hidden),
        ...layerNormParams(`${b}.norm2`, spec.hidden),
      );
    }
    specs.push(...linearParams(`${t}.output`, spec.hidden, spec.out));
  }
  if (spec.categoryDim > 0) {
    specs.push({
      name: 'category_embedding.weight',
      shape: [spec.numCategories, spec.categoryDim],
      transposed: false,
      init: { kind: 'normal', std: 1 },
    });
  }
  if (spec.temperature.learnable) {
    specs.push({
      name: 'log_temperature',
      shape: [],
      transposed: false,
      init: { kind: 'constant', value: Math.log(spec.temperature.init) },
    });
  }
  return specs;
}

export class TwoTower {
  readonly layout: ParamLayout;

  constructor(readonly spec: ModelSpec) {
    this.layout = new ParamLayout(paramSpecs(spec));
  }

  /** Scene embeddings [n, inputDim] → [n, out]. */
  encodeScenes(P: Record<string, tf.Tensor>, x: tf.Tensor2D, ctx: DropoutContext | null): tf.Tensor2D {
    return this.tower('scene', P, x, null, ctx);
  }

  /** Product embeddings [n, inputDim] and categories → [n, out]. The category table is read by a one-hot matMul
   * (tf.gather's gradient needs a kernel the wasm backend lacks). */
  encodeProducts(
    P: Record<string, tf.Tensor>,
    x: tf.Tensor2D,
    categories: Int32Array,
    ctx: DropoutContext | null,
  ): tf.Tensor2D {
    let category: tf.Tensor2D | null = null;
    if (this.spec.categoryDim > 0) {
      const c = this.spec.numCategories;
      const oneHot = new Float32Array(categories.length * c);
      categories.forEach((k, i) => (oneHot[i * c + k] = 1));
      category = matMul(tf.tensor2d(oneHot, [categories.length, c]), P['category_embedding.weight'] as tf.Tensor2D);
    }
    return this.tower('product', P, x, category, ctx);
  }

  /** The softmax temperature, clamped to [min, max]. */
  temperature(P: Record<string, tf.Tensor>): tf.Scalar {
    const { init, min, max, learnable } = this.spec.temperature;
    return learnable ? (tf.clipByValue(tf.exp(P['log_temperature']), min, max) as tf.Scalar) : tf.scalar(init);
  }

  /** One tower; `extra` (the category embedding) is concatenated to the input x. */
  private tower(
    tower: Tower,
    P: Record<string, tf.Tensor>,
    x: tf.Tensor2D,
    extra: tf.Tensor2D | null,
    ctx: DropoutContext | null,
  ): tf.Tensor2D {
    const t = TOWER_PREFIX[tower];
    const lin = (h: tf.Tensor2D, name: string) =>
      linear(h, P[`${name}.weight`] as tf.Tensor2D, P[`${name}.bias`] as tf.Tensor1D);
    const first = (name: string) =>
      inputLinear(x, extra, P[`${name}.weight`] as tf.Tensor2D, P[`${name}.bias`] as tf.Tensor1D);
    const norm = (h: tf.Tensor2D, name: string) =>
      layerNorm(h, P[`${name}.weight`] as tf.Tensor1D, P[`${name}.bias`] as tf.Tensor1D);
    let site = 0;
    const drop = (h: tf.Tensor2D): tf.Tensor2D => {
      site++;
      if (!ctx || this.spec.dropout === 0) return h;
      const [rows, cols] = h.shape;
      if (rows !== ctx.rowIds.length) throw new Error(`dropout: ${rows} rows but ${ctx.rowIds.length} row ids`);
      const key = hashKey(ctx.seed, ctx.step, tower, site);
      return tf.mul(h, tf.tensor2d(dropoutMask(key, ctx.rowIds, cols, this.spec.dropout), [rows, cols]));
    };

    let h: tf.Tensor2D;
    if (this.spec.arch === 'v1') {
      h = lin(drop(tf.relu(first(`${t}.0`))), `${t}.3`);
    } else {
      h = drop(gelu(norm(first(`${t}.input.0`), `${t}.input.1`)));
      for (let i = 0; i < this.spec.blocks; i++) {
        const b = `${t}.blocks.${i}`;
        const r = drop(lin(drop(gelu(norm(lin(h, `${b}.fc1`), `${b}.norm1`))), `${b}.fc2`));
        h = norm(tf.add(h, r), `${b}.norm2`);
      }
      h = lin(h, `${t}.output`);
    }
    return this.spec.normalize ? l2Normalize(h) : h;
  }
}
