// Stream the records of a large JSON file with the line each one starts on, so a bad record can be skipped and
// reported as `file:line` instead of failing the whole file. Three layouts:
//   - JSON lines (one value per line, as STL releases its pairs files),
//   - a JSON array (each element is a record),
//   - a JSON object (each `"key": value` member is a record, as STL releases its category files).
// A record's text is handed on unparsed: the caller parses and validates it. The container itself must be well
// formed (balanced, closed, nothing after it): if not, no record boundary can be trusted and the file is rejected.
import { createReadStream } from 'node:fs';
import { locatedError } from '../../util/errors.js';

export interface JsonRecord {
  /** 1-based line the record starts on. */
  line: number;
  /** The record's raw text: a JSON value, or for an object a `"key": value` member. */
  text: string;
}

export type RecordLayout = 'lines' | 'array' | 'object';

/**
 * Yield the records of `file`, a batch per read chunk (one promise per chunk, not per record: 100K rows stay
 * fast). `expect` says which layouts are allowed: the pairs file may be JSON lines or an array, the category file
 * is one object. `name` is what error messages call the file.
 */
export async function* readJsonRecords(
  file: string,
  expect: { lines?: boolean; array?: boolean; object?: boolean },
  name = file,
): AsyncGenerator<JsonRecord[]> {
  const stream = createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
  let layout: RecordLayout | undefined;
  let scanner: ContainerScanner | undefined;
  let pending = ''; // lines layout: the unfinished last line of the previous chunk
  let line = 1;
  for await (const chunk of stream as AsyncIterable<string>) {
    let text = chunk;
    if (layout === undefined) {
      const start = text.search(/\S/);
      if (start < 0) {
        line += countNewlines(text);
        continue;
      }
      layout = detectLayout(text[start]!, expect, name, line + countNewlines(text.slice(0, start)));
      if (layout !== 'lines') scanner = new ContainerScanner(name, line);
    }
    if (scanner) {
      yield scanner.feed(text);
      continue;
    }
    const records: JsonRecord[] = [];
    text = pending + text;
    let from = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', from)) {
      const record = text.slice(from, nl).trim();
      if (record) records.push({ line, text: record });
      line++;
      from = nl + 1;
    }
    pending = text.slice(from);
    yield records;
  }
  if (scanner) scanner.end();
  else if (pending.trim()) yield [lastLine(pending.trim(), line, name)];
}

/**
 * The lines layout's last line, which has no newline after it: when it is not JSON, the file was cut short (a
 * dropped connection) rather than holding a bad row, and no row of it can be trusted to be the last.
 */
function lastLine(text: string, line: number, name: string): JsonRecord {
  try {
    JSON.parse(text);
  } catch {
    throw locatedError(name, line, 'file', 'the last line to be whole JSON (is it truncated?)');
  }
  return { line, text };
}

function detectLayout(
  first: string,
  expect: { lines?: boolean; array?: boolean; object?: boolean },
  name: string,
  line: number,
): RecordLayout {
  if (first === '[' && expect.array) return 'array';
  if (first === '{' && expect.object) return 'object';
  if (expect.lines) return 'lines';
  const wanted = expect.array ? 'a JSON array' : 'a JSON object';
  throw locatedError(name, line, 'file', `${wanted}, found ${JSON.stringify(first)}`);
}

function countNewlines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const NEWLINE = 0x0a;
const COMMA = 0x2c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const BOM = 0xfeff;

/** Splits the top-level array or object into its elements/members, tracking strings, nesting and lines. */
class ContainerScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;
  private closed = false;
  private closer = 0;
  private parts: string[] = []; // text of the current record so far, when it spans chunks
  private recordLine = 0; // line the current record starts on; 0 when between records

  constructor(
    private readonly name: string,
    private line: number,
  ) {}

  feed(chunk: string): JsonRecord[] {
    const records: JsonRecord[] = [];
    // The hot loop works on locals (a few MB per file), saved back at the end.
    let { depth, inString, escaped, line, recordLine } = this;
    // Start of the current record's text in this chunk; -1 when between records. A record cut by the previous
    // chunk's end continues from this chunk's first character (which may be inside a string).
    let from = recordLine !== 0 ? 0 : -1;
    const fail = (expected: string) => locatedError(this.name, line, 'file', expected);
    for (let i = 0, n = chunk.length; i < n; i++) {
      const c = chunk.charCodeAt(i);
      if (c === NEWLINE) {
        line++;
        continue;
      }
      if (inString) {
        if (escaped) escaped = false;
        else if (c === BACKSLASH) escaped = true;
        else if (c === QUOTE) inString = false;
        continue;
      }
      if (c === 0x20 || c === 0x09 || c === 0x0d) continue;
      if (c === BOM && depth === 0 && !this.closed) continue; // a byte-order mark before the container
      if (this.closed) throw fail('nothing after the closing bracket');
      if (depth === 0) {
        // The opening bracket of the container (its kind was checked by detectLayout).
        this.closer = c === OPEN_ARRAY ? CLOSE_ARRAY : CLOSE_OBJECT;
        depth = 1;
        continue;
      }
      if (depth === 1 && (c === COMMA || c === this.closer)) {
        if (from >= 0) this.parts.push(chunk.slice(from, i));
        const text = this.parts.length === 1 ? this.parts[0]!.trim() : this.parts.join('').trim();
        this.parts = [];
        if (text) records.push({ line: recordLine, text });
        else if (c === COMMA) throw fail('a value before ","');
        recordLine = 0;
        from = -1;
        if (c === this.closer) {
          depth = 0;
          this.closed = true;
        }
        continue;
      }
      if (recordLine === 0) recordLine = line;
      if (from < 0) from = i;
      if (c === QUOTE) inString = true;
      else if (c === OPEN_ARRAY || c === OPEN_OBJECT) depth++;
      else if ((c === CLOSE_ARRAY || c === CLOSE_OBJECT) && --depth < 1) throw fail('balanced brackets');
    }
    if (from >= 0) this.parts.push(chunk.slice(from));
    Object.assign(this, { depth, inString, escaped, line, recordLine });
    return records;
  }

  /** At the end of the file: the container must have been closed. */
  end(): void {
    if (!this.closed) {
      const what = this.closer === CLOSE_ARRAY ? '"]"' : '"}"';
      throw locatedError(this.name, this.line, 'file', `the file to end with ${what} (is it truncated?)`);
    }
  }
}
