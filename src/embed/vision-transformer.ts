// A SigLIP-shaped vision tower as an ONNX graph, with deterministic pseudo-random weights:
//   pixel_values [N,3,S,S] → Conv patchify → tokens [N,T,D] + position embedding → pre-LN transformer blocks
//   → LayerNorm (= last_hidden_state) → mean over tokens → Linear (= pooler_output [N,P]).
// The same inputs and outputs as the vision_model.onnx that transformers.js exports for SigLIP, so it loads through
// the real `SiglipVisionModel` path. Small sizes make a test model; ViT-B/16 sizes give the real model's compute.
// Three formats, as a model repo ships them: fp32, fp16 (weights and arithmetic in half precision) and q8.
import { Float16Array } from '@petamoriken/float16';
import { OnnxGraph, float, type ElementType } from '../onnx/graph.js';
import type { Dtype } from './dtype.js';
import { Random } from '../util/random.js';
import { elementCount } from '../util/matrix.js';

export interface VisionSpec {
  imageSize: number;
  patchSize: number;
  hiddenSize: number;
  layers: number;
  heads: number;
  mlpSize: number;
  /** Size of pooler_output (the embedding). */
  projectionSize: number;
  layerNormEps: number;
  seed: number;
}

export interface TowerOptions {
  /** fp32; fp16 throughout (every weight and constant); or q8: int8 linear weights, activations quantised per call. */
  format?: Dtype;
  /** The embedding output: `pooler_output` as SigLIP exports it, `image_embeds` as CLIP's projected vision model. */
  pooledName?: string;
  /**
   * fp16 only: float16 inputs and outputs, as optimum's `--dtype fp16` export has them. Otherwise they stay float32
   * with Casts inside (onnxconverter-common's `keep_io_types`), as most fp16 files on the hub have them.
   */
  halfIo?: boolean;
}

class TowerBuilder {
  readonly g = new OnnxGraph('vision_model');
  /** Seeded, so a preset gives the same weights everywhere. */
  private readonly rng: Random;

  private readonly half: boolean;

  constructor(
    private readonly spec: VisionSpec,
    private readonly format: Dtype,
    private readonly pooledName: string,
    private readonly halfIo: boolean,
  ) {
    this.rng = new Random(spec.seed);
    this.half = format === 'fp16';
  }

  /** A weight or constant in the tower's arithmetic type. */
  private weight(values: Float32Array, dims: number[]): string {
    if (!this.half) return this.g.initializer(values, dims);
    return this.g.initializer(new Uint16Array(new Float16Array(values).buffer), dims, { type: 'float16' });
  }

  private scalar(value: number): string {
    return this.weight(Float32Array.of(value), []);
  }

  /** Uniform weights with standard deviation `std`. */
  private uniform(dims: number[], std: number): Float32Array {
    const size = elementCount(dims);
    const w = new Float32Array(size);
    const half = std * Math.sqrt(3);
    for (let i = 0; i < size; i++) w[i] = (this.rng.uniform() * 2 - 1) * half;
    return w;
  }

  private constant(value: number, size: number): string {
    return this.weight(new Float32Array(size).fill(value), [size]);
  }

  linear(x: string, din: number, dout: number): string {
    const w = this.uniform([din, dout], 1 / Math.sqrt(din));
    const bias = this.weight(this.uniform([dout], 0.02), [dout]);
    return this.g.op('Add', [
      this.format === 'q8'
        ? this.quantizedMatMul(x, w, din, dout)
        : this.g.op('MatMul', [x, this.weight(w, [din, dout])]),
      bias,
    ]);
  }

  /** x · W with W as symmetric int8 and x quantised per call: the pattern onnxruntime fuses on CPU. */
  private quantizedMatMul(x: string, w: Float32Array, din: number, dout: number): string {
    let maxAbs = 0;
    for (const v of w) maxAbs = Math.max(maxAbs, Math.abs(v));
    const scale = maxAbs / 127 || 1;
    const q = new Int8Array(w.length);
    for (let i = 0; i < w.length; i++) q[i] = Math.round(w[i] / scale);
    const [xq, xScale, xZero] = this.g.node('DynamicQuantizeLinear', [x], {}, 3);
    const wq = this.g.initializer(q, [din, dout]);
    const wZero = this.g.initializer(new Int8Array([0]), []);
    const acc = this.g.op('MatMulInteger', [xq, wq, xZero, wZero]);
    const accFloat = this.g.cast(acc, 'float32');
    const combinedScale = this.g.op('Mul', [xScale, this.g.float32([scale], [])]);
    return this.g.op('Mul', [accFloat, combinedScale]);
  }

