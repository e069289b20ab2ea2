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
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch {
      // New run.
    }
    const kept: string[] = [];
    if (keepThroughStep !== null) {
      for (const line of text.split('\n')) {
        try {
          const record = JSON.parse(line) as MetricsRecord;
          if (record.step <= keepThroughStep) kept.push(line);
        } catch {
          // A line torn by a kill, or the trailing empty line.
        }
      }
    }
    await writeFileAtomic(path, kept.map((l) => l + '\n').join(''));
    return new MetricsLog(path);
  }

  async append(record: MetricsRecord): Promise<void> {
    await appendFile(this.path, JSON.stringify(record) + '\n');
  }
}
