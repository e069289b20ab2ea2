// One holder at a time, for work two processes must not do at once (training one run: both would write its
// checkpoints and metrics log). A lock is a small file beside what it guards, named for its holder as util/atomic
// names temp files (`.lock-<name>.<host>.<pid>.<thread>-<n>`). It is made first, then the others are looked at, so
// of two processes starting together at most one goes on (the other refuses, or tries again if the first let go).
// The holder touches its file every HEARTBEAT_MS. A lock was left by a kill, and is removed by the next process that
// wants it, when this host no longer runs its process, or when it is untouched for STALE_LOCK_MS (another host's:
// no process can be asked there) or for SAME_HOST_STALE_MS (this host's: its pid may be another process's by now;
// longer, as a live holder's event loop may be busy for minutes between two heartbeats).
import { rmSync } from 'node:fs';
import { readdir, readFile, rm, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as z from 'zod';
import { madeOnThisHost, OWNER, ownedPathFor, ownerAlive, writeJsonAtomic } from './atomic.js';
import { InputError, RunError } from './errors.js';
import { modifiedAt, pathExists } from './fs.js';
import { int, nonEmptyString, object, parseWith } from './schema.js';

const MARK = '.lock-';
const HEARTBEAT_MS = 15_000;
/** Another host's lock untouched this long is a killed holder's (many heartbeats missed). */
export const STALE_LOCK_MS = 120_000;
const SAME_HOST_STALE_MS = 60 * 60 * 1000;

/** What a lock file says of its holder. */
const lockHolderSchema = object({ host: nonEmptyString(), pid: int(1), since: nonEmptyString() });
export type LockHolder = z.output<typeof lockHolderSchema>;

export interface Lock {
  /** An error when the lock file is gone: another process took this holder for dead (its heartbeat stalled for
   * minutes, or the hosts' clocks disagree) and may be doing the same work now. */
  checkHeld(): Promise<void>;
  release(): Promise<void>;
}

/** The end of a busy message: who holds the lock, and what the user can do. */
export function heldBy(holder: LockHolder, file: string): string {
  return (
    `process ${holder.pid} on ${holder.host} since ${holder.since}; wait for it, or stop it (its lock ${file} ` +
    `lapses once its process is gone)`
  );
}

/**
 * Take the lock on `path` (which need not exist; its folder must). When a live process holds it, an InputError
 * with `busy(holder, its lock file, the name it was taken on)`. `conflicts` widens what holds it: it is asked the
 * name (a base name of a path) of every other lock in the folder, and must be symmetric (a's lock conflicts with
 * b's when b's does with a's); by default only a lock on `path` itself conflicts.
 */
export async function acquireLock(
  path: string,
  busy: (holder: LockHolder, file: string, name: string) => string,
  conflicts: (name: string) => boolean = sameName(path),
): Promise<Lock> {
  const file = ownedPathFor(MARK, path);
  const holder: LockHolder = { host: hostname(), pid: process.pid, since: new Date().toISOString() };
  for (let attempt = 1; ; attempt++) {
    await writeJsonAtomic(file, holder);
    const others = (await liveLocks(dirname(path), conflicts, { removeDead: true })).filter((other) => other !== file);
    if (others.length === 0) break;
    await rm(file, { force: true });
    // Another process starting at the same moment may have seen this one's file and let go already: try again.
    const other = await readHolder(others[0]);
    if (other || attempt === 3)
      throw new InputError(busy(other ?? holderNamedBy(others[0]), others[0], lockedName(basename(others[0]))));
    await sleep(50 + 200 * Math.random());
  }
  const now = () => new Date();
  const heartbeat = setInterval(() => void utimes(file, now(), now()).catch(() => {}), HEARTBEAT_MS).unref();
  // A process that exits without releasing (`ctl train` on SIGINT) frees the lock on the way out.
  const removeOnExit = () => rmSync(file, { force: true });
  process.once('exit', removeOnExit);
  return {
    async checkHeld() {
      if (!(await pathExists(file)))
        throw new RunError(
          `${file}: the lock was removed by another process, which took this one for dead (its heartbeat ` +
            `stopped for ${STALE_LOCK_MS / 60_000} minutes, or this host's clock is that far off): stopping`,
        );
    },
    async release() {
      clearInterval(heartbeat);
      process.off('exit', removeOnExit);
      await rm(file, { force: true });
    },
  };
}

/**
 * Who holds the lock on `path`, when another process does (this one's own locks do not count); else null. `held`
 * widens it as acquireLock's `conflicts` does: to every lock in the folder whose name it accepts.
 */
export async function otherHolder(
  path: string,
  held: (name: string) => boolean = sameName(path),
): Promise<{ holder: LockHolder; file: string } | null> {
  const ours = (file: string) => madeOnThisHost(basename(file)) && holderNamedBy(file).pid === process.pid;
  const [file] = (await liveLocks(dirname(path), held, { removeDead: false })).filter((f) => !ours(f));
  return file === undefined ? null : { holder: (await readHolder(file)) ?? holderNamedBy(file), file };
}

/** Does a live process hold the lock on `path`? (Only reads: the folder may be read-only.) */
export async function isLocked(path: string): Promise<boolean> {
  return (await liveLocks(dirname(path), sameName(path), { removeDead: false })).length > 0;
}

const sameName = (path: string) => (name: string) => name === basename(path);

/** The name a lock file in the folder was taken on (`.lock-<name>.<owner>`). */
const lockedName = (fileName: string) => fileName.slice(MARK.length).replace(OWNER, '');

/**
 * The files in `dir` of live holders of the locks whose names `held` accepts; with `removeDead`, those of gone
 * holders are removed.
 */
async function liveLocks(
  dir: string,
  held: (name: string) => boolean,
  { removeDead }: { removeDead: boolean },
): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const live: string[] = [];
  for (const name of names) {
    if (!name.startsWith(MARK) || !OWNER.test(name)) continue;
    if (!held(lockedName(name))) continue; // another path's lock, or one that is no bar
    if (await holderAlive(dir, name)) live.push(join(dir, name));
    else if (removeDead) await rm(join(dir, name), { force: true });
  }
  return live;
}

/** Touched lately (either way: another host's clock may run ahead), by a process that lives (see the top). */
async function holderAlive(dir: string, name: string): Promise<boolean> {
  const at = await modifiedAt(join(dir, name));
  const staleAfter = madeOnThisHost(name) ? SAME_HOST_STALE_MS : STALE_LOCK_MS;
  return at !== undefined && Math.abs(Date.now() - at) < staleAfter && (await ownerAlive(dir, name, at));
}

/** What the lock file says of its holder; what its name says when its content does not read; null when gone. */
async function readHolder(file: string): Promise<LockHolder | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return null;
  }
  let content: unknown = null;
  try {
    content = JSON.parse(text);
  } catch {
    // not JSON: the name says enough
  }
  const named = holderNamedBy(file);
  // The pid in the name is the one whose life decides the lock.
  const read = parseWith(lockHolderSchema, content).value;
  return read ? { ...read, pid: named.pid } : named;
}

function holderNamedBy(file: string): LockHolder {
  const [, host, pid] = OWNER.exec(file) ?? [];
  return { host: `the host with id ${host}`, pid: Number(pid), since: 'an unknown time' };
}
