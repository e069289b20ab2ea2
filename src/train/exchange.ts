// How data-parallel replicas talk: through shared memory and a barrier, synchronously (a replica blocks in
// Atomics.wait inside its training step, which tfjs's synchronous gradient code needs).

/** The shared memory of a group of replicas; created by the coordinator, handed to every worker. */
export interface SharedBuffers {
  /** Int32 [arrived, generation] of the barrier. */
  control: SharedArrayBuffer;
  /** Float32 [3, maxBatch, cols]: gathered scene, product and negative embeddings. */
  gather: SharedArrayBuffer;
  /** Float32 [world, paramCount]: each replica's gradient. */
  grads: SharedArrayBuffer;
  /** Float64 [world]: allSum slots. */
  sums: SharedArrayBuffer;
  /** Float32 [paramCount]: the parameters every replica reads and each replica updates a slice of. */
  params: SharedArrayBuffer;
}

export function createSharedBuffers(world: number, paramCount: number, maxBatch: number, cols: number): SharedBuffers {
  return {
    control: new SharedArrayBuffer(8),
    gather: new SharedArrayBuffer(3 * maxBatch * cols * 4),
    grads: new SharedArrayBuffer(world * paramCount * 4),
    sums: new SharedArrayBuffer(world * 8),
    params: new SharedArrayBuffer(paramCount * 4),
  };
}

export class SharedExchange {
  private readonly control: Int32Array;
  private readonly gather: Float32Array;
  private readonly grads: Float32Array;
  private readonly sums: Float64Array;
  private readonly paramCount: number;
  /** This replica's reduced slice, reused every step. */
  private reduced = new Float32Array(0);

  constructor(
    readonly rank: number,
    readonly world: number,
    buffers: SharedBuffers,
  ) {
    this.control = new Int32Array(buffers.control);
    this.gather = new Float32Array(buffers.gather);
    this.grads = new Float32Array(buffers.grads);
    this.sums = new Float64Array(buffers.sums);
    this.paramCount = buffers.params.byteLength / 4;
  }

  /** Wait until every replica got here. */
  barrier(): void {
    const generation = Atomics.load(this.control, 1);
    if (Atomics.add(this.control, 0, 1) === this.world - 1) {
      Atomics.store(this.control, 0, 0);
      Atomics.add(this.control, 1, 1);
      Atomics.notify(this.control, 1);
    } else {
      while (Atomics.load(this.control, 1) === generation) Atomics.wait(this.control, 1, generation);
    }
  }

  /** Put this replica's rows [rowStart, rowStart + rows) of each [batchSize, cols] matrix next to everyone
   * else's and return the whole matrices (valid until the next exchange operation). */
  allGather(blocks: Float32Array[], rowStart: number, batchSize: number, cols: number): Float32Array[] {
    const stride = this.gather.length / 3;
    blocks.forEach((block, k) => this.gather.set(block, k * stride + rowStart * cols));
    this.barrier();
    return blocks.map((_, k) => this.gather.subarray(k * stride, k * stride + batchSize * cols));
  }

  /** The sum over replicas of `own`, restricted to [lo, hi): each replica reduces its own slice. Summed in
   * rank order, so the result does not depend on timing. Valid until the next call. */
  reduceScatter(own: Float32Array, lo: number, hi: number): Float32Array {
    this.grads.set(own, this.rank * this.paramCount);
    this.barrier();
    if (this.reduced.length !== hi - lo) this.reduced = new Float32Array(hi - lo);
    const out = this.reduced;
    out.set(this.grads.subarray(lo, hi));
    for (let r = 1; r < this.world; r++) {
      const base = r * this.paramCount;
      for (let i = lo; i < hi; i++) out[i - lo] += this.grads[base + i];
    }
    return out;
  }

  /** The sum of one number over replicas, in rank order. */
  allSum(x: number): number {
    this.sums[this.rank] = x;
    this.barrier();
    let total = 0;
    for (let r = 0; r < this.world; r++) total += this.sums[r];
    return total;
  }
}
