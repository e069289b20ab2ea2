// Parameters live in ONE flat Float32 vector (one tensor for the optimizer, one buffer to share between threads
// and to checkpoint). Each parameter has a name (the reference PyTorch state_dict key, declared by its layer in
// layers.ts), a shape in our layout, and an offset into the vector. Linear weights are stored [in, out] so the forward product is a plain matMul;
// PyTorch stores them [out, in], so they are transposed when checkpoints are written or read.
import * as tf from '@tensorflow/tfjs';
import { keyedRandom } from '../util/random.js';
import { elementCount } from '../util/matrix.js';

export type Init =
  { kind: 'uniform'; bound: number } | { kind: 'normal'; std: number } | { kind: 'constant'; value: number };

export interface ParamSpec {
  name: string;
  /** Shape in our layout. */
  shape: number[];
  /** True for linear weights: ours is [in, out], PyTorch's [out, in]. */
  transposed: boolean;
  init: Init;
}

export interface ParamEntry extends ParamSpec {
  offset: number;
  size: number;
}

export class ParamLayout {
  readonly entries: ParamEntry[];
  readonly size: number;
  private readonly byName: Map<string, ParamEntry>;

  constructor(specs: ParamSpec[]) {
    let offset = 0;
    this.entries = specs.map((spec) => {
      const size = elementCount(spec.shape);
      const entry = { ...spec, offset, size };
      offset += size;
      return entry;
    });
    this.size = offset;
    this.byName = new Map(this.entries.map((e) => [e.name, e]));
  }

  get(name: string): ParamEntry {
    const entry = this.byName.get(name);
    if (!entry) throw new Error(`no parameter named ${name}`);
    return entry;
  }

  /** Seeded initial values (PyTorch's default initialisers). */
  initialise(seed: number): Float32Array {
    const flat = new Float32Array(this.size);
    for (const e of this.entries) {
      const rng = keyedRandom(seed, 'init', e.name);
      const view = flat.subarray(e.offset, e.offset + e.size);
      for (let i = 0; i < view.length; i++) {
        if (e.init.kind === 'uniform') view[i] = (2 * rng.uniform() - 1) * e.init.bound;
        else if (e.init.kind === 'normal') view[i] = rng.normal() * e.init.std;
        else view[i] = e.init.value;
      }
    }
    return flat;
  }

  /** One tensor per parameter, cut from the flat vector on the host. (tf.split would do it on the device, but
   * the wasm backend's slice copies its whole input once per piece: 47 copies of the vector.) */
  tensors(flat: Float32Array): tf.Tensor[] {
    return this.entries.map((e) => tf.tensor(flat.subarray(e.offset, e.offset + e.size), e.shape));
  }

  /** The same tensors by parameter name. */
  named(tensors: tf.Tensor[]): Record<string, tf.Tensor> {
    return Object.fromEntries(this.entries.map((e, i) => [e.name, tensors[i]]));
  }

  /** Per-parameter gradients back into one flat vector (parameters the loss did not reach get zeros). */
  flatten(grads: (tf.Tensor | null)[]): tf.Tensor1D {
    return tf.concat(this.entries.map((e, i) => (grads[i] ? tf.reshape(grads[i]!, [e.size]) : tf.zeros([e.size]))));
  }
}
