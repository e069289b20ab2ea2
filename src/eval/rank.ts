// Blocked ranking: the rank of each query's target products among all candidates, and each query's top-k, from a
// score matrix (queries × candidates) computed one block of query rows at a time, so the whole matrix never sits
// in memory (30,000 × 38,000 floats would be 4.6 GB): one block of scores at a time. The scan (SIMD kernels) costs
// a small part of the matrix product, so it runs after each block rather than beside it.
//
// Rank of target t for query q (1-based, pessimistic, "filtered"):
//   rank = 1 + #{ c : c != t, c not in exclude(q), score(q, c) >= score(q, t) }
// A candidate tied with the target counts as ranked ahead of it. The target's own score is read from the same
// score block as every other candidate's, so the engine's rounding can never make the target beat itself.
import { createScoreEngine, type EngineName, type ScoreEngine } from './engines.js';
import { createScanKernels, type ScanKernels } from './scan-kernels.js';

/** Compressed rows: row r owns ids[offsets[r] .. offsets[r + 1]). */
export interface Csr {
  offsets: Int32Array;
  ids: Int32Array;
}

export interface RankTask {
  /** numQueries × dim, row-major. */
  queries: Float32Array;
  /** numCandidates × dim, row-major. */
  candidates: Float32Array;
  dim: number;
  /** Per query row, the candidate indices whose rank is wanted. */
  targets: Csr;
  /** Per query row, candidates removed from its ranking (filtered); may include its targets. Deduplicated. */
  exclude?: Csr;
  /** Also return each query's k best candidates (unfiltered), best first. 0 = none. */
  topK?: number;
  /** Also return the optimistic ranks (ties counted behind the target). */
  tiesBehind?: boolean;
}

export interface RankResult {
  /** Aligned with targets.ids. */
  ranks: Int32Array;
  /** With `tiesBehind`: 1 + #{ c : c != t, c not excluded, score(q, c) > score(q, t) }, aligned with targets.ids. */
  ranksTiesBehind?: Int32Array;
  /** numQueries × topK candidate indices, best first (ties: lower index first). */
  topIds?: Int32Array;
  topScores?: Float32Array;
}

export interface RankOptions {
  /** An engine by name, or one already built (disposed at the end). */
  engine?: EngineName | ScoreEngine;
  /** Threads the engine may use (default: one per core). */
  threads?: number;
  /** Query rows scored per block. */
  blockRows?: number;
  /** Called after each block with (rows done, rows total). */
  onProgress?: (done: number, total: number) => void;
}

export async function rankTargets(task: RankTask, options: RankOptions = {}): Promise<RankResult> {
  const { queries, candidates, dim, targets, exclude } = task;
  const numQueries = queries.length / dim;
  const numCandidates = candidates.length / dim;
  if (!Number.isInteger(numQueries) || !Number.isInteger(numCandidates)) {
    throw new Error(
      `rankTargets: matrix sizes ${queries.length}, ${candidates.length} are not multiples of dim ${dim}`,
    );
  }
  if (targets.offsets.length !== numQueries + 1)
    throw new Error('rankTargets: targets.offsets must have numQueries + 1 entries');
  const topK = Math.min(task.topK ?? 0, numCandidates);
  const blockRows = Math.max(1, Math.min(numQueries, options.blockRows ?? defaultBlockRows(numCandidates)));

  const ranks = new Int32Array(targets.ids.length);
  const ranksTiesBehind = task.tiesBehind ? new Int32Array(targets.ids.length) : undefined;
  const topIds = topK > 0 ? new Int32Array(numQueries * topK) : undefined;
  const topScores = topK > 0 ? new Float32Array(numQueries * topK) : undefined;
  if (numQueries === 0) return { ranks, ranksTiesBehind, topIds, topScores };

  const scan = new RowScanner(numCandidates, blockRows);
  const engine =
    typeof options.engine === 'object'
      ? options.engine
      : await createScoreEngine(options.engine ?? 'auto', candidates, numCandidates, dim, options.threads);
  try {
    for (let start = 0; start < numQueries; start += blockRows) {
      const rows = Math.min(blockRows, numQueries - start);
      const scores = await engine.score(queries.subarray(start * dim, (start + rows) * dim), scan.scores);
      for (let r = 0; r < rows; r++) {
        const q = start + r;
        const row = scores.subarray(r * numCandidates, (r + 1) * numCandidates);
        scan.ranks(row, targets, exclude, q, ranks, false);
        if (ranksTiesBehind) scan.ranks(row, targets, exclude, q, ranksTiesBehind, true);
        if (topIds && topScores)
          scan.top(row, topIds.subarray(q * topK, (q + 1) * topK), topScores.subarray(q * topK, (q + 1) * topK));
      }
      options.onProgress?.(start + rows, numQueries);
    }
  } finally {
    await engine.dispose();
  }
  return { ranks, ranksTiesBehind, topIds, topScores };
}

