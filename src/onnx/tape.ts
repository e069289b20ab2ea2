// Reverse-mode differentiation over the ONNX graph writer: every forward op emits its ONNX nodes and records a
// vector-Jacobian product (VJP) that, given the gradients of its outputs, emits the nodes of its inputs'
// gradients. `backward` walks the records in reverse and sums the gradients that meet. All shapes are static
// (fixed when the graph is built), so broadcasting and reductions are resolved here, not at run time.
//
//   const t = new Tape('step');
//   const x = t.input('x', [n, 8]); const w = t.input('w', [8, 4], true);
//   const loss = t.mean(t.matMul(x, w));
//   const [dw] = t.backward(loss, [w]);   // the name of d loss / d w, [8, 4]
import { float, OnnxGraph } from './graph.js';
import { elementCount } from '../util/matrix.js';

/** A float32 value of the graph: its name, static shape, and whether a gradient flows to it. */
export interface Value {
  name: string;
  shape: number[];
  grad: boolean;
}

/** Given the gradient names of an op's outputs (null: none reached it), the gradient names of its inputs (null
 * where not needed: `need[i]` is false for inputs without a gradient). */
type Vjp = (dys: (string | null)[], need: boolean[]) => (string | null)[];

interface Record_ {
  inputs: Value[];
  outputs: Value[];
  vjp: Vjp;
}

/** The numpy broadcast of two shapes. */
function broadcast(a: number[], b: number[]): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new Error(`tape: cannot broadcast [${a}] with [${b}]`);
    return Math.max(x, y);
  });
}

export class Tape {
  readonly graph: OnnxGraph;
  private readonly records: Record_[] = [];

  constructor(name: string) {
    this.graph = new OnnxGraph(name);
  }

  // ---- values

  input(name: string, shape: number[], grad = false): Value {
    return { name: this.graph.input(name, 'float32', shape), shape, grad };
  }

  /** A value the graph already computes (e.g. a slice of an input), as a leaf a gradient is asked for. */
  leaf(name: string, shape: number[]): Value {
    return { name, shape, grad: true };
  }

  /** A constant (no gradient). */
  constant(values: number[] | Float32Array, shape: number[] = []): Value {
    return { name: this.graph.initializer(Float32Array.from(values), shape), shape, grad: false };
  }

  scalar(value: number): Value {
    return this.constant([value]);
  }

  output(v: Value, name?: string): string {
    const named = name ? this.graph.op('Identity', [v.name], {}, name) : v.name;
    return this.graph.output(named, 'float32', v.shape);
  }

  /** The values of a forward op's outputs; records its VJP when any input needs a gradient. */
  private record(inputs: Value[], outputs: { name: string; shape: number[] }[], vjp: Vjp): Value[] {
    const grad = inputs.some((i) => i.grad);
    const values = outputs.map((o) => ({ ...o, grad }));
    if (grad) this.records.push({ inputs, outputs: values, vjp });
    return values;
  }

  private op(type: string, inputs: string[], attrs: Parameters<OnnxGraph['op']>[2] = {}): string {
    return this.graph.op(type, inputs, attrs);
  }

  private ints(values: number[]): string {
    return this.graph.int64s(values);
  }

  /** dy of a broadcast result summed back to `shape`. */
  private unbroadcast(dy: string, from: number[], shape: number[]): string {
    if (from.length === shape.length && from.every((d, i) => d === shape[i])) return dy;
    const offset = from.length - shape.length;
    const axes = from.map((_, i) => i).filter((i) => i < offset || shape[i - offset] === 1);
    const summed = this.op('ReduceSum', [dy, this.ints(axes)], { keepdims: 1 });
    return this.op('Reshape', [summed, this.ints(shape)]);
  }

  private zeros(shape: number[]): string {
    return this.graph.initializer(new Float32Array(elementCount(shape)), shape);
  }

  // ---- elementwise, broadcasting

  add(a: Value, b: Value): Value {
    const shape = broadcast(a.shape, b.shape);
    const name = this.op('Add', [a.name, b.name]);
    return this.record([a, b], [{ name, shape }], ([dy]) => [
      this.unbroadcast(dy!, shape, a.shape),
      this.unbroadcast(dy!, shape, b.shape),
    ])[0];
  }

