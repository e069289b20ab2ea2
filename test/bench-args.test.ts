// The bench scripts check their flags before any work: a bad count, choice or list item ends the bench with one
// line naming the flag and exit 2, not a hang (eval's --block 0) or a NaN result (--rounds 0).
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('bench flags', () => {
  it.each([
    ['eval', ['--block', '0'], "--block: expected a whole number >= 1, got '0'"],
    ['serve', ['--concurrency', '8,abc'], "--concurrency: 'abc' is not a whole number >= 1"],
    ['embed', ['--rounds', '0'], "--rounds: expected a whole number >= 1, got '0'"],
    ['embed', ['--device', 'gpu'], "--device: expected one of auto, cpu, cuda, webgpu, got 'gpu'"],
    ['embed', ['--dtypes', 'fp32,fp64'], "--dtypes: 'fp64' is not one of fp32, fp16, q8"],
    ['embed', ['--dtypes', 'fp32,'], "--dtypes: '' is not one of fp32, fp16, q8"],
    ['embed', ['--model', 'vit-l14', '--skip-torch'], "--model: expected one of tiny, small, vit-b16, got 'vit-l14'"],
    ['embed', ['--model', 'tiny'], '--model tiny: the PyTorch baseline is ViT-B/16; pass --skip-torch'],
    ['eval', ['--engines', ''], "--engines: '' is not one of onnx, js, tfjs"],
    ['train', ['--steps', '2.5'], "--steps: expected a whole number >= 1, got '2.5'"],
    ['train', ['--data', 'bogus'], "--data: expected one of synth, random, got 'bogus'"],
    ['download', ['--nope'], "Unknown option '--nope'"],
  ])('bench/%s/run.mjs %j exits 2 naming the flag', (bench, flags, message) => {
    const run = spawnSync(process.execPath, [`bench/${bench}/run.mjs`, ...flags], { encoding: 'utf8' });
    expect([run.status, run.stdout]).toEqual([2, '']);
    expect(run.stderr).toContain(`run.mjs: ${message}`);
  });

  it.each([
    ['train/profile.mjs', ['--bogus'], "Unknown option '--bogus'"],
    ['train/profile.mjs', ['--threads', 'x'], "--threads: expected a whole number >= 1, got 'x'"],
    ['train/profile.mjs', ['--batch', '2.5'], "--batch: expected a whole number >= 2, got '2.5'"],
    ['train/profile.mjs', ['--warmup', 'x'], "--warmup: expected a whole number >= 0, got 'x'"],
    ['train/profile.mjs', ['--provider', 'cuda'], "--provider: expected one of webgpu, cpu, got 'cuda'"],
    ['embed/prepare.mjs', ['--images', '0'], "--images: expected a whole number >= 1, got '0'"],
    ['embed/prepare.mjs', ['--workers', '2'], "Unknown option '--workers'"],
  ])('bench/%s %j exits 2 naming the flag', (script, flags, message) => {
    const run = spawnSync(process.execPath, [`bench/${script}`, ...flags], { encoding: 'utf8' });
    expect([run.status, run.stdout]).toEqual([2, '']);
    expect(run.stderr).toContain(`${script.split('/')[1]}: ${message}`);
  });
});
