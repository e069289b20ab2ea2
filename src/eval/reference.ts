// The reference project's published numbers on STL-Fashion under its own (`seed`) protocol, to be printed beside
// ours. They are STL-Fashion results: beside synthetic runs they are a reference, not a comparison.
import type { Metrics } from './protocols.js';

export interface ReferenceRow {
  /** The config name whose hyper-parameters reproduce it. */
  config: 'v1' | 'v2';
  description: string;
  recall: Record<string, number>;
  mrr: number;
}

export const REFERENCE: ReferenceRow[] = [
  {
    config: 'v1',
    description: 'CLIP ViT-B/32 512-d, MLP 512→384→128, InfoNCE',
    recall: { '1': 0.061, '5': 0.179, '10': 0.254 },
    mrr: 0.126,
  },
  {
    config: 'v2',
    description: 'fashion SigLIP 768-d, residual towers, category emb., InfoNCE + 0.5·triplet',
    recall: { '1': 0.123, '5': 0.286, '10': 0.366 },
    mrr: 0.204,
  },
];

/** A reference row as Metrics for the table (what it did not report is NaN). */
export function referenceMetrics(row: ReferenceRow): Metrics {
  return {
    protocol: 'seed',
    queries: NaN,
    recall: { '50': NaN, ...row.recall },
    mrr: row.mrr,
    medianRank: NaN,
    meanRank: NaN,
  };
}