  layerNorm(x: string): string {
    const d = this.spec.hiddenSize;
    return this.g.op('LayerNormalization', [x, this.constant(1, d), this.constant(0, d)], {
      axis: -1,
      epsilon: float(this.spec.layerNormEps),
    });
  }

  /** Exact (erf) GELU, written the way onnxruntime's Gelu fusion recognises it. */
  gelu(x: string): string {
    const erf = this.g.op('Erf', [this.g.op('Div', [x, this.scalar(Math.SQRT2)])]);
    const onePlus = this.g.op('Add', [erf, this.scalar(1)]);
    return this.g.op('Mul', [this.g.op('Mul', [x, onePlus]), this.scalar(0.5)]);
  }

  attention(x: string): string {
    const { hiddenSize: d, heads } = this.spec;
    const headDim = d / heads;
    const split = (t: string, perm: number[]) =>
      this.g.op('Transpose', [this.g.op('Reshape', [t, this.g.int64s([0, 0, heads, headDim])])], { perm });
    const q = split(this.linear(x, d, d), [0, 2, 1, 3]);
    const k = split(this.linear(x, d, d), [0, 2, 3, 1]);
    const v = split(this.linear(x, d, d), [0, 2, 1, 3]);
    const scores = this.g.op('Mul', [this.g.op('MatMul', [q, k]), this.scalar(1 / Math.sqrt(headDim))]);
    const mixed = this.g.op('MatMul', [this.g.op('Softmax', [scores], { axis: -1 }), v]);
    const merged = this.g.op('Reshape', [
      this.g.op('Transpose', [mixed], { perm: [0, 2, 1, 3] }),
      this.g.int64s([0, 0, d]),
    ]);
    return this.linear(merged, d, d);
  }

  block(x: string): string {
    const { hiddenSize: d, mlpSize } = this.spec;
    const h = this.g.op('Add', [x, this.attention(this.layerNorm(x))]);
    const m = this.linear(this.gelu(this.linear(this.layerNorm(h), d, mlpSize)), mlpSize, d);
    return this.g.op('Add', [h, m]);
  }

  build(): Uint8Array {
    const { imageSize: s, patchSize: p, hiddenSize: d, projectionSize } = this.spec;
    if (s % p !== 0) throw new Error(`image size ${s} is not a multiple of patch size ${p}`);
    if (d % this.spec.heads !== 0) throw new Error(`hidden size ${d} is not a multiple of ${this.spec.heads} heads`);
    const tokens = (s / p) ** 2;
    // Inputs and outputs in float32 unless halfIo; a float16 tower casts at its edges.
    const io: ElementType = this.halfIo ? 'float16' : 'float32';
    const castIn = this.half && !this.halfIo;
    const input = this.g.input('pixel_values', io, ['batch_size', 3, s, s]);
    const pixels = castIn ? this.g.cast(input, 'float16') : input;
    const output = (x: string, name: string) =>
      castIn ? this.g.cast(x, 'float32', name) : this.g.op('Identity', [x], {}, name);
    const kernel = this.weight(this.uniform([d, 3, p, p], 1 / Math.sqrt(3 * p * p)), [d, 3, p, p]);
    const patches = this.g.op('Conv', [pixels, kernel, this.weight(this.uniform([d], 0.02), [d])], {
      kernel_shape: [p, p],
      strides: [p, p],
    });
    // [N,D,h,w] → [N,T,D], then add the learned position of each patch.
    let x = this.g.op('Transpose', [this.g.op('Reshape', [patches, this.g.int64s([0, d, -1])])], { perm: [0, 2, 1] });
    x = this.g.op('Add', [x, this.weight(this.uniform([1, tokens, d], 0.02), [1, tokens, d])]);
    for (let l = 0; l < this.spec.layers; l++) x = this.block(x);
    const last = this.layerNorm(x);
    output(last, 'last_hidden_state');
    const pooled = this.g.op('ReduceMean', [last], { axes: [1], keepdims: 0 });
    output(this.linear(pooled, d, projectionSize), this.pooledName);
    this.g.output('last_hidden_state', io, ['batch_size', tokens, d]);
    this.g.output(this.pooledName, io, ['batch_size', projectionSize]);
    return this.g.encode({ producer: 'ctl-embed', metadata: { spec: JSON.stringify(this.spec), format: this.format } });
  }
}

/** The serialised ONNX model of `spec`. The same arguments always give the same bytes. */
export function buildVisionTower(
  spec: VisionSpec,
  { format = 'fp32', pooledName = 'pooler_output', halfIo = false }: TowerOptions = {},
): Uint8Array {
  if (halfIo && format !== 'fp16') throw new Error('halfIo needs format fp16');
  return new TowerBuilder(spec, format, pooledName, halfIo).build();
}
