// deploy/shards.sh checks its shard numbers before it fetches anything: a bad I or N exits 2 with one line and the
// usage, and makes no shard folder.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';

it.each([
  [['run', '5', '3'], "I: expected a shard index 0..2, got '5'"],
  [['run', '1'], "N: expected a number of shards >= 1, got ''"],
  [['merge', 'abc'], "N: expected a number of shards >= 1, got 'abc'"],
  [['local', '0'], "N: expected a number of shards >= 1, got '0'"],
  [['merge', '010'], "N: expected a number of shards >= 1, got '010'"], // bash would take it for octal 8
  [['run', '08', '10'], "I: expected a shard index 0..9, got '08'"],
])('deploy/shards.sh %j exits 2 before any work', async (args, message) => {
  const shards = await mkdtemp(join(tmpdir(), 'ctl-shards-'));
  try {
    const run = spawnSync('bash', ['deploy/shards.sh', ...args], {
      encoding: 'utf8',
      env: { ...process.env, SHARDS_DIR: shards, CTL: 'false' },
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(new RegExp(`^shards\\.sh: ${message.replace(/[.*()[\]]/g, '\\$&')}\\n# A sharded`));
    expect(await readdir(shards)).toEqual([]);
  } finally {
    await rm(shards, { recursive: true, force: true });
  }
});
