// The one seeded PRNG (xoshiro128**, seeded through splitmix32) for everything that must be reproducible from a
// seed: synthetic data, shuffles, initialisations, dropout masks, generated model weights. Not cryptographic.
// `fork(label)` derives an independent stream, so adding a consumer of randomness in one place does not shift the
// numbers drawn in another; `keyedRandom(...key)` is a stream that is a pure function of its key, without hidden
// state: training draws the init from (seed, "init", name), an epoch's shuffle from (seed, "shuffle", epoch), a
// step's negatives from (seed, "negatives", step), so a run resumed at an epoch boundary draws what the
// uninterrupted run drew, and a batch split over worker threads draws what the whole batch draws on one thread.

/** What checkpoints record as the generator behind every draw. */
export const PRNG_NAME = 'xoshiro128** (splitmix32-seeded), keyed by (seed, purpose, counter)';

/** 32-bit FNV-1a of a string: turns labels into seed material (and signatures into shards). */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spareNormal: number | null = null;

  /** A generator from an integer seed or any string (e.g. "42/products"). */
  constructor(seed: number | string) {
    const mix = splitmix32(typeof seed === 'number' ? hashString(`n:${seed}`) : hashString(`s:${seed}`));
    this.a = mix();
    this.b = mix();
    this.c = mix();
    this.d = mix();
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1; // the all-zero state is a fixed point
  }

  /** An independent generator derived from this one's current state and a label. */
  fork(label: string): Random {
    return new Random(`${this.a}:${this.b}:${this.c}:${this.d}/${label}`);
  }

  /** The next uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /**
   * A dropout mask's row: `count` draws written from `out[offset]`, each `value` where the next `nextUint32()` is
   * at least `threshold`, else 0. The same draws as calling `nextUint32()` in a loop, faster: the state stays in
   * locals (masks are millions of draws a training step).
   */
  fillMask(out: Float32Array | Uint8Array, offset: number, count: number, threshold: number, value: number): void {
    let { a, b, c, d } = this;
    for (let i = offset; i < offset + count; i++) {
      const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
      const t = b << 9;
      c ^= a;
      d ^= b;
      b ^= c;
      a ^= d;
      c ^= t;
      d = rotl(d, 11);
      out[i] = result >= threshold ? value : 0;
    }
    [this.a, this.b, this.c, this.d] = [a, b, c, d];
  }

  /** Uniform in [0, 1), 53 bits. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Uniform integer in [0, n), unbiased (rejection sampling). */
  int(n: number): number {
    if (!(n >= 1) || n > 2 ** 32) throw new RangeError(`Random.int expects 1 <= n <= 2^32, got ${n}`);
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Standard normal (Box–Muller, both values used). */
  normal(): number {
    if (this.spareNormal !== null) {
      const v = this.spareNormal;
      this.spareNormal = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    const theta = 2 * Math.PI * this.uniform();
    this.spareNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** Fill `out` with independent normals of the given standard deviation. */
  fillNormal(out: Float32Array, std = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = std * this.normal();
    return out;
  }

  /**
   * Fill `out` with approximate normals: the sum of four uniforms (Irwin–Hall), rescaled to mean 0 and the given
   * standard deviation. Tails are cut at ±3.46σ. Two integer draws and no log, square root or sine per value, for
   * bulk noise whose tails do not matter.
   */
  fillApproxNormal(out: Float32Array, std = 1): Float32Array {
    const scale = (std * Math.sqrt(3)) / 65536; // var(U(0,1)) = 1/12, four of them: 1/3
    for (let i = 0; i < out.length; i++) {
      const a = this.nextUint32();
      const b = this.nextUint32();
      out[i] = ((a >>> 16) + (a & 0xffff) + (b >>> 16) + (b & 0xffff) - 131070) * scale;
    }
    return out;
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.uniform() < p;
  }

  /** An index drawn with probability proportional to `weights` (non-negative, not all zero). */
  weighted(weights: ArrayLike<number>): number {
    let total = 0;
    for (let i = 0; i < weights.length; i++) total += weights[i];
    if (!(total > 0)) throw new RangeError('Random.weighted expects a positive total weight');
    let x = this.uniform() * total;
    for (let i = 0; i < weights.length; i++) {
      x -= weights[i];
      if (x < 0) return i;
    }
    for (let i = weights.length - 1; i >= 0; i--) if (weights[i] > 0) return i; // rounding left x at ~0
    return weights.length - 1;
  }

  /** A sampler for many draws from fixed `weights`: O(log n) per draw (cumulative sums, binary search). */
  weightedSampler(weights: ArrayLike<number>): () => number {
    const cumulative = new Float64Array(weights.length);
    let total = 0;
    for (let i = 0; i < weights.length; i++) cumulative[i] = total += weights[i];
    if (!(total > 0)) throw new RangeError('Random.weightedSampler expects a positive total weight');
    return () => {
      const x = this.uniform() * total;
      let lo = 0;
      let hi = cumulative.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (cumulative[mid] > x) hi = mid;
        else lo = mid + 1;
      }
      return lo;
    };
  }

  /** An element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** Shuffle in place (Fisher–Yates) and return the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }

  /** `bytes` random bytes as lower-case hex (e.g. 16 → a 32-char signature). */
  hex(bytes: number): string {
    let out = '';
    for (let i = 0; i < bytes; i += 4) {
      out += this.nextUint32().toString(16).padStart(8, '0');
    }
    return out.slice(0, 2 * bytes);
  }
}

/** A generator that is a pure function of its key, e.g. `keyedRandom(seed, 'shuffle', epoch)`. */
export function keyedRandom(...key: (number | string)[]): Random {
  return new Random(JSON.stringify(key));
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
