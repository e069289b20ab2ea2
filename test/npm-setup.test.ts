// The install as the README gives it: `npx ctl` runs without npm warnings, and the scripts npm runs see
// onnxruntime-node's install switch at `skip` (no CUDA download) unless the user set it.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const repo = new URL('..', import.meta.url).pathname;
const env = { ...process.env, ONNXRUNTIME_NODE_INSTALL: '', NODE_OPTIONS: '' };

describe('npm setup', () => {
  it('npx ctl prints no npm warning', async () => {
    const { stdout, stderr } = await run('npx', ['--no-install', 'ctl', '--version'], { cwd: repo, env });
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(stderr).not.toMatch(/warn/i);
  });

  it('scripts run by npm see ONNXRUNTIME_NODE_INSTALL=skip unless the user set it', async () => {
    const print = ['exec', '--', 'node', '-e', 'console.log(process.env.ONNXRUNTIME_NODE_INSTALL)'];
    const { stdout } = await run('npm', print, { cwd: repo, env });
    expect(stdout.trim()).toBe('skip');
    const chosen = await run('npm', print, { cwd: repo, env: { ...env, ONNXRUNTIME_NODE_INSTALL: 'cuda12' } });
    expect(chosen.stdout.trim()).toBe('cuda12');
  });

  it('every locked package supports the Node that runs it (no EBADENGINE warning at install)', () => {
    const lock = JSON.parse(readFileSync(new URL('../package-lock.json', import.meta.url), 'utf8'));
    const unsupported = Object.entries(lock.packages as Record<string, { engines?: { node?: string } }>)
      .filter(([, p]) => p.engines?.node && !semver.satisfies(process.version, p.engines.node))
      .map(([name, p]) => `${name} needs node ${p.engines!.node}`);
    expect(unsupported).toEqual([]);
  });
});
