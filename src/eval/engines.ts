// Score engines: queries × candidatesᵀ for one block of query rows. The ranking code (rank.ts) is the same for
// every engine; only the matrix product differs.
//
// - `js`: plain typed-array loops. Slow (a few GFLOP/s) but dependency-free; the reference the others are
//   tested against.
// `auto` picks the fastest engine available (see bench/eval for the measurements).

export type EngineName = 'auto' | 'js';
export const ENGINE_NAMES: EngineName[] = ['auto', 'js'];

export interface ScoreEngine {
  readonly name: string;
  /** Scores of `rows` (count × dim) against every candidate: count × numCandidates, row-major. */
  score(rows: Float32Array): Promise<Float32Array>;
  /** Hand a score buffer back once it has been read, so the next block can reuse it. */
  release(scores: Float32Array): void;
  dispose(): Promise<void>;
}

export async function createScoreEngine(
  name: EngineName,
  candidates: Float32Array,
  numCandidates: number,
  dim: number,
): Promise<ScoreEngine> {
  switch (name) {
    case 'auto':
    case 'js':
      return new JsEngine(candidates, numCandidates, dim);
  }
}

/** Candidates in tiles that fit in L2 beside the query block, dot products with four accumulators. */
class JsEngine implements ScoreEngine {
  readonly name = 'js';
  private free: Float32Array[] = [];

  constructor(
    private readonly candidates: Float32Array,
    private readonly numCandidates: number,
    private readonly dim: number,
  ) {}

  async score(rows: Float32Array): Promise<Float32Array> {
    const { candidates, numCandidates: n, dim } = this;
    const count = rows.length / dim;
    const size = count * n;
    let out = this.free.pop();
    if (!out || out.length < size) out = new Float32Array(size);
    else out = out.subarray(0, size);
    const tile = 128;
    for (let c0 = 0; c0 < n; c0 += tile) {
      const c1 = Math.min(n, c0 + tile);
      for (let r = 0; r < count; r++) {
        const qo = r * dim;
        for (let c = c0; c < c1; c++) {
          const co = c * dim;
          let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          let d = 0;
          for (; d + 3 < dim; d += 4) {
            s0 += rows[qo + d] * candidates[co + d];
            s1 += rows[qo + d + 1] * candidates[co + d + 1];
            s2 += rows[qo + d + 2] * candidates[co + d + 2];
            s3 += rows[qo + d + 3] * candidates[co + d + 3];
          }
          for (; d < dim; d++) s0 += rows[qo + d] * candidates[co + d];
          out[r * n + c] = s0 + s1 + (s2 + s3);
        }
      }
    }
    return out;
  }

  release(scores: Float32Array): void {
    this.free.push(scores);
  }

  async dispose(): Promise<void> {
    this.free = [];
  }
}
