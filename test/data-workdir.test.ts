// The workdir's runs, as every command lists them: folders under runs/ with a run's name, links to folders too.
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listRunNames } from '../src/data/workdir.js';

const made: string[] = [];
afterAll(async () => Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true }))));

describe('listRunNames', () => {
  it('lists run folders and links to run folders, sorted; not files, dangling links or unnamed folders', async () => {
    const workdir = await mkdtemp(join(tmpdir(), 'ctl-workdir-'));
    const elsewhere = await mkdtemp(join(tmpdir(), 'ctl-run-elsewhere-'));
    made.push(workdir, elsewhere);
    const runs = join(workdir, 'runs');
    for (const name of ['v2', 'a-run', '.hidden']) await mkdir(join(runs, name), { recursive: true });
    await writeFile(join(runs, 'notes.txt'), 'not a run');
    await symlink(elsewhere, join(runs, 'linked'));
    await symlink(join(workdir, 'gone'), join(runs, 'dangling'));
    expect(await listRunNames(workdir)).toEqual(['a-run', 'linked', 'v2']);
  });

  it('is empty for a workdir without runs/', async () => {
    const workdir = await mkdtemp(join(tmpdir(), 'ctl-workdir-'));
    made.push(workdir);
    expect(await listRunNames(workdir)).toEqual([]);
  });
});
