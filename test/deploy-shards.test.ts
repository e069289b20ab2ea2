// deploy/shards.sh checks its shard numbers before it fetches anything: a bad I or N exits 2 with one line and the
// usage, and makes no shard folder.
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
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

// A fake ctl that logs each command it is given and exits with the status named for it in FAKE_EXIT ("download=1").
const fakeCtl = `
echo "$1 $2" >> "$FAKE_LOG"
for rule in $FAKE_EXIT; do [ "\${rule%%=*}" = "$1" ] && exit "\${rule#*=}"; done
exit 0
`;

async function shardsWithFakeCtl(args: string[], fakeExit: string) {
  const dir = await mkdtemp(join(tmpdir(), 'ctl-shards-'));
  try {
    await writeFile(join(dir, 'ctl.sh'), fakeCtl);
    const run = spawnSync('bash', ['deploy/shards.sh', ...args], {
      encoding: 'utf8',
      env: {
        ...process.env,
        SHARDS_DIR: join(dir, 'shards'),
        CTL: `bash ${join(dir, 'ctl.sh')}`,
        FAKE_LOG: join(dir, 'log'),
        FAKE_EXIT: fakeExit,
      },
    });
    const log = await readFile(join(dir, 'log'), 'utf8');
    return { status: run.status, stderr: run.stderr, commands: log.trim().split('\n') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

it('a shard whose download left failed images (exit 1) is still embedded, and the task exits 1', async () => {
  const run = await shardsWithFakeCtl(['run', '1', '2'], 'download=1');
  expect(run.commands).toEqual(['data fetch', 'download --workdir', 'embed --workdir']);
  expect(run.status).toBe(1);
  expect(run.stderr).toContain('shard 1/2: some images failed to download');
});

it('local N embeds and merges every shard after a download exit 1, then exits 1', async () => {
  const run = await shardsWithFakeCtl(['local', '2'], 'download=1');
  expect(run.commands).toEqual([
    ...['data fetch', 'download --workdir', 'embed --workdir'],
    ...['data fetch', 'download --workdir', 'embed --workdir'],
    'data merge',
  ]);
  expect(run.status).toBe(1);
});

it('a download that fails otherwise (exit 2) stops the shard before the embed, with its status', async () => {
  const run = await shardsWithFakeCtl(['run', '0', '1'], 'download=2');
  expect(run.commands).toEqual(['data fetch', 'download --workdir']);
  expect(run.status).toBe(2);
});

it('a shard whose download and embed succeed exits 0', async () => {
  const run = await shardsWithFakeCtl(['run', '0', '1'], '');
  expect(run.commands).toEqual(['data fetch', 'download --workdir', 'embed --workdir']);
  expect(run.status).toBe(0);
});

it('deploy/shards.sh runs this repo’s built ctl from any folder (npm run build first)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ctl-shards-'));
  try {
    await mkdir(join(dir, 'shards', 'shard-0'), { recursive: true });
    const env = { ...process.env, CTL: '', SHARDS_DIR: 'shards', CTL_WORKDIR: 'merged' };
    const run = spawnSync('bash', [resolve('deploy/shards.sh'), 'merge', '1'], { cwd: dir, encoding: 'utf8', env });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout + run.stderr).toContain('nothing to merge');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('deploy/shards.sh without CTL where the repo has no dist/cli.js says to build, exit 2', async () => {
  const repo = await mkdtemp(join(tmpdir(), 'ctl-shards-'));
  try {
    await mkdir(join(repo, 'deploy'));
    await copyFile('deploy/shards.sh', join(repo, 'deploy', 'shards.sh'));
    const env = { ...process.env, CTL: '' };
    const run = spawnSync('bash', [join(repo, 'deploy', 'shards.sh'), 'merge', '1'], { encoding: 'utf8', env });
    expect(run.status).toBe(2);
    expect(run.stderr).toBe(`shards.sh: ${repo}/dist/cli.js is missing: run npm run build first (or set CTL)\n`);
  } finally {
    await rm(repo, { recursive: true, force: true });
  }
});
