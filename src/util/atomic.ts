// Atomic writes: write a temp file in the same folder, fsync, rename. A kill at any moment leaves either the old
// file or the new one, never half of one.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const TMP_MARK = '.tmp-';

/** A temp path beside `path`, recognisable by `cleanTempFiles`. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `${TMP_MARK}${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}`);
}

export async function writeFileAtomic(path: string, data: string | Uint8Array | Uint8Array[]): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  const handle = await open(tmp, 'w');
  try {
    for (const chunk of Array.isArray(data) ? data : [data]) {
      if (typeof chunk === 'string') await handle.write(chunk);
      else await handle.write(chunk);
    }
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  await rename(tmp, path);
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/** Remove temp files a killed run left in `dir` (not recursive). Returns how many were removed. */
export async function cleanTempFiles(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  const stale = names.filter((n) => n.startsWith(TMP_MARK));
  await Promise.all(stale.map((n) => rm(join(dir, n), { force: true, recursive: true })));
  return stale.length;
}
