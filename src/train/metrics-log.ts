// runs/<name>/metrics.jsonl: one JSON record per line, `{"type": "step", ...}` every step and
// `{"type": "epoch", ...}` after each validation, for plots and notebooks (pandas.read_json(lines=True)).
// A resumed run first drops the records past its checkpoint (and a line torn by the kill), so the file
// reads as one uninterrupted run.
import { appendFile, readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../util/atomic.js';

export type MetricsRecord = { type: 'step' | 'epoch' | 'zero-shot'; step: number } & Record<string, unknown>;

export class MetricsLog {
  private constructor(readonly path: string) {}

  /** Open for appending; with `keepThroughStep`, keep only the records up to that step (resume). */
  static async open(path: string, keepThroughStep: number | null): Promise<MetricsLog> {
    const kept = keepThroughStep === null ? [] : (await readMetrics(path)).filter((r) => r.step <= keepThroughStep);
    await writeFileAtomic(path, kept.map((r) => JSON.stringify(r) + '\n').join(''));
    return new MetricsLog(path);
  }

  async append(record: MetricsRecord): Promise<void> {
    await appendFile(this.path, JSON.stringify(record) + '\n');
  }
}

/**
 * The records of a metrics.jsonl, in order; none when there is no file. A line that does not parse is passed over:
 * one torn by a kill, or being written right now.
 */
export async function readMetrics(path: string): Promise<MetricsRecord[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.split('\n').flatMap((line) => {
    try {
      return line ? [JSON.parse(line) as MetricsRecord] : [];
    } catch {
      return [];
    }
  });
}
