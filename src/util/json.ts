// JSON from a file: a syntax error names the file, line and column (JSON.parse gives a character offset).
import { InputError } from './errors.js';

/** `text` parsed; an InputError `path:line:column: not valid JSON (why)` when it is not JSON. `hint`: what to do. */
export function parseJsonFile(text: string, path: string, hint = ''): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const offset = Number(/ in JSON at position (\d+)/.exec(message)?.[1] ?? text.length);
    const lines = text.slice(0, offset).split('\n');
    const why = message.replace(/ in JSON at position \d+.*$/, '');
    throw new InputError(
      `${path}:${lines.length}:${lines[lines.length - 1].length + 1}: not valid JSON (${why})${hint}`,
    );
  }
}
