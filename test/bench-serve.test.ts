// bench/serve/run.mjs builds its workdir once, at the --products and --scenes it records: a workdir built at other
// sizes (or not recorded) is refused before the server starts, not timed as if it had the sizes asked for.
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';

it.each([
  [{ products: 100, scenes: 50 }, 'was built with --products 100 --scenes 50'],
  [null, 'was built with sizes it did not record'],
])('bench/serve/run.mjs refuses a workdir built as %j', async (built, message) => {
  const workdir = await mkdtemp(join(tmpdir(), 'ctl-bench-serve-'));
  try {
    await mkdir(join(workdir, 'runs', 'bench', 'checkpoints', 'best'), { recursive: true });
    if (built) await writeFile(join(workdir, 'bench-sizes.json'), JSON.stringify(built));
    const flags = ['--workdir', workdir, '--products', '200', '--scenes', '50'];
    const run = spawnSync(process.execPath, ['bench/serve/run.mjs', ...flags], { encoding: 'utf8' });
    expect([run.status, run.stdout]).toEqual([2, '']);
    expect(run.stderr).toBe(
      `run.mjs: ${workdir} ${message}: remove it (or pass another --workdir) to build it at these\n`,
    );
  } finally {
    await rm(workdir, { recursive: true, force: true });
  }
});
