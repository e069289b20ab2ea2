// JSON from a file: a file that is missing is told from one that is damaged, and a syntax error names the file and
// its line and column (Node 20's JSON.parse gives a place for some errors only: jsonc-parser finds it for the rest).
import { readFile } from 'node:fs/promises';
import { parse as parseCollectingErrors, type ParseError } from 'jsonc-parser';
import { InputError } from './errors.js';

/**
 * The JSON document in the file at `path`, or undefined when there is no such file; a file that does not read or
 * is not JSON is an InputError naming it (`hint`: what to do).
 */
export async function readJsonIfExists(path: string, hint = ''): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new InputError(`${path}: cannot read (${code ?? (err as Error).message})${hint}`);
  }
  return parseJsonFile(text, path, hint);
}

/**
 * `text` parsed (after a byte-order mark, which some editors write); an InputError `path:line:column: not valid
 * JSON (why)` when it is not JSON. `hint`: what to do.
 */
export function parseJsonFile(text: string, path: string, hint = ''): unknown {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  try {
    return JSON.parse(body);
  } catch (err) {
    const message = (err as Error).message;
    const position = /at position (\d+)/.exec(message)?.[1];
    // Node's words where it gives the place; else the place and the token jsonc-parser finds (Node's token may be
    // another one: after `tru` it names the `}`).
    const { offset, why } =
      position !== undefined
        ? { offset: Number(position), why: message.replace(/ (in JSON )?at position \d+.*$/, '') }
        : firstError(body);
    const lines = body.slice(0, offset).split('\n');
    throw new InputError(
      `${path}:${lines.length}:${lines[lines.length - 1].length + 1}: not valid JSON (${why})${hint}`,
    );
  }
}

/** Where strict JSON's first syntax error in `text` is, and the token there (or the end of the text). */
function firstError(text: string): { offset: number; why: string } {
  const errors: ParseError[] = [];
  parseCollectingErrors(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  const { offset = text.length, length = 0 } = errors[0] ?? {};
  const token = text.slice(offset, offset + length);
  return { offset, why: token ? `Unexpected token '${token}'` : 'Unexpected end of JSON input' };
}

/**
 * The dotted paths at which two JSON values differ, keys in sorted order; arrays are compared whole, and '' is the
 * path of the whole value.
 */
export function differingPaths(a: unknown, b: unknown, path = ''): string[] {
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((key) => differingPaths(a[key], b[key], path ? `${path}.${key}` : key));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [path];
}

/** The value at a dotted path ('' is the whole value), or undefined. */
export function valueAt(value: unknown, path: string): unknown {
  if (path === '') return value;
  for (const key of path.split('.')) value = (value as Record<string, unknown> | undefined)?.[key];
  return value;
}

/** A JSON object: not null, not an array. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
