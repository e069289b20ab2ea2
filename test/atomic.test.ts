// Temp-file cleaning: only the temp files of dead processes go, so two runs writing into one folder (e.g. two
// `ctl download --shard` runs in one workdir) never delete each other's files in flight.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  cleanTempFiles,
  ownerAlive,
  replaceDir,
  restoreAside,
  setAside,
  tempPathFor,
  waitForSwap,
  writeDirAtomic,
  writeJsonAtomic,
} from '../src/util/atomic.js';

/** tempPathFor(dest) as process `pid` would name it. */
const tempOf = (dest: string, pid: number) => tempPathFor(dest).replace(`.${process.pid}.`, `.${pid}.`);
/** The name replaceDir in process `pid` sets the old `dest` aside under. */
const asideOf = (dest: string, pid: number) => tempOf(dest, pid).replace('/.tmp-', '/.old-');
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid; // its process has exited

describe('cleanTempFiles', () => {
  it('removes the temp files of dead processes and keeps those of live ones', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-atomic-'));
    const dest = join(dir, 'image.jpg');
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); // a second live writer
    try {
      const otherTemp = tempOf(dest, other.pid!);
      const ownTemp = tempPathFor(dest);
      const deadTemp = tempOf(dest, deadPid());
      const notOurs = join(dir, '.tmp-image.jpg'); // no owner in the name: another tool's, left alone
      const otherHost = tempOf(dest, deadPid()).replace(/\.[0-9a-f]{8}\.(\d+)\./, '.00000000.$1.'); // a shared folder
      const abandoned = otherHost.replace('.tmp-image', '.tmp-other');
      for (const path of [dest, otherTemp, ownTemp, deadTemp, notOurs, otherHost, abandoned])
        await writeFile(path, 'x');
      const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
      await utimes(abandoned, twoHoursAgo, twoHoursAgo); // another host's, untouched for hours: abandoned
      const left = async () => (await readdir(dir)).sort();

      expect(await cleanTempFiles(dir)).toBe(2);
      const kept = [otherTemp, ownTemp, dest, notOurs, otherHost].map((p) => basename(p));
      expect(await left()).toEqual(kept.sort());

      other.kill('SIGKILL');
      await once(other, 'exit');
      expect(await cleanTempFiles(dir)).toBe(1); // the other writer died: its temp file is stale now
      expect(await left()).toEqual(kept.filter((name) => name !== basename(otherTemp)).sort());
    } finally {
      other.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("an atomic write first clears the folder of dead processes' temp files", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-atomic-'));
    try {
      const report = join(dir, 'catalog-test.json');
      const deadTemp = tempOf(report, deadPid()); // a run killed mid-write
      await writeFile(deadTemp, '{"half":');
      await writeJsonAtomic(report, { done: true });
      expect(await readdir(dir)).toEqual(['catalog-test.json']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('counts nothing in a folder that does not exist', async () => {
    expect(await cleanTempFiles(join(tmpdir(), 'ctl-atomic-missing', String(process.pid)))).toBe(0);
  });
});

describe('replaceDir and restoreAside', () => {
  const folderWith = async (path: string, text: string) => {
    await mkdir(path, { recursive: true });
    await writeFile(join(path, 'file'), text);
  };
  const textIn = (path: string) => readFile(join(path, 'file'), 'utf8');

  it('swaps a finished folder in, leaving nothing beside it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-atomic-'));
    try {
      const dest = join(dir, 'last');
      for (const text of ['first', 'second']) {
        const tmp = tempPathFor(dest);
        await folderWith(tmp, text);
        await replaceDir(tmp, dest);
        expect(await textIn(dest)).toBe(text);
        expect(await readdir(dir)).toEqual(['last']);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a swap first finishes what a killed one left, so a reader never gets an older folder back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-atomic-'));
    try {
      const dest = join(dir, 'best');
      await folderWith(asideOf(dest, deadPid()), 'epoch 1'); // a run killed between the renames: no 'best' now
      const tmp = tempPathFor(dest);
      await folderWith(tmp, 'epoch 2'); // the resumed run's next best
      await replaceDir(tmp, dest);
      expect(await readdir(dir)).toEqual(['best']);
      await rename(dest, asideOf(dest, deadPid())); // and killed between the renames of a later swap
      await restoreAside(dest);
      expect(await textIn(dest)).toBe('epoch 2');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a reader waits out a live process's swap instead of finding no folder", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-atomic-'));
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    try {
      const dest = join(dir, 'best');
      await folderWith(asideOf(dest, other.pid!), 'epoch 3'); // the trainer between its two renames
      const next = tempOf(dest, other.pid!);
      await folderWith(next, 'epoch 4');
      setTimeout(() => void rename(next, dest), 150); // ... and its new folder takes the name
      const started = performance.now();
      await waitForSwap(dest);
      expect(await textIn(dest)).toBe('epoch 4');
      expect(performance.now() - started).toBeLessThan(1500);
      await rm(dest, { recursive: true });
      const quick = performance.now();
      await waitForSwap(join(dir, 'last')); // nothing being swapped: no wait
      expect(performance.now() - quick).toBeLessThan(100);
    } finally {
      other.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a folder set aside is taken for its live owner's however old it is (a rename keeps its time)", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-atomic-'));
    try {
      const dest = join(dir, 'best');
      await folderWith(dest, 'epoch 1');
      const longAgo = new Date('2020-01-01');
      await utimes(dest, longAgo, longAgo); // a checkpoint kept since then
      const aside = await setAside(dest);
      expect(await ownerAlive(dir, basename(aside))).toBe(true);
      await restoreAside(dest); // another process's, while this one is between its renames
      expect(await readdir(dir)).toEqual([basename(aside)]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("puts back a dead process's folder set aside, and leaves a live one's and other names alone", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-atomic-'));
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    try {
      const dest = join(dir, 'v2');
      const liveAside = asideOf(dest, other.pid!); // another process is between its two renames
      const otherName = asideOf(join(dir, 'v2-scene'), deadPid()); // v2-scene's, not v2's
      await folderWith(liveAside, 'live');
      await folderWith(otherName, 'v2-scene');
      await restoreAside(dest);
      expect((await readdir(dir)).sort()).toEqual([basename(liveAside), basename(otherName)].sort());

      await folderWith(asideOf(dest, deadPid()), 'previous'); // a process killed between the renames
      await restoreAside(dest);
      expect(await textIn(dest)).toBe('previous');

      const stale = asideOf(dest, deadPid()); // killed after the new folder got its name
      await folderWith(stale, 'older');
      await restoreAside(dest);
      expect(await textIn(dest)).toBe('previous');
      expect(await readdir(dir)).not.toContain(basename(stale));
      expect(await readdir(dir)).toContain(basename(liveAside));
    } finally {
      other.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("takes a name of this process's pid written before it started for an earlier process's (a container's PID 1)", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-atomic-'));
    try {
      const dest = join(dir, 'last');
      const aside = asideOf(dest, process.pid); // as the container before this one named it
      const temp = tempPathFor(join(dir, 'image.jpg'));
      await folderWith(aside, 'previous');
      await writeFile(temp, 'partial');
      const hourAgo = new Date(Date.now() - 3_600_000);
      for (const path of [aside, temp]) await utimes(path, hourAgo, hourAgo);
      await restoreAside(dest);
      expect(await textIn(dest)).toBe('previous');
      expect(await cleanTempFiles(dir)).toBe(1);
      expect(await readdir(dir)).toEqual(['last']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('writeDirAtomic', () => {
  it('replaces the folder whole; a failing fill keeps the old one and leaves no temp folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-atomic-'));
    try {
      const dest = join(dir, 'export');
      const fill = (text: string) => async (tmp: string) => {
        await writeFile(join(tmp, 'a'), text);
        return text;
      };
      expect(await writeDirAtomic(dest, fill('first'))).toBe('first');
      const failing = async (tmp: string) => {
        await writeFile(join(tmp, 'a'), 'half');
        throw new Error('disk full');
      };
      await expect(writeDirAtomic(dest, failing)).rejects.toThrow('disk full');
      expect([await readdir(dir), await readFile(join(dest, 'a'), 'utf8')]).toEqual([['export'], 'first']);
      // What a killed writer left beside it goes with the next write.
      await mkdir(tempOf(dest, deadPid()));
      await writeDirAtomic(dest, fill('second'));
      expect([await readdir(dir), await readdir(dest), await readFile(join(dest, 'a'), 'utf8')]).toEqual([
        ['export'],
        ['a'],
        'second',
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('with keep: a folder already there that keep accepts stays and the new one goes; one it refuses is replaced', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-atomic-'));
    try {
      const dest = join(dir, 'model');
      const write = (text: string) => (tmp: string) => writeFile(join(tmp, 'a'), text);
      const isCurrent = async (path: string) => (await readFile(join(path, 'a'), 'utf8')) === 'current';
      await writeDirAtomic(dest, write('stale'), isCurrent);
      await writeDirAtomic(dest, write('current'), isCurrent);
      const inode = (await stat(dest)).ino;
      await writeDirAtomic(dest, write('current'), isCurrent);
      expect([await readdir(dir), await readFile(join(dest, 'a'), 'utf8'), (await stat(dest)).ino]).toEqual([
        ['model'],
        'current',
        inode,
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('writeFileAtomic on a full disk', () => {
  it('a write the disk cuts short fails, leaving the old file and no temp file, never part of the new one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-atomic-'));
    try {
      const dest = join(dir, 'state.json');
      await writeFile(dest, 'old');
      const atomic = pathToFileURL(resolve('dist/util/atomic.js')).href;
      const script =
        `import { writeFileAtomic } from ${JSON.stringify(atomic)};` +
        `await writeFileAtomic(process.argv[1], new Uint8Array(64 * 1024)).then(() => console.log('written'), (e) => console.log(e.code));`;
      // A file-size limit (ulimit -f, 1 KiB blocks) cuts a write short as a full disk does: the kernel takes only
      // part of the buffer and says how much; the next write fails (EFBIG here, ENOSPC on a full disk).
      const child = spawnSync(
        'bash',
        ['-c', 'ulimit -f 16 && exec "$0" --input-type=module -e "$1" "$2"', process.execPath, script, dest],
        { encoding: 'utf8' },
      );
      expect([child.stdout.trim(), child.stderr]).toEqual(['EFBIG', '']);
      expect([await readdir(dir), await readFile(dest, 'utf8')]).toEqual([['state.json'], 'old']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
