// Blocked ranking: the rank of each query's target products among all candidates, and each query's top-k, from a
// score matrix (queries × candidates) computed one block of query rows at a time, so the whole matrix never sits
// in memory (30,000 × 38,000 floats would be 4.6 GB).
//
// Rank of target t for query q (1-based, pessimistic, "filtered"):
//   rank = 1 + #{ c : c != t, c not in exclude(q), score(q, c) >= score(q, t) }
// A candidate tied with the target counts as ranked ahead of it. The target's own score is read from the same
// score block as every other candidate's, so the engine's rounding can never make the target beat itself.
import { createScoreEngine, type EngineName, type ScoreEngine } from './engines.js';

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
    throw new Error(`rankTargets: matrix sizes ${queries.length}, ${candidates.length} are not multiples of dim ${dim}`);
  }
  if (targets.offsets.length !== numQueries + 1) throw new Error('rankTargets: targets.offsets must have numQueries + 1 entries');
  const topK = Math.min(task.topK ?? 0, numCandidates);
  const blockRows = Math.max(1, options.blockRows ?? defaultBlockRows(numCandidates));

  const ranks = new Int32Array(targets.ids.length);
  const ranksTiesBehind = task.tiesBehind ? new Int32Array(targets.ids.length) : undefined;
  const topIds = topK > 0 ? new Int32Array(numQueries * topK) : undefined;
  const topScores = topK > 0 ? new Float32Array(numQueries * topK) : undefined;
  const scan = new RowScanner(numCandidates, topK);

  const engine =
    typeof options.engine === 'object'
      ? options.engine
      : await createScoreEngine(options.engine ?? 'auto', candidates, numCandidates, dim, options.threads);
  try {
    // Score block b + 1 while block b is scanned: engines that run off the main thread overlap the two.
    let next = numQueries > 0 ? engine.score(queries.subarray(0, Math.min(blockRows, numQueries) * dim)) : undefined;
    for (let start = 0; start < numQueries; start += blockRows) {
      const rows = Math.min(blockRows, numQueries - start);
      const scores = await next!;
      const after = start + rows;
      next = after < numQueries ? engine.score(queries.subarray(after * dim, Math.min(after + blockRows, numQueries) * dim)) : undefined;
      for (let r = 0; r < rows; r++) {
        const q = start + r;
        const row = scores.subarray(r * numCandidates, (r + 1) * numCandidates);
        scan.ranks(row, targets, exclude, q, ranks, false);
        if (ranksTiesBehind) scan.ranks(row, targets, exclude, q, ranksTiesBehind, true);
        if (topIds && topScores) scan.top(row, topIds.subarray(q * topK, (q + 1) * topK), topScores.subarray(q * topK, (q + 1) * topK));
      }
      engine.release(scores);
      options.onProgress?.(after, numQueries);
    }
  } finally {
    await engine.dispose();
  }
  return { ranks, ranksTiesBehind, topIds, topScores };
}

/** About 32 MB of scores per block: large enough for an efficient matmul, small enough to stay bounded. */
function defaultBlockRows(numCandidates: number): number {
  return Math.max(16, Math.min(1024, Math.floor((8 << 20) / Math.max(1, numCandidates))));
}

/** The per-row work on a block of scores: counting for ranks, a running top-k. */
class RowScanner {
  private targetScores = new Float64Array(16);
  private counts = new Int32Array(16);

  constructor(
    private readonly numCandidates: number,
    private readonly topK: number,
  ) {}

  /** Pessimistic ranks (score >= target counts ahead), or with `strict` optimistic ones (only score > target). */
  ranks(row: Float32Array, targets: Csr, exclude: Csr | undefined, q: number, out: Int32Array, strict: boolean): void {
    const from = targets.offsets[q];
    const m = targets.offsets[q + 1] - from;
    if (m === 0) return;
    if (m > this.counts.length) {
      this.targetScores = new Float64Array(m);
      this.counts = new Int32Array(m);
    }
    const ts = this.targetScores;
    const counts = this.counts;
    let minTarget = Infinity;
    for (let k = 0; k < m; k++) {
      const s = row[targets.ids[from + k]];
      ts[k] = s;
      counts[k] = 0;
      if (s < minTarget) minTarget = s;
    }
    // One pass over the row: most scores fall below every target's and cost one comparison.
    const n = this.numCandidates;
    if (strict) {
      for (let k = 0; k < m; k++) {
        const t = ts[k];
        let c = 1; // the target itself, as in the pessimistic count
        for (let j = 0; j < n; j++) if (row[j] > t) c++;
        counts[k] = c;
      }
    } else if (m === 1) {
      const t = ts[0];
      let c = 0;
      for (let j = 0; j < n; j++) if (row[j] >= t) c++;
      counts[0] = c;
    } else {
      for (let j = 0; j < n; j++) {
        const s = row[j];
        if (s >= minTarget) for (let k = 0; k < m; k++) if (s >= ts[k]) counts[k]++;
      }
    }
    for (let k = 0; k < m; k++) {
      const t = targets.ids[from + k];
      const st = ts[k];
      // counts[k] includes the target itself (score >= its own); drop it and the filtered candidates at or above.
      let rank = counts[k];
      if (exclude) {
        for (let e = exclude.offsets[q]; e < exclude.offsets[q + 1]; e++) {
          const c = exclude.ids[e];
          if (c !== t && (strict ? row[c] > st : row[c] >= st)) rank--;
        }
      }
      // A NaN target score compares false everywhere: rank it last rather than first.
      out[from + k] = Number.isNaN(st) ? n : rank;
    }
  }

  /** The k best of a row, best first; a later candidate must beat (not tie) the k-th to enter. */
  top(row: Float32Array, ids: Int32Array, scores: Float32Array): void {
    const k = this.topK;
    let filled = 0;
    let threshold = -Infinity;
    const n = this.numCandidates;
    for (let j = 0; j < n; j++) {
      const s = row[j];
      if (filled === k && !(s > threshold)) continue;
      // Insert j keeping scores descending.
      let i = filled < k ? filled++ : k - 1;
      while (i > 0 && scores[i - 1] < s) {
        scores[i] = scores[i - 1];
        ids[i] = ids[i - 1];
        i--;
      }
      scores[i] = s;
      ids[i] = j;
      if (filled === k) threshold = scores[k - 1];
    }
  }
}

/** Build a Csr from per-row lists. */
export function toCsr(lists: ArrayLike<number>[]): Csr {
  const offsets = new Int32Array(lists.length + 1);
  for (let r = 0; r < lists.length; r++) offsets[r + 1] = offsets[r] + lists[r].length;
  const ids = new Int32Array(offsets[lists.length]);
  for (let r = 0; r < lists.length; r++) ids.set(Array.from(lists[r]), offsets[r]);
  return { offsets, ids };
}
