// Trained runs to export: a planted-structure workdir, a v2 and a v1 run trained one epoch by `ctl train` as a user
// runs it (node dist/cli.js; `npm run build` first), the v2 run evaluated under every protocol.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { plantedWorkdir, smallConfig, writeConfig, type ConfigFile } from './train-fixtures.js';
import type { Dataset } from '../src/data/dataset.js';

const CLI = join(process.cwd(), 'dist', 'cli.js');

export function ctlIn(workdir: string, env: NodeJS.ProcessEnv = process.env) {
  return (...args: string[]) =>
    spawnSync(process.execPath, [CLI, ...args, '--workdir', workdir], { encoding: 'utf8', env });
}

export const V1_MODEL: ConfigFile['model'] = {
  arch: 'v1',
  hidden: 24,
  out: 12,
  dropout: 0.2,
  temperature: { init: 0.07, learnable: true, parametrisation: 'raw' },
};

/** A workdir with runs `v2` (evaluated: runs/v2/eval/*.json) and `v1`. */
export async function trainedWorkdir(seed: number): Promise<{ workdir: string; dataset: Dataset }> {
  const planted = await plantedWorkdir({ scenes: 240, dim: 24, categories: 4, latent: 6, seed });
  const ctl = ctlIn(planted.workdir);
  const v1 = smallConfig({
    epochs: 1,
    model: V1_MODEL,
    loss: { infonce: 1, triplet: 0 },
    negatives: { strategy: 'none' },
    optimizer: { kind: 'adam', lr: 3e-3 },
    schedule: { decay: 'cosine', unit: 'epoch' },
  });
  for (const [run, config] of [
    ['v2', smallConfig({ epochs: 1 })],
    ['v1', v1],
  ] as const) {
    const file = await writeConfig(planted.workdir, run, config);
    const trained = ctl('train', '--config', file, '--run', run, '--backend', 'wasm', '--workers', '1');
    if (trained.status !== 0) throw new Error(`ctl train ${run}: ${trained.stderr}`);
  }
  const evaluated = ctl('eval', '--run', 'v2', '--protocol', 'all');
  if (evaluated.status !== 0) throw new Error(`ctl eval: ${evaluated.stderr}`);
  return planted;
}
