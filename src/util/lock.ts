// One holder at a time, for work two processes must not do at once (training one run: both would write its
// checkpoints and metrics log). A lock is a small file beside what it guards, named for its holder as util/atomic
// names temp files (`.lock-<name>.<host>.<pid>.<thread>-<n>`). It is made first, then the others are looked at:
// two processes starting together both see the other and both refuse, never both run. The holder touches its file
// every HEARTBEAT_MS. A lock whose holder is gone (this host: no such process; another host or container: not
// touched for STALE_LOCK_MS) was left by a kill, and is removed by whoever looks.
import { rmSync } from 'node:fs';
import { readdir, readFile, rm, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { OWNER, ownedPathFor, ownerAlive, writeJsonAtomic } from './atomic.js';
import { InputError, RunError } from './errors.js';
import { pathExists } from './fs.js';

const MARK = '.lock-';
const HEARTBEAT_MS = 15_000;
/** Another host's lock untouched this long is a killed holder's (many heartbeats missed). */
export const STALE_LOCK_MS = 120_000;

/** What a lock file says of its holder. */
export interface LockHolder {
  host: string;
  pid: number;
  since: string;
}

export interface Lock {
  /** An error when the lock file is gone: another process took this holder for dead (its heartbeat stalled for
   * minutes, or the hosts' clocks disagree) and may be doing the same work now. */
  checkHeld(): Promise<void>;
  release(): Promise<void>;
}

/**
 * Take the lock on `path` (which need not exist; its folder must). When a live process holds it, an InputError
 * with `busy(holder, its lock file)`.
 */
export async function acquireLock(path: string, busy: (holder: LockHolder, file: string) => string): Promise<Lock> {
  const file = ownedPathFor(MARK, path);
  const holder: LockHolder = { host: hostname(), pid: process.pid, since: new Date().toISOString() };
  await writeJsonAtomic(file, holder);
  const others = (await liveLocks(path, { removeDead: true })).filter((other) => other !== file);
  if (others.length > 0) {
    await rm(file, { force: true });
    throw new InputError(busy(await readHolder(others[0]), others[0]));
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

/** Does a live process hold the lock on `path`? (Only reads: the folder may be read-only.) */
export async function isLocked(path: string): Promise<boolean> {
  return (await liveLocks(path, { removeDead: false })).length > 0;
}

/** The lock files of live holders of `path`'s lock; with `removeDead`, those of gone holders are removed. */
async function liveLocks(path: string, { removeDead }: { removeDead: boolean }): Promise<string[]> {
  const dir = dirname(path);
  const names = await readdir(dir).catch(() => [] as string[]);
  const live: string[] = [];
  for (const name of names) {
    if (!name.startsWith(MARK) || !OWNER.test(name)) continue;
    if (name.slice(MARK.length).replace(OWNER, '') !== basename(path)) continue; // another path's lock
    if (await ownerAlive(dir, name, STALE_LOCK_MS)) live.push(join(dir, name));
    else if (removeDead) await rm(join(dir, name), { force: true });
  }
  return live;
}

async function readHolder(file: string): Promise<LockHolder> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as LockHolder;
  } catch {
    return { host: 'an unknown host', pid: NaN, since: 'an unknown time' }; // released in the meantime
  }
}
