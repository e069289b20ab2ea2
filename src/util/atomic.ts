// Atomic writes: write a temp file in the same folder, fsync, rename. A kill at any moment leaves either the old
// file or the new one, never half of one. Temp and set-aside names carry their owner (host, pid, thread), so what a
// dead process left can be told from what a live one is writing, and removed.
import { createHash } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, rename, rm, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { isDirectory, modifiedAt } from './fs.js';

const TMP_MARK = '.tmp-';
const ASIDE_MARK = '.old-';

let tempCount = 0;

/** This machine, in 8 hex digits: pids are only comparable on one host (a container or pod is a host of its own). */
const HOST = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);

/** `<mark><name>.<host>.<pid>.<thread>-<count>` beside `path`, unique while this process lives. */
export function ownedPathFor(mark: string, path: string): string {
  const owner = `${HOST}.${process.pid}.${threadId}-${(tempCount++).toString(36)}`;
  return join(dirname(path), `${mark}${basename(path)}.${owner}`);
}

/**
 * A temp path beside `path`, recognisable by `cleanTempFiles`: `.tmp-<name>.<host>.<pid>.<thread>-<count>` (a
 * counter, not random bytes: the downloader names one per image).
 */
export const tempPathFor = (path: string) => ownedPathFor(TMP_MARK, path);

/** The folders this process has written into, each cleaned of dead processes' temp files on its first write. */
const cleanedDirs = new Map<string, Promise<number>>();

/** Write `data` to a fresh, fsynced temp file beside `path`; returns the temp path, for the caller to rename. */
export async function writeTemp(path: string, data: string | Uint8Array | Uint8Array[]): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  // What a killed writer left in this folder goes before this process adds its own (one listing per folder; a
  // leftover that cannot be removed is no reason to fail this write).
  if (!cleanedDirs.has(dirname(path)))
    cleanedDirs.set(
      dirname(path),
      cleanTempFiles(dirname(path)).catch(() => 0),
    );
  await cleanedDirs.get(dirname(path));
  const tmp = tempPathFor(path);
  const handle = await open(tmp, 'w');
  try {
    // writeFile, not write: one write may take only part of a buffer (a nearly full disk), writeFile goes on until
    // all of it is out or the disk refuses (ENOSPC).
    for (const chunk of Array.isArray(data) ? data : [data]) await handle.writeFile(chunk);
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
 * writing into the same folder, or this one) are left alone, and so is any name not made by `tempPathFor`.
 * Returns how many were removed.
 */
export async function cleanTempFiles(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  const stale = [];
  for (const name of names)
    if (name.startsWith(TMP_MARK) && OWNER.test(name) && !(await ownerAlive(dir, name))) stale.push(name);
  await Promise.all(stale.map((n) => rm(join(dir, n), { force: true, recursive: true })));
  return stale.length;
}

/** The suffix `ownedPathFor` gives a name: `.<host>.<pid>.<thread>-<count>` (older versions wrote no host). */
export const OWNER = /(?:\.([0-9a-f]{8}))?\.(\d+)\.\d+-[0-9a-z]+$/;

/** Was `name` (from `ownedPathFor`) made on this host? (Names of older versions carry no host: they were.) */
export function madeOnThisHost(name: string): boolean {
  const host = OWNER.exec(name)?.[1];
  return host === undefined || host === HOST;
}

/** How long another host's temp file must have been left untouched before it counts as abandoned. */
const OTHER_HOST_IDLE_MS = 60 * 60 * 1000;

/** When this process started, by the system clock (a file's mtime is compared with it). */
const PROCESS_START_MS = Date.now() - process.uptime() * 1000;

/**
 * Is the process a name from `ownedPathFor` names still running (or might it be)? A name of another host (a
 * machine sharing the folder, another container): only its age can tell, so it is taken for alive until left
 * untouched for OTHER_HOST_IDLE_MS. Our own pid may be an earlier process's too (a restarted container's node is
 * PID 1 again): a name of ours last written before this process started (with a margin for coarse file times) is
 * that earlier process's; so is another live pid's, read from /proc on Linux.
 */
export async function ownerAlive(
  dir: string,
  name: string,
  /** When the file was last written, where the caller has it already. */
  at: number | undefined = undefined,
): Promise<boolean> {
  const [, , pidText] = OWNER.exec(name) ?? [];
  const pid = Number(pidText);
  if (!(pid > 0)) return true; // not a name of ours: not ours to remove
  at ??= await modifiedAt(join(dir, name));
  if (at === undefined) return true; // gone meanwhile: nothing to remove
  if (!madeOnThisHost(name)) return Date.now() - at < OTHER_HOST_IDLE_MS;
  if (pid === process.pid) return at >= PROCESS_START_MS - 2000;
  try {
    process.kill(pid, 0); // signal 0: only asks whether the process exists
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by another user
  }
  // The pid may be another process's by now (pids are reused; a restarted container counts from 1 again): one
  // started after the file was last written cannot have written it.
  const started = await processStartedAt(pid);
  return started === undefined || started <= at + START_TIME_SLACK_MS;
}

