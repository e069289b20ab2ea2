// Ranking metrics from 1-based ranks. Every protocol reduces to "the rank of each target among its candidates",
// so these few functions are all the metrics there are.
//
// Ties are counted pessimistically upstream (src/eval/rank.ts): a candidate whose score equals the target's ranks
// ahead of it, so a model that scores everything equal gets the worst rank, never the best.

/** The k of Recall@k every report carries. */
export const RECALL_KS = [1, 5, 10, 50] as const;

type Ranks = ArrayLike<number>;

/** Fraction of queries whose target ranks within the top k. */
export function recallAtK(ranks: Ranks, k: number): number {
  if (ranks.length === 0) return 0;
  let hits = 0;
  for (let i = 0; i < ranks.length; i++) if (ranks[i] <= k) hits++;
  return hits / ranks.length;
}

/** Mean reciprocal rank. */
export function mrr(ranks: Ranks): number {
  if (ranks.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < ranks.length; i++) sum += 1 / ranks[i];
  return sum / ranks.length;
}

export function meanRank(ranks: Ranks): number {
  if (ranks.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < ranks.length; i++) sum += ranks[i];
  return sum / ranks.length;
}

/** The median (mean of the two middle ranks when the count is even). */
export function medianRank(ranks: Ranks): number {
  if (ranks.length === 0) return 0;
  const sorted = Float64Array.from(ranks).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * AUC of one query: the fraction of its negatives scored strictly below the target. With pessimistic ranks,
 * rank - 1 is exactly the number of negatives scored at or above it, so AUC = 1 - (rank - 1) / negatives.
 * Undefined (NaN) for a query with no negative.
 */
export function aucFromRank(rank: number, negatives: number): number {
  return negatives > 0 ? 1 - (rank - 1) / negatives : NaN;
}

/** Mean of the AUCs that are defined; undefined when none is (no query has a negative). */
export function meanAuc(ranks: Ranks, negatives: Ranks): number | undefined {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < ranks.length; i++) {
    const auc = aucFromRank(ranks[i], negatives[i]);
    if (Number.isNaN(auc)) continue;
    sum += auc;
    count++;
  }
  return count > 0 ? sum / count : undefined;
}

/** Recall@{1,5,10,50} keyed "1", "5", ... as the Metrics contract has it. */
function recallTable(ranks: Ranks): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of RECALL_KS) out[String(k)] = recallAtK(ranks, k);
  return out;
}

export interface RankSummary {
  queries: number;
  recall: Record<string, number>;
  mrr: number;
  medianRank: number;
  meanRank: number;
}

export function summariseRanks(ranks: Ranks): RankSummary {
  return {
    queries: ranks.length,
    recall: recallTable(ranks),
    mrr: mrr(ranks),
    medianRank: medianRank(ranks),
    meanRank: meanRank(ranks),
  };
}
