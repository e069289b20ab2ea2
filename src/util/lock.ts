// One holder at a time, for work two processes must not do at once (training one run: both would write its
// checkpoints and metrics log). A lock is a small file beside what it guards, named for its holder as util/atomic
// names temp files (`.lock-<name>.<host>.<pid>.<thread>-<n>`). It is made first, then the others are looked at:
// two processes starting together both see the other and both refuse, never both run. The holder touches its file
// every HEARTBEAT_MS. A lock not touched for STALE_LOCK_MS, or of a process this host no longer runs, was left by a
// kill (its pid may be another process's by now), and is removed by the next process that wants it.
import { rmSync } from 'node:fs';
import { readdir, readFile, rm, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { OWNER, ownedPathFor, ownerAlive, writeJsonAtomic } from './atomic.js';
import { InputError, RunError } from './errors.js';
import { modifiedAt, pathExists } from './fs.js';

const MARK = '.lock-';
const HEARTBEAT_MS = 15_000;
/** A lock untouched this long is a killed holder's (many heartbeats missed). */
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
  for (let attempt = 1; ; attempt++) {
    await writeJsonAtomic(file, holder);
    const others = (await liveLocks(path, { removeDead: true })).filter((other) => other !== file);
    if (others.length === 0) break;
    await rm(file, { force: true });
    // Another process starting at the same moment may have seen this one's file and let go already: try again.
    const other = await readHolder(others[0]);
    if (other || attempt === 3) throw new InputError(busy(other ?? holderNamedBy(others[0]), others[0]));
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
    if (await holderAlive(dir, name)) live.push(join(dir, name));
    else if (removeDead) await rm(join(dir, name), { force: true });
  }
  return live;
}

/** Touched within STALE_LOCK_MS (either way: another host's clock may run ahead), and by a process that lives. */
async function holderAlive(dir: string, name: string): Promise<boolean> {
  const at = await modifiedAt(join(dir, name));
  return at !== undefined && Math.abs(Date.now() - at) < STALE_LOCK_MS && (await ownerAlive(dir, name));
}

/** What the lock file says of its holder; what its name says when its content does not read; null when gone. */
async function readHolder(file: string): Promise<LockHolder | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const holder = JSON.parse(text) as Partial<LockHolder> | null;
    if (typeof holder?.host === 'string' && Number.isInteger(holder.pid) && typeof holder.since === 'string')
      return holder as LockHolder;
  } catch {
    // not JSON: the name says enough
  }
  return holderNamedBy(file);
}

function holderNamedBy(file: string): LockHolder {
  const [, host, pid] = OWNER.exec(file) ?? [];
  return { host: `the host with id ${host}`, pid: Number(pid), since: 'an unknown time' };
}
