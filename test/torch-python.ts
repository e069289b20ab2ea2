// The real PyTorch and NumPy for interop tests: the first python that imports both (CTL_PYTHON, python3, then
// Debian's /usr/bin/python3, which .ci/run installs them into). Under CI=true a missing one fails the tests;
// elsewhere they are skipped.
import { spawnSync } from 'node:child_process';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';

function findTorchPython(): string | undefined {
  const candidates = [process.env.CTL_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p);
  return candidates.find(
    (python) => spawnSync(python, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0,
  );
}

export const torchPython = findTorchPython();

/** Skip the suite without torch, except in CI, where the suite runs and fails on `requireTorch`. */
export const skipWithoutTorch = torchPython === undefined && process.env.CI !== 'true';

export function requireTorch(): string {
  if (!torchPython)
    throw new Error(
      'python3 with torch and numpy not found (apt-get install python3-torch python3-numpy libopenblas0-pthread)',
    );
  return torchPython;
}

/** Run a python script with `args`; rejects with its stderr when it fails. */
export function runPython(script: string, args: string[] = []): Promise<string> {
  const python = requireTorch();
  return new Promise((done, fail) => {
    execFile(python, ['-c', script, ...args], { maxBuffer: 256 << 20 }, (err, stdout, stderr) =>
      err ? fail(new Error(`python failed: ${stderr}`)) : done(stdout),
    );
  });
}

const CLI = resolve(__dirname, '../dist/cli.js');

export function ctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile('node', [CLI, ...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}
