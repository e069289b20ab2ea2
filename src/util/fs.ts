// Questions about a path that must not throw: a missing path (or one we may not read) answers false.
import { stat } from 'node:fs/promises';

export async function pathExists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null;
}

export async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isDirectory() === true;
}

/** When the path was last modified (ms since the epoch), or undefined when it is not there. */
export async function modifiedAt(path: string): Promise<number | undefined> {
  return (await stat(path).catch(() => null))?.mtimeMs;
}
