// bench/gpu's scripts, on stand-ins: run.sh on a pack whose node is a script that only says what it was asked to run
// (no GPU, no benches), so what is checked is the script's own plumbing.
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, it } from 'vitest';

const sh = (command: string, cwd: string, ...args: string[]) =>
  spawnSync('bash', ['-c', command, 'sh', ...args], { cwd, encoding: 'utf8' });

it('bench/gpu/run.sh with a relative WORK and OUT runs the pack’s node and leaves its results in OUT', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ctl-gpu-'));
  try {
    const pack = join(dir, 'pack');
    await mkdir(join(pack, 'ctl'), { recursive: true });
    await writeFile(join(pack, 'node'), '#!/bin/sh\necho "pack node $*"\n');
    await chmod(join(pack, 'node'), 0o755);
    const packed = sh(
      'xz -c node > node.xz && tar -cf - ctl | xz > ctl.tar.xz && cp "$1" .',
      pack,
      resolve('bench/gpu/run.sh'),
    );
    expect(packed.status, packed.stderr).toBe(0);
    const run = spawnSync('bash', [join(pack, 'run.sh')], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, WORK: 'work', OUT: 'out', QUICK: '1', BUDGET: '60', GL_ROOT: join(dir, 'gl') },
    });
    expect(run.status, run.stderr).toBe(0);
    const results = await readFile(join(dir, 'out', 'results.txt'), 'utf8');
    expect(results).toContain('RESULT [embed] pack node bench/embed/run.mjs');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 60_000);

it('bench/gpu/copy-packages.sh copies a package nested in another’s node_modules once, with its parent', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ctl-gpu-'));
  try {
    const [root, stage] = [join(dir, 'repo'), join(dir, 'stage')];
    for (const pkg of ['fastify/node_modules/light-my-request', 'fastify-plugin', 'sharp'])
      await mkdir(join(root, 'node_modules', pkg), { recursive: true });
    await writeFile(join(root, 'node_modules/fastify/node_modules/light-my-request/index.js'), '');
    // npm ls's order, a nested package before its parent included.
    const listed = ['fastify/node_modules/light-my-request', 'sharp', 'fastify', 'fastify-plugin'];
    const paths = listed.map((pkg) => join(root, 'node_modules', pkg)).join('\n') + '\n';
    const copy = spawnSync('bash', ['bench/gpu/copy-packages.sh', root, stage], { input: paths, encoding: 'utf8' });
    expect(copy.status, copy.stderr).toBe(0);
    const files = sh('find . | LC_ALL=C sort', stage).stdout.trim().split('\n');
    expect(files).toEqual([
      '.',
      './node_modules',
      './node_modules/fastify',
      './node_modules/fastify-plugin',
      './node_modules/fastify/node_modules',
      './node_modules/fastify/node_modules/light-my-request',
      './node_modules/fastify/node_modules/light-my-request/index.js',
      './node_modules/sharp',
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