  sub(a: Value, b: Value): Value {
    const shape = broadcast(a.shape, b.shape);
    const name = this.op('Sub', [a.name, b.name]);
    return this.record([a, b], [{ name, shape }], ([dy], need) => [
      this.unbroadcast(dy!, shape, a.shape),
      need[1] ? this.unbroadcast(this.op('Neg', [dy!]), shape, b.shape) : null,
    ])[0];
  }

  mul(a: Value, b: Value): Value {
    const shape = broadcast(a.shape, b.shape);
    const name = this.op('Mul', [a.name, b.name]);
    return this.record([a, b], [{ name, shape }], ([dy], need) => [
      need[0] ? this.unbroadcast(this.op('Mul', [dy!, b.name]), shape, a.shape) : null,
      need[1] ? this.unbroadcast(this.op('Mul', [dy!, a.name]), shape, b.shape) : null,
    ])[0];
  }

  /** a / b; d/db = -dy · y / b. */
  div(a: Value, b: Value): Value {
    const shape = broadcast(a.shape, b.shape);
    const name = this.op('Div', [a.name, b.name]);
    return this.record([a, b], [{ name, shape }], ([dy], need) => {
      const da = need[0] || need[1] ? this.op('Div', [dy!, b.name]) : null;
      return [
        need[0] ? this.unbroadcast(da!, shape, a.shape) : null,
        need[1] ? this.unbroadcast(this.op('Neg', [this.op('Mul', [da!, name])]), shape, b.shape) : null,
      ];
    })[0];
  }

  scale(a: Value, factor: number): Value {
    return this.mul(a, this.scalar(factor));
  }

  exp(x: Value): Value {
    const name = this.op('Exp', [x.name]);
    return this.record([x], [{ name, shape: x.shape }], ([dy]) => [this.op('Mul', [dy!, name])])[0];
  }

  relu(x: Value): Value {
    const name = this.op('Relu', [x.name]);
    const zero = this.graph.float32([0], []);
    return this.record([x], [{ name, shape: x.shape }], ([dy]) => [
      this.op('Where', [this.op('Greater', [x.name, zero]), dy!, zero]),
    ])[0];
  }

  /** Clamp to [min, max]; the gradient passes where min ≤ x ≤ max (as tfjs's clipByValue). */
  clip(x: Value, min: number, max: number): Value {
    const [lo, hi] = [this.graph.float32([min], []), this.graph.float32([max], [])];
    const name = this.op('Clip', [x.name, lo, hi]);
    return this.record([x], [{ name, shape: x.shape }], ([dy]) => {
      const inside = this.op('And', [this.op('GreaterOrEqual', [x.name, lo]), this.op('LessOrEqual', [x.name, hi])]);
      return [this.op('Where', [inside, dy!, this.graph.float32([0], [])])];
    })[0];
  }

  /** Exact GELU, x·Φ(x); gradient Φ(x) + x·φ(x). */
  gelu(x: Value): Value {
    const cdf = this.op('Mul', [
      this.op('Add', [
        this.op('Erf', [this.op('Mul', [x.name, this.graph.float32([Math.SQRT1_2], [])])]),
        this.graph.float32([1], []),
      ]),
      this.graph.float32([0.5], []),
    ]);
    const name = this.op('Mul', [x.name, cdf]);
    return this.record([x], [{ name, shape: x.shape }], ([dy]) => {
      const square = this.op('Mul', [x.name, x.name]);
      const pdf = this.op('Mul', [
        this.op('Exp', [this.op('Mul', [square, this.graph.float32([-0.5], [])])]),
        this.graph.float32([1 / Math.sqrt(2 * Math.PI)], []),
      ]);
      return [this.op('Mul', [dy!, this.op('Add', [cdf, this.op('Mul', [x.name, pdf])])])];
    })[0];
  }

  // ---- products

