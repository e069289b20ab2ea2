// The embed benchmark that bench/gpu runs on a lent GPU machine, run here at its smallest on the CPU (built code:
// `npm run build` first), so a change that breaks it shows in CI rather than in the few minutes of a GPU loan.
import { spawnSync } from 'node:child_process';
import { expect, test } from 'vitest';

test('bench/embed/run.mjs embeds its generated images and prints images/s', () => {
  const args = [
    '--model',
    'small',
    '--images',
    '4',
    '--batch',
    '4',
    '--rounds',
    '1',
    '--skip-torch',
    '--device',
    'cpu',
  ];
  const run = spawnSync(process.execPath, ['bench/embed/run.mjs', ...args], { encoding: 'utf8' });
  expect(run.status, run.stderr).toBe(0);
  expect(run.stdout + run.stderr).toMatch(/ctl embed on cpu: fp32 [\d.]+ images\/s/);
});

test('bench/embed/run.mjs --sweep times a model at its own image size', () => {
  const args = ['--model', 'tiny', '--images', '2', '--batch', '2', '--rounds', '1', '--skip-torch', '--sweep'];
  const run = spawnSync(process.execPath, ['bench/embed/run.mjs', ...args], { encoding: 'utf8' });
  expect(run.status, run.stderr).toBe(0);
  expect(run.stdout).toMatch(/model only +q8 +opt=all +threads=2 +[\d.]+ images\/s/);
});
