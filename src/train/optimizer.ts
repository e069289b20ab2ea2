// Adam / AdamW over the flat parameter vector, as ONE fused loop on the host (a plain tfjs optimizer launches a
// dozen kernels per parameter tensor, which would dominate a step). Data-parallel replicas each update their own
// slice [lo, hi) of the vector and keep the moments of that slice only.
// Semantics follow PyTorch: `adam` adds weight_decay·p to the gradient (L2), `adamw` decays the weights
// directly; clipping scales the gradient by min(1, clip / (‖g‖ + 1e-6)) as torch.nn.utils.clip_grad_norm_.
// Moments that decay below 1e-30 are flushed to zero: arithmetic on denormal floats is slow, WebAssembly cannot
// set the CPU's flush-to-zero mode, and values that small change nothing.
import type { TrainConfig } from './config.js';

/** The config's `optimizer` section (see config.ts). */
export type OptimizerConfig = TrainConfig['optimizer'];

export interface OptimizerState {
  /** Updates applied so far (Adam's t). */
  t: number;
  m: Float32Array;
  v: Float32Array;
}

const FLUSH_BELOW = 1e-30;

/** The state an optimizer over `size` values starts from: a copy of `state` (a resumed run's), else zeros. */
export function startingState(state: OptimizerState | undefined, size: number): OptimizerState {
  if (!state) return { t: 0, m: new Float32Array(size), v: new Float32Array(size) };
  if (state.m.length !== size || state.v.length !== size)
    throw new Error(`optimizer state has ${state.m.length} values, the parameters it updates ${size}`);
  return { t: state.t, m: state.m.slice(), v: state.v.slice() };
}

/** The factor clip_grad_norm_ multiplies gradients by. */
export function clipScale(gradNorm: number, clip: number): number {
  return clip > 0 ? Math.min(1, clip / (gradNorm + 1e-6)) : 1;
}

export class FlatAdam {
  readonly m: Float32Array;
  readonly v: Float32Array;
  t: number;

  constructor(
    readonly config: OptimizerConfig,
    /** The slice of the parameter vector this optimizer owns. */
    readonly lo: number,
    readonly hi: number,
    state?: OptimizerState,
  ) {
    ({ t: this.t, m: this.m, v: this.v } = startingState(state, hi - lo));
  }

  /** One update of params[lo, hi) in place; `grad` is this slice's (summed) gradient, pre-clipping. */
  update(params: Float32Array, grad: Float32Array, lr: number, scale: number): void {
    const { kind, weightDecay, betas, eps } = this.config;
    const [b1, b2] = betas;
    this.t += 1;
    const { stepSize, invRootBias2, decay } = adamScalars(this.config, lr, this.t);
    const l2 = kind === 'adam' ? weightDecay : 0;
    const [c1, c2] = [1 - b1, 1 - b2];
    const { m, v } = this;
    const p = params.subarray(this.lo, this.hi);
    // One pass, branch-free: this loop is a visible part of every step.
    for (let i = 0; i < m.length; i++) {
      const pi = p[i];
      const g = grad[i] * scale + l2 * pi;
      const mi = b1 * m[i] + c1 * g;
      const vi = b2 * v[i] + c2 * g * g;
      m[i] = Math.abs(mi) < FLUSH_BELOW ? 0 : mi;
      v[i] = vi < FLUSH_BELOW ? 0 : vi;
      p[i] = pi * decay - (stepSize * mi) / (Math.sqrt(vi) * invRootBias2 + eps);
    }
  }
}

/**
 * The scalars of Adam's update `t` (1-based): the bias-corrected step size, 1/√(1 − β₂ᵗ), and AdamW's decoupled
 * decay factor (1 for Adam, whose weight decay is an L2 term in the gradient). The ort engine feeds them to its graph.
 */
export function adamScalars(config: OptimizerConfig, lr: number, t: number) {
  const [b1, b2] = config.betas;
  return {
    stepSize: lr / (1 - b1 ** t),
    invRootBias2: 1 / Math.sqrt(1 - b2 ** t),
    decay: config.kind === 'adamw' ? 1 - lr * config.weightDecay : 1,
  };
}

/** Σ x² in double precision. */
export function sumOfSquares(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}
