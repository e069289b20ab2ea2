// Questions about a path that must not throw: a missing path (or one we may not read) answers false.
import { lstat, readdir, realpath, stat, statfs } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

export async function pathExists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null;
}

export async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isDirectory() === true;
}

/** The names of the folders in `dir`, links to folders included, sorted; none when `dir` cannot be read. */
export async function subfolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const folders = await Promise.all(
    entries.map(async (e) =>
      e.isDirectory() || (e.isSymbolicLink() && (await isDirectory(join(dir, e.name)))) ? [e.name] : [],
    ),
  );
  return folders.flat().sort();
}

/** When the path was last modified (ms since the epoch), or undefined when it is not there. */
export async function modifiedAt(path: string): Promise<number | undefined> {
  return (await stat(path).catch(() => null))?.mtimeMs;
}

/** The path `path` names once links are followed (resolved as it is while it does not exist): two paths of one folder
 * compare equal. */
export async function realFolder(path: string): Promise<string> {
  return realpath(path).catch(() => resolve(path));
}

/** `path` or the nearest folder above it that exists (a link counts as existing, followed or not). */
export async function nearestExisting(path: string): Promise<string> {
  let found = path;
  while (!(await lstat(found).catch(() => null)) && dirname(found) !== found) found = dirname(found);
  return found;
}

/** Bytes free to this user on the file system that holds `path` (or would: its nearest existing folder). */
export async function freeBytes(path: string): Promise<number | undefined> {
  const fs = await statfs(await nearestExisting(resolve(path))).catch(() => null);
  return fs ? fs.bavail * fs.bsize : undefined;
}

/** The bytes of the files under `dir` (0 when there is none). */
export async function folderBytes(dir: string): Promise<number> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  const sizes = await Promise.all(
    entries
      .filter((e) => e.isFile())
      .map((e) =>
        stat(join(e.parentPath ?? e.path, e.name)).then(
          (s) => s.size,
          () => 0,
        ),
      ),
  );
  return sizes.reduce((a, b) => a + b, 0);
}
