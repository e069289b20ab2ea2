// Reading a file the user named: a missing or unreadable one is bad input (exit 2), not a failed run.
import { readFile } from 'node:fs/promises';
import { InputError } from './errors.js';

export async function readInputFile(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new InputError(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}
