// Temp-file cleaning: only the temp files of dead processes go, so two runs writing into one folder (e.g. two
// `ctl download --shard` runs in one workdir) never delete each other's files in flight.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanTempFiles, tempPathFor } from '../src/util/atomic.js';

/** tempPathFor(dest) as process `pid` would name it. */
const tempOf = (dest: string, pid: number) => tempPathFor(dest).replace(`.${process.pid}.`, `.${pid}.`);

describe('cleanTempFiles', () => {
  it('removes the temp files of dead processes and keeps those of live ones', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-atomic-'));
    const dest = join(dir, 'image.jpg');
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); // a second live writer
    try {
      const otherTemp = tempOf(dest, other.pid!);
      const ownTemp = tempPathFor(dest);
      const deadTemp = tempOf(dest, spawnSync(process.execPath, ['-e', '']).pid); // its process has exited
      const noPid = join(dir, '.tmp-image.jpg'); // a temp name without an owner: stale
      for (const path of [dest, otherTemp, ownTemp, deadTemp, noPid]) await writeFile(path, 'x');
      const left = async () => (await readdir(dir)).sort();

      expect(await cleanTempFiles(dir)).toBe(2);
      expect(await left()).toEqual([basename(otherTemp), basename(ownTemp), basename(dest)].sort());

      other.kill('SIGKILL');
      await once(other, 'exit');
      expect(await cleanTempFiles(dir)).toBe(1); // the other writer died: its temp file is stale now
      expect(await left()).toEqual([basename(ownTemp), basename(dest)].sort());
    } finally {
      other.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('counts nothing in a folder that does not exist', async () => {
    expect(await cleanTempFiles(join(tmpdir(), 'ctl-atomic-missing', String(process.pid)))).toBe(0);
  });
});
