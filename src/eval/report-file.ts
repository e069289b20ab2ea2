// An eval report read back from its file (export's model card, serve's dashboard): the numbers they print are
// checked, so a damaged file is named instead of printed as NaN or crashing a formatter.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { runPaths } from '../data/workdir.js';
import { InputError } from '../util/errors.js';
import { readJsonIfExists } from '../util/json.js';
import type { EvalReport } from './evaluate.js';
import { RECALL_KS } from './metrics.js';
import { PROTOCOLS } from './protocols.js';

const isRate = (x: unknown) => typeof x === 'number' && x >= 0 && x <= 1;
const isRank = (x: unknown) => typeof x === 'number' && x >= 1;

/** `value` (the parsed JSON of `file`) as an EvalReport; an InputError naming the first field that is not one. */
function checkEvalReport(value: unknown, file: string): EvalReport {
  const fail = (field: string, expected: string): never => {
    throw new InputError(`${file}: ${field}: expected ${expected} (\`ctl eval\` writes the report anew)`);
  };
  const report = value as EvalReport;
  if (typeof report !== 'object' || report === null) fail('the report', 'a JSON object');
  if (!PROTOCOLS.includes(report.protocol)) fail('protocol', `one of ${PROTOCOLS.join(', ')}`);
  if (report.backend !== undefined && typeof report.backend !== 'string') fail('backend', 'a string');
  const m = report.metrics;
  if (typeof m !== 'object' || m === null) fail('metrics', 'an object');
  if (!(Number.isInteger(m.queries) && m.queries >= 0)) fail('metrics.queries', 'a count');
  for (const k of RECALL_KS) if (!isRate(m.recall?.[k])) fail(`metrics.recall.${k}`, 'a number from 0 to 1');
  if (!isRate(m.mrr)) fail('metrics.mrr', 'a number from 0 to 1');
  for (const field of ['medianRank', 'meanRank'] as const) if (!isRank(m[field])) fail(`metrics.${field}`, 'a rank');
  if (m.auc !== undefined && !isRate(m.auc)) fail('metrics.auc', 'a number from 0 to 1');
  return report;
}

/**
 * A run's `ctl eval` reports (runs/<run>/eval/*.json) by name (the file's, less .json), in name order. A damaged
 * report throws its InputError, unless `onDamaged` takes it (the report is then left out).
 */
export async function readEvalReports(
  runDir: string,
  onDamaged?: (err: InputError) => void,
): Promise<Map<string, EvalReport>> {
  const dir = runPaths(runDir).evalDir;
  const names = await readdir(dir).catch(() => [] as string[]);
  const reports = new Map<string, EvalReport>();
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    const file = join(dir, name);
    try {
      const document = await readJsonIfExists(file);
      if (document !== undefined) reports.set(name.slice(0, -'.json'.length), checkEvalReport(document, file));
    } catch (err) {
      if (!(onDamaged && err instanceof InputError)) throw err;
      onDamaged(err);
    }
  }
  return reports;
}
