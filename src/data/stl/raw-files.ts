// Readers for the released STL files, with the validation policy: by default a bad row is skipped and counted by
// reason (with the first few `file:line` locations kept for the summary); in strict mode the first bad row stops
// the load with `file:line: field: what was expected`.
import { access } from 'node:fs/promises';
import type { BBox, Pair, Signature } from '../types.js';
import { readJsonRecords } from './json-records.js';
import { InputError, locatedError } from '../../util/errors.js';

/** Why a row was skipped. */
export type SkipReason =
  | 'malformed-json'
  | 'bad-signature'
  | 'bad-bbox'
  | 'no-category'
  | 'duplicate-pair'
  | 'bad-category'
  | 'duplicate-product';

export interface ValidationOptions {
  /** Stop at the first bad row (InputError) instead of skipping it. */
  strict?: boolean;
  /** What messages call the file (default: its path), e.g. the URL it came from. */
  name?: string;
  /** How many `file:line` examples the report keeps. */
  maxExamples?: number;
}

/** What loading one file found. */
export interface FileReport {
  file: string;
  /** Records read (non-blank lines, array elements or object members). */
  rows: number;
  kept: number;
  skipped: Partial<Record<SkipReason, number>>;
  /** The first few problems, `file:line: field: expected`. */
  examples: string[];
}

const SIGNATURE = /^[0-9a-f]{32}$/;

function isSignature(value: unknown): value is Signature {
  return typeof value === 'string' && SIGNATURE.test(value);
}

/** Counts bad rows, or throws at the first one in strict mode. */
class RowProblems {
  readonly report: FileReport;

  constructor(
    private readonly name: string,
    private readonly options: ValidationOptions,
  ) {
    this.report = { file: name, rows: 0, kept: 0, skipped: {}, examples: [] };
  }

  skip(reason: SkipReason, line: number, field: string, expected: string): void {
    const error = locatedError(this.name, line, field, expected);
    if (this.options.strict) throw error;
    this.report.skipped[reason] = (this.report.skipped[reason] ?? 0) + 1;
    if (this.report.examples.length < (this.options.maxExamples ?? 5)) this.report.examples.push(error.message);
  }
}

async function mustExist(file: string, what: string): Promise<void> {
  try {
    await access(file);
  } catch {
    throw new InputError(`${what} not found: ${file}`);
  }
}

/** The category file: one JSON object, signature → "Path|To|Leaf". Returns signature → full path. */
export async function readCategoryFile(
  file: string,
  options: ValidationOptions = {},
): Promise<{ categories: Map<Signature, string>; report: FileReport }> {
  await mustExist(file, 'category file');
  const name = options.name ?? file;
  const problems = new RowProblems(name, options);
  const categories = new Map<Signature, string>();
  const readMember = (line: number, text: string): void => {
    problems.report.rows++;
    const entry = parseMember(text);
    if (!entry)
      return problems.skip('malformed-json', line, 'member', `"signature": "category path" (got ${preview(text)})`);
    const [sig, path] = entry;
    if (!isSignature(sig))
      return problems.skip(
        'bad-signature',
        line,
        `key ${JSON.stringify(preview(sig))}`,
        '32 lower-case hex characters',
      );
    if (typeof path !== 'string' || !leafOf(path))
      return problems.skip(
        'bad-category',
        line,
        `category of ${sig}`,
        `a non-empty "A|B|Leaf" path (got ${JSON.stringify(path)})`,
      );
    if (categories.has(sig))
      return problems.skip('duplicate-product', line, `category of ${sig}`, 'each product listed once');
    categories.set(sig, path.trim());
    problems.report.kept++;
  };
  for await (const batch of readJsonRecords(file, { object: true }, name))
    for (const { line, text } of batch) readMember(line, text);
  return { categories, report: problems.report };
}

/**
 * `"key": value` → [key, value], or undefined when malformed. Parsed in two parts rather than as `{...}`: an object
 * per member, each with a new 32-character key, would cost V8 a hidden class per product.
 */
