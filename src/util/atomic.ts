// Atomic writes: write a temp file in the same folder, fsync, rename. A kill at any moment leaves either the old
// file or the new one, never half of one.
import { link, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';

const TMP_MARK = '.tmp-';

let tempCount = 0;

/**
 * A temp path beside `path`, recognisable by `cleanTempFiles`: `.tmp-<name>.<pid>.<thread>-<count>`, unique while
 * this process lives (a counter, not random bytes: the downloader names one per image).
 */
export function tempPathFor(path: string): string {
  return join(dirname(path), `${TMP_MARK}${basename(path)}.${process.pid}.${threadId}-${(tempCount++).toString(36)}`);
}

/** Write `data` to a fresh, fsynced temp file beside `path`; returns the temp path. */
async function writeTemp(path: string, data: string | Uint8Array | Uint8Array[]): Promise<string> {
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
  return tmp;
}

export async function writeFileAtomic(path: string, data: string | Uint8Array | Uint8Array[]): Promise<void> {
  await rename(await writeTemp(path, data), path);
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Remove the temp files that dead processes left in `dir` (not recursive); those of a live process (another run
 * writing into the same folder, or this one) are left alone. Returns how many were removed.
 */
export async function cleanTempFiles(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  const stale = names.filter((n) => n.startsWith(TMP_MARK) && !ownerAlive(n));
  await Promise.all(stale.map((n) => rm(join(dir, n), { force: true, recursive: true })));
  return stale.length;
}

/** Is the process whose pid a temp name carries (`.tmp-<name>.<pid>.<thread>-<count>`) still running? No pid: not alive. */
function ownerAlive(name: string): boolean {
  const pid = Number(/\.(\d+)\.[0-9a-z-]+$/.exec(name)?.[1]);
  if (!(pid > 0)) return false;
  try {
    process.kill(pid, 0); // signal 0: only asks whether the process exists
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by another user
  }
}

/**
 * Write `data` to `path` only if no file is there yet, atomically: the complete temp file is hard-linked into
 * place, which fails with EEXIST instead of replacing what another writer committed. Returns false on EEXIST.
 */
export async function writeFileExclusive(path: string, data: string | Uint8Array): Promise<boolean> {
  const tmp = await writeTemp(path, data);
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await rm(tmp, { force: true });
  }
}
