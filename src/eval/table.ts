// Plain-text tables of metrics for stderr: one row per (model, protocol), the columns every report has.
import type { EvalReport } from './evaluate.js';
import { RECALL_KS } from './metrics.js';
import type { Metrics } from './protocols.js';

export interface TableRow {
  label: string;
  metrics: Metrics | null;
  /** A short note after the numbers, e.g. "* 92% of scenes seen in training". */
  note?: string;
}

/** A fraction as a percentage with one decimal; '-' when there is none. */
export const percent = (x: number | undefined) =>
  x === undefined || Number.isNaN(x) ? '-' : `${(100 * x).toFixed(1)}%`;
const num = (x: number | undefined, digits: number) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits));

export function formatTable(rows: TableRow[]): string[] {
  const header = ['', 'queries', ...RECALL_KS.map((k) => `R@${k}`), 'MRR', 'median', 'mean', 'AUC', ''];
  const body = rows.map((r) => {
    const m = r.metrics;
    return [
      r.label,
      m && Number.isFinite(m.queries) ? String(m.queries) : '-',
      ...RECALL_KS.map((k) => percent(m?.recall[k])),
      num(m?.mrr, 3),
      num(m?.medianRank, 1),
      num(m?.meanRank, 1),
      m?.auc === undefined ? '-' : num(m.auc, 3),
      r.note ?? '',
    ];
  });
  const widths = header.map((h, c) => Math.max(h.length, ...body.map((row) => row[c].length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (c === 0 || c === cells.length - 1 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)];
}

/** Per-category rows of one report. */
export function formatCategoryTable(metrics: Metrics): string[] {
  const rows = Object.entries(metrics.perCategory ?? {}).map(([name, c]) => ({
    label: name,
    metrics: {
      protocol: metrics.protocol,
      queries: c.queries,
      recall: c.recall,
      mrr: c.mrr,
      medianRank: NaN,
      meanRank: NaN,
      auc: c.auc,
    },
  }));
  return formatTable(rows);
}

/** The table's note for a report: training-scene overlap, seed ties. */
export function reportNote(r: EvalReport): string {
  const notes: string[] = [];
  if (r.trainSceneOverlap)
    notes.push(
      `* ${((100 * r.trainSceneOverlap) / r.pairs.evaluated).toFixed(0)}% of these pairs' scenes were in training`,
    );
  if (r.metrics.ties && r.metrics.tiesBehind)
    notes.push(`${r.metrics.ties} tied diagonals (ties behind: MRR ${r.metrics.tiesBehind.mrr.toFixed(3)})`);
  return notes.join('; ');
}