/**
 * About 32 MB of scores per block: large enough for an efficient matrix product, small enough to stay bounded.
 * (Exported for bench/eval, which times the engines on blocks of this size.)
 */
export function defaultBlockRows(numCandidates: number): number {
  return Math.max(16, Math.min(1024, Math.floor((8 << 20) / Math.max(1, numCandidates))));
}

/** The per-row work on a block of scores, with the SIMD kernels: counting for ranks, a running top-k. */
class RowScanner {
  private readonly kernels: ScanKernels;
  /** The block's scores, in the kernels' memory: the engine writes them there. */
  readonly scores: Float32Array;

  constructor(
    private readonly numCandidates: number,
    blockRows: number,
  ) {
    const floats = blockRows * numCandidates;
    this.kernels = createScanKernels(floats * 4);
    this.scores = new Float32Array(this.kernels.memory.buffer, 0, floats);
  }

  /** Pessimistic ranks (score >= target counts ahead), or with `strict` optimistic ones (only score > target). */
  ranks(row: Float32Array, targets: Csr, exclude: Csr | undefined, q: number, out: Int32Array, strict: boolean): void {
    const n = this.numCandidates;
    for (let k = targets.offsets[q]; k < targets.offsets[q + 1]; k++) {
      const t = targets.ids[k];
      const st = row[t];
      // Pessimistic: #{score >= st} counts the target itself, standing for the 1 of the rank.
      // Strict: #{score > st} = #{score >= the next float above st}, plus 1.
      let rank = strict
        ? 1 + this.kernels.countGe(row.byteOffset, n, nextFloatUp(st))
        : this.kernels.countGe(row.byteOffset, n, st);
      if (exclude) {
        for (let e = exclude.offsets[q]; e < exclude.offsets[q + 1]; e++) {
          const c = exclude.ids[e];
          if (c !== t && (strict ? row[c] > st : row[c] >= st)) rank--;
        }
      }
      // A NaN target score compares false everywhere: rank it last rather than first.
      out[k] = Number.isNaN(st) ? n : rank;
    }
  }

  /** The k best of a row, best first; a later candidate must beat (not tie) the k-th to enter. */
  top(row: Float32Array, ids: Int32Array, scores: Float32Array): void {
    const k = ids.length;
    const n = this.numCandidates;
    for (let j = 0; j < k; j++) this.insert(row[j], j, j, ids, scores);
    let j = this.kernels.firstAbove(row.byteOffset, k, n, scores[k - 1]);
    while (j < n) {
      this.insert(row[j], j, k - 1, ids, scores);
      j = this.kernels.firstAbove(row.byteOffset, j + 1, n, scores[k - 1]);
    }
  }

  /** Put candidate j with score s into the sorted top list, starting from slot `from` and moving up. */
  private insert(s: number, j: number, from: number, ids: Int32Array, scores: Float32Array): void {
    let i = from;
    while (i > 0 && scores[i - 1] < s) {
      scores[i] = scores[i - 1];
      ids[i] = ids[i - 1];
      i--;
    }
    scores[i] = s;
    ids[i] = j;
  }
}

const floatBits = new Float32Array(1);
const intBits = new Int32Array(floatBits.buffer);

/** The smallest float32 greater than x (x a finite float32). */
function nextFloatUp(x: number): number {
  if (x === 0) return 1.4e-45; // the smallest positive subnormal, rounded to float32
  floatBits[0] = x;
  intBits[0] += x > 0 ? 1 : -1;
  return floatBits[0];
}

/** Build a Csr from per-row lists. */
export function toCsr(lists: ArrayLike<number>[]): Csr {
  const offsets = new Int32Array(lists.length + 1);
  for (let r = 0; r < lists.length; r++) offsets[r + 1] = offsets[r] + lists[r].length;
  const ids = new Int32Array(offsets[lists.length]);
  for (let r = 0; r < lists.length; r++) ids.set(Array.from(lists[r]), offsets[r]);
  return { offsets, ids };
}