  /** a @ b, or a @ bᵀ with transposeB; 2-D. */
  matMul(a: Value, b: Value, transposeB = false): Value {
    const shape = [a.shape[0], transposeB ? b.shape[0] : b.shape[1]];
    const name = this.op('Gemm', [a.name, b.name], transposeB ? { transB: 1 } : {});
    return this.record([a, b], [{ name, shape }], ([dy], need) => [
      need[0] ? this.op('Gemm', [dy!, b.name], transposeB ? {} : { transB: 1 }) : null,
      need[1]
        ? transposeB
          ? this.op('Gemm', [dy!, a.name], { transA: 1 })
          : this.op('Gemm', [a.name, dy!], { transA: 1 })
        : null,
    ])[0];
  }

  /** x @ w + b (w [in, out], b [out]) as one Gemm. */
  linear(x: Value, w: Value, b: Value): Value {
    const shape = [x.shape[0], w.shape[1]];
    const name = this.op('Gemm', [x.name, w.name, b.name]);
    return this.record([x, w, b], [{ name, shape }], ([dy], need) => [
      need[0] ? this.op('Gemm', [dy!, w.name], { transB: 1 }) : null,
      need[1] ? this.op('Gemm', [x.name, dy!], { transA: 1 }) : null,
      need[2] ? this.op('ReduceSum', [dy!, this.ints([0])], { keepdims: 0 }) : null,
    ])[0];
  }

  /** [x, extra] @ w + b where x is data: the gradient of `extra` needs only w's last rows, so the largest product
   * of the backward pass (dy @ wᵀ over the input width) is never computed. */
  inputLinear(x: Value, extra: Value, w: Value, b: Value): Value {
    const input = this.op('Concat', [x.name, extra.name], { axis: 1 });
    const shape = [x.shape[0], w.shape[1]];
    const name = this.op('Gemm', [input, w.name, b.name]);
    const width = x.shape[1];
    return this.record([extra, w, b], [{ name, shape }], ([dy], need) => {
      const wExtra = () => this.op('Slice', [w.name, this.ints([width]), this.ints([w.shape[0]]), this.ints([0])]);
      return [
        need[0] ? this.op('Gemm', [dy!, wExtra()], { transB: 1 }) : null,
        need[1] ? this.op('Gemm', [input, dy!], { transA: 1 }) : null,
        need[2] ? this.op('ReduceSum', [dy!, this.ints([0])], { keepdims: 0 }) : null,
      ];
    })[0];
  }

  // ---- normalisations

  /** LayerNorm over the last axis as ONNX LayerNormalization, which also returns mean and 1/std. */
  layerNorm(x: Value, gamma: Value, beta: Value, eps: number): Value {
    const [name, mean, rstd] = this.graph.node(
      'LayerNormalization',
      [x.name, gamma.name, beta.name],
      { axis: -1, epsilon: float(eps) },
      3,
    );
    return this.record([x, gamma, beta], [{ name, shape: x.shape }], ([dy], need) => {
      // dx = rstd · (g - mean(g) - x̂ · mean(g · x̂)), g = dy · gamma.
      const xhat = this.op('Mul', [this.op('Sub', [x.name, mean]), rstd]);
      const rowMean = (v: string) => this.op('ReduceMean', [v], { axes: [-1], keepdims: 1 });
      let dx: string | null = null;
      if (need[0]) {
        const g = this.op('Mul', [dy!, gamma.name]);
        const inner = this.op('Sub', [
          this.op('Sub', [g, rowMean(g)]),
          this.op('Mul', [xhat, rowMean(this.op('Mul', [g, xhat]))]),
        ]);
        dx = this.op('Mul', [inner, rstd]);
      }
      const columns = (v: string) => this.op('ReduceSum', [v, this.ints([0])], { keepdims: 0 });
      return [dx, need[1] ? columns(this.op('Mul', [dy!, xhat])) : null, need[2] ? columns(dy!) : null];
    })[0];
  }

  /** Rows scaled to unit L2 norm (divided by max(norm, eps)); dx = (dy - y · Σ dy·y) / norm. */
  l2Normalize(x: Value, eps: number): Value {
    const norm = this.op('Max', [
      this.op('Sqrt', [this.op('ReduceSumSquare', [x.name], { axes: [1], keepdims: 1 })]),
      this.graph.float32([eps], []),
    ]);
    const name = this.op('Div', [x.name, norm]);
    return this.record([x], [{ name, shape: x.shape }], ([dy]) => {
      const along = this.op('ReduceSum', [this.op('Mul', [dy!, name]), this.ints([1])], { keepdims: 1 });
      return [this.op('Div', [this.op('Sub', [dy!, this.op('Mul', [name, along])]), norm])];
    })[0];
  }