function parseMember(text: string): [string, unknown] | undefined {
  if (text.charCodeAt(0) !== 0x22) return undefined;
  let end = 1;
  while (end < text.length && text.charCodeAt(end) !== 0x22) end += text.charCodeAt(end) === 0x5c ? 2 : 1;
  const colon = text.indexOf(':', end + 1);
  if (end >= text.length || colon < 0 || text.slice(end + 1, colon).trim()) return undefined;
  try {
    return [JSON.parse(text.slice(0, end + 1)) as string, JSON.parse(text.slice(colon + 1))];
  } catch {
    return undefined;
  }
}

/** The leaf of a `|` category path ("" when there is none). */
export function leafOf(path: string): string {
  const parts = path.split('|');
  return parts[parts.length - 1]!.trim();
}

export interface PairsFile {
  /** The valid pairs, in file order. */
  pairs: Pair[];
  /** For each valid pair, the 0-based index of its record in the file (skipped rows keep their place). */
  rowOfPair: number[];
  report: FileReport;
}

/**
 * The pairs file: JSON lines `{"product", "scene", "bbox"}` as released, or a JSON array of them.
 * `hasCategory` rejects pairs whose product the category file does not list.
 */
export async function readPairsFile(
  file: string,
  hasCategory: (product: Signature) => boolean,
  options: ValidationOptions = {},
): Promise<PairsFile> {
  await mustExist(file, 'pairs file');
  const name = options.name ?? file;
  const problems = new RowProblems(name, options);
  const pairs: Pair[] = [];
  const rowOfPair: number[] = [];
  const firstLine = new Map<string, number>(); // scene+product → line of its first occurrence
  const readRow = (line: number, text: string): void => {
    const row = problems.report.rows++;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    if (!value || typeof value !== 'object' || Array.isArray(value))
      return problems.skip(
        'malformed-json',
        line,
        'row',
        `a JSON object {"product", "scene", "bbox"} (got ${preview(text)})`,
      );
    const { product, scene, bbox } = value as Record<string, unknown>;
    if (!isSignature(product))
      return problems.skip(
        'bad-signature',
        line,
        'product',
        `32 lower-case hex characters (got ${JSON.stringify(product)})`,
      );
    if (!isSignature(scene))
      return problems.skip(
        'bad-signature',
        line,
        'scene',
        `32 lower-case hex characters (got ${JSON.stringify(scene)})`,
      );
    const bboxProblem = checkBBox(bbox);
    if (bboxProblem) return problems.skip('bad-bbox', line, 'bbox', `${bboxProblem} (got ${JSON.stringify(bbox)})`);
    if (!hasCategory(product))
      return problems.skip('no-category', line, 'product', `a product listed in the category file (${product} is not)`);
    const key = scene + product;
    const seen = firstLine.get(key);
    if (seen !== undefined)
      return problems.skip('duplicate-pair', line, 'pair', `each (scene, product) once (first at line ${seen})`);
    firstLine.set(key, line);
    pairs.push({ product, scene, bbox: bbox as BBox });
    rowOfPair.push(row);
    problems.report.kept++;
  };
  for await (const batch of readJsonRecords(file, { lines: true, array: true }, name))
    for (const { line, text } of batch) readRow(line, text);
  return { pairs, rowOfPair, report: problems.report };
}

/** Why a value is not a [left, top, right, bottom] box inside 0..1, or undefined when it is one. */
function checkBBox(bbox: unknown): string | undefined {
  if (!Array.isArray(bbox) || bbox.length !== 4 || !bbox.every((v) => typeof v === 'number' && Number.isFinite(v)))
    return '4 numbers [left, top, right, bottom]';
  const [left, top, right, bottom] = bbox as number[];
  if (!bbox.every((v: number) => v >= 0 && v <= 1)) return 'coordinates within 0..1';
  if (left! >= right!) return 'left < right';
  if (top! >= bottom!) return 'top < bottom';
  return undefined;
}

function preview(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
