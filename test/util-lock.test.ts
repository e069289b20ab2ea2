// The lock that keeps two trainers off one run: a live holder (this process, another one, another host that keeps
// touching its file) refuses the next; a killed holder's lock is taken over. The child holder runs the built
// module (run `npm run build` first).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtemp, readdir, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InputError, RunError } from '../src/util/errors.js';
import { acquireLock, isLocked, STALE_LOCK_MS } from '../src/util/lock.js';

const LOCK_MODULE = join(process.cwd(), 'dist', 'util', 'lock.js');
const busy = (holder: { pid: number; host: string }, file: string) =>
  `held by ${holder.pid} on ${holder.host} (${file})`;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ctl-lock-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A child process holding the lock on `path` until killed, or exiting at SIGINT as `ctl train` does. */
async function childHolding(path: string) {
  const code = `const { acquireLock } = await import(${JSON.stringify(LOCK_MODULE)});
await acquireLock(${JSON.stringify(path)}, () => 'busy');
process.once('SIGINT', () => process.exit(130));
console.log('held');
setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(child.stdout!, 'data');
  return child;
}

/** The name of the lock file a holder of `path` left when killed with SIGKILL, and its pid. */
async function lockOfKilledHolder(path: string) {
  const child = await childHolding(path);
  child.kill('SIGKILL');
  await once(child, 'exit');
  const [name] = await readdir(dir);
  return { name, pid: child.pid! };
}

describe('acquireLock', () => {
  it('refuses while another holder lives, naming it, and is free again once it is released', async () => {
    const run = join(dir, 'v2');
    const lock = await acquireLock(run, busy);
    expect(await isLocked(run)).toBe(true);
    const second = acquireLock(run, busy);
    await expect(second).rejects.toThrow(InputError);
    await expect(acquireLock(run, busy)).rejects.toThrow(new RegExp(`held by ${process.pid} on .*\\.lock-v2\\.`));
    expect(await isLocked(join(dir, 'v2.1'))).toBe(false); // another run's name, though it begins the same
    await lock.release();
    expect(await isLocked(run)).toBe(false);
    await (await acquireLock(run, busy)).release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('takes over the lock of a holder killed with SIGKILL, and not that of a live one in another process', async () => {
    const run = join(dir, 'v2');
    const child = await childHolding(run);
    try {
      await expect(acquireLock(run, busy)).rejects.toThrow(`held by ${child.pid} on`);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    expect(await isLocked(run)).toBe(false);
    expect(await readdir(dir)).toHaveLength(1); // isLocked only reads (a dashboard on a read-only workdir)
    const lock = await acquireLock(run, busy);
    expect(await readdir(dir)).toHaveLength(1); // the killed holder's file is gone, ours is there
    await lock.checkHeld();
    await lock.release();
  });

  it("takes over a dead holder's lock whose pid a later process has (pids are reused: a restarted container)", async () => {
    const run = join(dir, 'v2');
    const { name: file, pid } = await lockOfKilledHolder(run);
    await sleep(3000); // the next process starts well after the lock was last written
    const later = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      // The dead holder's lock, as if its pid were the later process's.
      await rename(join(dir, file), join(dir, file.replace(`.${pid}.`, `.${later.pid}.`)));
      expect(await isLocked(run)).toBe(false);
      const lock = await acquireLock(run, busy);
      expect(await readdir(dir)).toHaveLength(1);
      await lock.release();
    } finally {
      later.kill('SIGKILL');
    }
  });

  it('tells its holder when another process removed the lock, taking the holder for dead', async () => {
    const lock = await acquireLock(join(dir, 'v2'), busy);
    const [name] = await readdir(dir);
    await rm(join(dir, name));
    await expect(lock.checkHeld()).rejects.toThrow(RunError);
    await expect(lock.checkHeld()).rejects.toThrow(
      /the lock was removed by another process, which took this one for dead/,
    );
    await lock.release();
  });

  it('is freed by a holder that exits without releasing it (ctl train stopped by SIGINT)', async () => {
    const child = await childHolding(join(dir, 'v2'));
    expect(await readdir(dir)).toHaveLength(1);
    child.kill('SIGINT');
    expect((await once(child, 'exit'))[0]).toBe(130);
    expect(await readdir(dir)).toEqual([]);
  });

  it("reads the holder from the lock's name when its content does not, and takes one older than that process", async () => {
    const run = join(dir, 'v2');
    const sleeper = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    try {
      // A lock in the name of a live process that is not a trainer (a pid reused after the trainer was killed).
      const file = await (async () => {
        const lock = await acquireLock(run, busy);
        const [name] = await readdir(dir);
        await lock.checkHeld();
        const renamed = join(dir, name.replace(`.${process.pid}.`, `.${sleeper.pid}.`));
        await rename(join(dir, name), renamed);
        await lock.release();
        return renamed;
      })();
      await writeFile(file, 'not JSON');
      await expect(acquireLock(run, busy)).rejects.toThrow(`held by ${sleeper.pid} on the host with id`);
      // Last written minutes before the process of its name started: that process is not its holder.
      const minutes = new Date(Date.now() - STALE_LOCK_MS - 1000);
      await utimes(file, minutes, minutes);
      expect(await isLocked(run)).toBe(false);
      await (await acquireLock(run, busy)).release();
      expect(await readdir(dir)).toEqual([]);
    } finally {
      sleeper.kill();
    }
  });

  it("takes another host's lock for live while it is touched, and for a killed holder's once left alone", async () => {
    const run = join(dir, 'v2');
    // The dead child's lock, renamed as if a process on another machine sharing the folder had made it.
    const { name } = await lockOfKilledHolder(run);
    const otherHost = join(dir, name.replace(/\.[0-9a-f]{8}\.(\d+)\./, '.00000000.$1.'));
    await rename(join(dir, name), otherHost);
    await expect(acquireLock(run, busy)).rejects.toThrow('held by');
    const ahead = new Date(Date.now() + 365 * 86_400_000); // a clock a year ahead does not keep it for a year
    await utimes(otherHost, ahead, ahead);
    expect(await isLocked(run)).toBe(false);
    const untouched = new Date(Date.now() - STALE_LOCK_MS - 1000);
    await utimes(otherHost, untouched, untouched);
    const lock = await acquireLock(run, busy);
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
  });
});
