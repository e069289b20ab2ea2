// The few layers the towers need, with hand-written gradients. Why: on the wasm backend a matMul with a
// transposed operand runs much slower than a plain one, and tfjs's own matMul gradient uses transposed operands;
// here every product is a plain matMul and the transposes are explicit (cheap) copies. LayerNorm and GELU get
// closed-form gradients too, which launches far fewer kernels than tfjs's taped ones.
import * as tf from '@tensorflow/tfjs';

type Forward<A extends tf.Tensor[], R extends tf.Tensor> = (...args: [...A, tf.GradSaveFunc]) => {
  value: R;
  gradFunc: (dy: R, saved: tf.Tensor[]) => tf.Tensor[];
};

/** tf.customGrad with the argument types kept. */
function withGradient<A extends tf.Tensor[], R extends tf.Tensor>(forward: Forward<A, R>): (...args: A) => R {
  return tf.customGrad(forward as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...args: A) => R;
}

/** Sums over rows as a ones-vector matMul: a reduction over axis 0 makes tfjs transpose first, which is slow. */
export function columnSums(x: tf.Tensor2D): tf.Tensor1D {
  return tf.reshape(tf.matMul(tf.ones([1, x.shape[0]]), x), [x.shape[1]]);
}

/** a @ b, both gradients computed with plain matMuls on explicitly transposed copies. */
export const matMul = withGradient((a: tf.Tensor2D, b: tf.Tensor2D, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a, b) as tf.Tensor2D,
    gradFunc: (dy: tf.Tensor2D, [sa, sb]: tf.Tensor[]) => [
      tf.matMul(dy as tf.Tensor2D, tf.transpose(sb) as tf.Tensor2D),
      tf.matMul(tf.transpose(sa) as tf.Tensor2D, dy as tf.Tensor2D),
    ],
  };
});

/** x @ w + b with w stored [in, out] (so the forward product is plain). */
export const linear = withGradient((x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.add(tf.matMul(x, w), b) as tf.Tensor2D,
    gradFunc: (dy: tf.Tensor2D, [sx, sw]: tf.Tensor[]) => [
      tf.matMul(dy as tf.Tensor2D, tf.transpose(sw) as tf.Tensor2D),
      tf.matMul(tf.transpose(sx) as tf.Tensor2D, dy as tf.Tensor2D),
      columnSums(dy),
    ],
  };
});

/** PyTorch's nn.LayerNorm default epsilon. */
export const LAYER_NORM_EPS = 1e-5;
/** F.normalize's floor on the norm. */
export const NORMALIZE_EPS = 1e-12;

/** LayerNorm over the last axis (eps LAYER_NORM_EPS), as y = x̂·gamma + beta. */
export const layerNorm = withGradient(
  (x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, save: tf.GradSaveFunc) => {
    const centred = tf.sub(x, tf.mean(x, -1, true));
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(centred), -1, true), LAYER_NORM_EPS));
    const xhat = tf.mul(centred, rstd);
    save([xhat, rstd, gamma]);
    return {
      value: tf.add(tf.mul(xhat, gamma), beta) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor2D, [sxhat, srstd, sgamma]: tf.Tensor[]) => {
        // dx = rstd · (g - mean(g) - x̂ · mean(g · x̂)), with g = dy · gamma.
        const g = tf.mul(dy, sgamma);
        const inner = tf.sub(tf.sub(g, tf.mean(g, -1, true)), tf.mul(sxhat, tf.mean(tf.mul(g, sxhat), -1, true)));
        const dx = tf.mul(inner, srstd);
        return [dx, columnSums(tf.mul(dy, sxhat) as tf.Tensor2D), columnSums(dy)];
      },
    };
  },
);

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** GELU, exact (erf) form as PyTorch's nn.GELU(): x·Φ(x); gradient Φ(x) + x·φ(x). */
export const gelu = withGradient((x: tf.Tensor2D, save: tf.GradSaveFunc) => {
  const cdf = tf.mul(tf.add(tf.erf(tf.mul(x, SQRT1_2)), 1), 0.5);
  save([x, cdf]);
  return {
    value: tf.mul(x, cdf) as tf.Tensor2D,
    gradFunc: (dy: tf.Tensor2D, [sx, scdf]: tf.Tensor[]) => {
      const pdf = tf.mul(tf.exp(tf.mul(tf.square(sx), -0.5)), INV_SQRT_2PI);
      return [tf.mul(dy, tf.add(scdf, tf.mul(sx, pdf)))];
    },
  };
});

/** Rows scaled to unit L2 norm (PyTorch F.normalize: divide by max(norm, NORMALIZE_EPS)). */
export function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.div(x, tf.maximum(tf.sqrt(tf.sum(tf.square(x), 1, true)), NORMALIZE_EPS));
}

/** log Σ_j exp(x_ij) per row, stable; gradient dy · softmax(x) (no gradient through the max shift, which tfjs's
 * logSumExp would compute with a slow broadcast comparison). */
export const rowLogSumExp = withGradient((x: tf.Tensor2D, save: tf.GradSaveFunc) => {
  const shift = tf.max(x, 1, true);
  const lse = tf.add(tf.log(tf.sum(tf.exp(tf.sub(x, shift)), 1, true)), shift);
  save([tf.exp(tf.sub(x, lse))]);
  return {
    value: tf.reshape(lse, [x.shape[0]]) as tf.Tensor1D,
    gradFunc: (dy: tf.Tensor1D, [softmax]: tf.Tensor[]) => [tf.mul(softmax, tf.reshape(dy, [-1, 1]))],
  };
});

/**
 * A tower's first layer, [x, extra] @ w + b, where x is input data: its gradient is never needed, and skipping
 * it saves the largest product of the backward pass. `extra` (the category embedding) does get a gradient.
 */
export function inputLinear(x: tf.Tensor2D, extra: tf.Tensor2D | null, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  const xWidth = x.shape[1];
  const input = extra ? tf.concat([x, extra], 1) : x;
  const withoutExtra = withGradient((w_: tf.Tensor2D, b_: tf.Tensor1D, save: tf.GradSaveFunc) => {
    save([input]);
    return {
      value: tf.add(tf.matMul(input, w_), b_) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor2D, [sInput]: tf.Tensor[]) => [
        tf.matMul(tf.transpose(sInput) as tf.Tensor2D, dy),
        columnSums(dy),
      ],
    };
  });
  if (!extra) return withoutExtra(w, b);
  const withExtra = withGradient((w_: tf.Tensor2D, b_: tf.Tensor1D, e_: tf.Tensor2D, save: tf.GradSaveFunc) => {
    save([input, w_]);
    return {
      value: tf.add(tf.matMul(input, w_), b_) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor2D, [sInput, sw]: tf.Tensor[]) => {
        const wExtra = tf.slice(sw, [xWidth, 0], [e_.shape[1], -1]) as tf.Tensor2D;
        return [
          tf.matMul(tf.transpose(sInput) as tf.Tensor2D, dy),
          columnSums(dy),
          tf.matMul(dy, tf.transpose(wExtra) as tf.Tensor2D),
        ];
      },
    };
  });
  return withExtra(w, b, extra);
}
