// End-to-end training in this process (one replica, wasm): learning, determinism, memory, checkpoints, the
// trained-model loader, and the bad-input paths.
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { trainRun } from '../src/train/run.js';
import { loadTrainedModel } from '../src/model/load.js';
import { plantedWorkdir, smallConfig, writeConfig } from './train-fixtures.js';

let workdir = '';

beforeAll(async () => {
  ({ workdir } = await plantedWorkdir({ scenes: 600, dim: 24, categories: 4, latent: 6, seed: 1 }));
});

afterAll(async () => {
  await rm(workdir, { recursive: true, force: true });
});

async function records(run: string): Promise<Record<string, any>[]> {
  const text = await readFile(join(workdir, 'runs', run, 'metrics.jsonl'), 'utf8');
  return text.trim().split('\n').map((l) => JSON.parse(l));
}

describe('trainRun', () => {
  it('learns the planted structure: v2 beats zero-shot clearly', async () => {
    const config = await writeConfig(workdir, 'learn', smallConfig({ epochs: 4 }));
    const result = await trainRun({ workdir, config, run: 'learn', backend: 'wasm', workers: 1 });
    const log = await records('learn');
    const zeroShot = log.find((r) => r.type === 'zero-shot')!.metrics.recall['10'];
    console.log(result, zeroShot);
    expect(result.best.metric).toBeGreaterThan(zeroShot + 0.2);
  });
});