/** When the machine booted (ms since the epoch; NaN where unknown): /proc/stat's btime, in seconds, read once. */
let bootMs: Promise<number> | undefined;
const bootTime = () =>
  (bootMs ??= readFile('/proc/stat', 'utf8').then(
    (text) => Number(/^btime (\d+)$/m.exec(text)?.[1]) * 1000,
    () => NaN,
  ));

/** How coarse a file system's modification times may be (ext3, HFS+: whole seconds). */
const START_TIME_SLACK_MS = 1000;

/**
 * When process `pid` started (ms since the epoch), from Linux's /proc; undefined where that cannot be read. Up to a
 * second early (the boot time is in whole seconds), which only ever takes a process for older than it is.
 */
async function processStartedAt(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, in parentheses): the 20th is the start time in clock
    // ticks after boot (USER_HZ, 100 on Linux).
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const started = (await bootTime()) + ticks * 10;
    return Number.isFinite(started) ? started : undefined;
  } catch {
    return undefined;
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

/**
 * Put the finished folder `tmp` at `path`, replacing the folder there: the old one steps aside first (named for
 * this process, so `restoreAside` in another process leaves it alone), then is removed once the new one has its
 * name. A kill between the two renames leaves the old folder aside, for `restoreAside` to put back; this one first
 * finishes what an earlier swap left, so there is never more than one folder aside to choose from.
 */
export async function replaceDir(tmp: string, path: string): Promise<void> {
  await restoreAside(path);
  const aside = (await isDirectory(path)) ? await setAside(path) : undefined;
  await rename(tmp, path);
  if (aside) await rm(aside, { recursive: true, force: true });
}

/**
 * Rename the folder `path` aside, under this process's name; returns the new path. Touched first: a rename keeps a
 * folder's time, and one last written before this process started would be taken for a dead process's (ownerAlive).
 */
export async function setAside(path: string): Promise<string> {
  const aside = ownedPathFor(ASIDE_MARK, path);
  const now = new Date();
  await utimes(path, now, now).catch(() => {}); // another user's folder cannot be touched: it keeps its time
  await rename(path, aside);
  return aside;
}

/**
 * Put the finished folder `tmp` at `path` unless the folder already there is one `keep` accepts: then that one stays
 * and `tmp` goes. (Another process made the same folder at the same moment and may be reading it; swapping it would
 * leave that reader a moment with no folder.)
 */
async function placeDirUnlessKept(tmp: string, path: string, keep: (path: string) => Promise<boolean>): Promise<void> {
  try {
    await rename(tmp, path); // only when nothing (or an empty folder) is at `path`
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
  }
  if (await keep(path)) await rm(tmp, { recursive: true, force: true });
  else await replaceDir(tmp, path);
}

/**
 * Write the folder `path` whole: `fill` writes its files into a fresh temp folder beside it, which then replaces
 * `path` (replaceDir), or, with `keep`, only a folder `keep` does not accept. A failure or a kill leaves the previous
 * folder (or none), never half of the new one; the temp folder goes on a failure, and on the next write beside it
 * after a kill.
 */
export async function writeDirAtomic<T>(
  path: string,
  fill: (tmp: string) => Promise<T>,
  keep?: (path: string) => Promise<boolean>,
): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  await cleanTempFiles(dirname(path));
  const tmp = tempPathFor(path);
  await mkdir(tmp);
  try {
    const result = await fill(tmp);
    if (keep) await placeDirUnlessKept(tmp, path, keep);
    else await replaceDir(tmp, path);
    return result;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Wait (up to `timeoutMs`) while a live process is between the two renames of a `replaceDir` of `path`: for that
 * instant the folder has no name, and a reader would take it for missing.
 */
export async function waitForSwap(path: string, timeoutMs = 2000): Promise<void> {
  for (const until = Date.now() + timeoutMs; Date.now() < until && (await betweenSwapRenames(path));)
    await new Promise((resolve) => setTimeout(resolve, 20));
}

/** Whether a process is between the two renames of a `replaceDir` of `path`: no folder there, one set aside. */
export async function betweenSwapRenames(path: string): Promise<boolean> {
  if (await isDirectory(path)) return false;
  const asideName = `${ASIDE_MARK}${basename(path)}`;
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  return names.some((name) => name !== asideName && name.replace(OWNER, '') === asideName);
}

/**
 * Finish what a `replaceDir` killed between its renames left: the folder a dead process set aside goes back to
 * `path` when nothing has that name, and is removed when something does. A live process's is left alone.
 */
export async function restoreAside(path: string): Promise<void> {
  const asideName = `${ASIDE_MARK}${basename(path)}`; // + the owner's suffix
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  for (const name of names) {
    if (name.replace(OWNER, '') !== asideName || (await ownerAlive(dirname(path), name))) continue;
    const aside = join(dirname(path), name);
    if (await isDirectory(path)) await rm(aside, { recursive: true, force: true });
    else await rename(aside, path);
  }
}