  // ---- shapes and reductions

  /** Rows [0, n) and [n, rows) of a matrix. */
  splitRows(x: Value, n: number): [Value, Value] {
    const rest = x.shape[0] - n;
    const [top, bottom] = this.graph.node('Split', [x.name, this.ints([n, rest])], { axis: 0 }, 2);
    const shapes = [
      [n, x.shape[1]],
      [rest, x.shape[1]],
    ];
    const [a, b] = this.record(
      [x],
      [
        { name: top, shape: shapes[0] },
        { name: bottom, shape: shapes[1] },
      ],
      (dys) => [this.op('Concat', [dys[0] ?? this.zeros(shapes[0]), dys[1] ?? this.zeros(shapes[1])], { axis: 0 })],
    );
    return [a, b];
  }

  /** Σ_j a_ij · b_ij per row: [n, d] × [n, d] → [n]. */
  rowDot(a: Value, b: Value): Value {
    const name = this.op('ReduceSum', [this.op('Mul', [a.name, b.name]), this.ints([1])], { keepdims: 0 });
    return this.record([a, b], [{ name, shape: [a.shape[0]] }], ([dy], need) => {
      const column = this.op('Unsqueeze', [dy!, this.ints([1])]);
      return [need[0] ? this.op('Mul', [column, b.name]) : null, need[1] ? this.op('Mul', [column, a.name]) : null];
    })[0];
  }

  /** log Σ exp along `axis` of a matrix (the axis removed); gradient dy · softmax. Shifted by the maximum here, not
   * one ReduceLogSumExp: onnxruntime's WebGPU provider sums exp(x) as it is, which overflows to Infinity once an
   * entry passes ~88 (InfoNCE's logits reach 1 / temperature = 100 at the clamp). */
  logSumExp(x: Value, axis: 0 | 1): Value {
    const max = this.op('ReduceMax', [x.name], { axes: [axis], keepdims: 1 });
    const exp = this.op('Exp', [this.op('Sub', [x.name, max])]);
    const sum = this.op('ReduceSum', [exp, this.ints([axis])], { keepdims: 1 });
    const shape = [x.shape[1 - axis]];
    const name = this.op('Reshape', [this.op('Add', [this.op('Log', [sum]), max]), this.ints(shape)]);
    return this.record([x], [{ name, shape }], ([dy]) => {
      const softmax = this.op('Div', [exp, sum]);
      return [this.op('Mul', [softmax, this.op('Unsqueeze', [dy!, this.ints([axis])])])];
    })[0];
  }

  /** Σ of all entries, a scalar. */
  sum(x: Value): Value {
    const name = this.op('ReduceSum', [x.name], { keepdims: 0 });
    return this.record([x], [{ name, shape: [] }], ([dy]) => [this.op('Expand', [dy!, this.ints(x.shape)])])[0];
  }

  /** Mean of all entries, a scalar. */
  mean(x: Value): Value {
    return this.scale(this.sum(x), 1 / elementCount(x.shape));
  }

  // ---- the backward pass

  /** The gradient names of `loss` (a scalar) with respect to each of `wrt` (zeros where it does not reach). */
  backward(loss: Value, wrt: Value[]): string[] {
    const grads = new Map<string, string>([[loss.name, this.graph.float32([1], [])]]);
    const accumulate = (name: string, g: string) => {
      const prior = grads.get(name);
      grads.set(name, prior ? this.op('Add', [prior, g]) : g);
    };
    for (let r = this.records.length - 1; r >= 0; r--) {
      const { inputs, outputs, vjp } = this.records[r];
      const dys = outputs.map((o) => grads.get(o.name) ?? null);
      if (dys.every((d) => d === null)) continue;
      const dxs = vjp(
        dys,
        inputs.map((i) => i.grad),
      );
      inputs.forEach((input, i) => {
        if (input.grad && dxs[i]) accumulate(input.name, dxs[i]!);
      });
    }
    return wrt.map((w) => grads.get(w.name) ?? this.zeros(w.shape));
  }
}
