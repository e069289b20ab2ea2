// Every shipped config, and a minimal one that leans on every default, resolves to the config recorded in
// test/snapshots/ (written by the code that resolved them before, so a change of the resolved config shows here).
import { readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { loadTrainConfig, parseTrainConfig } from '../src/train/config.js';

const files = (await readdir('configs')).filter((f) => f.endsWith('.json')).sort();

describe('resolved configs', () => {
  it.each(files)('configs/%s resolves as before', async (file) => {
    const config = await loadTrainConfig(`configs/${file}`);
    await expect(JSON.stringify(config, null, 2) + '\n').toMatchFileSnapshot(`snapshots/resolved-${file}`);
  });

  it('a minimal config gets every default as before', async () => {
    const minimal = {
      embeddings: { model: 'm' },
      split: 'seed',
      model: { arch: 'v2', hidden: 8, out: 4 },
      loss: {},
      optimizer: { kind: 'adam', lr: 0.01 },
      batchSize: 2,
      epochs: 1,
      selection: { protocol: 'seed' },
    };
    const v1 = { ...minimal, model: { arch: 'v1', hidden: 8, out: 4 } };
    const resolved = { v2: parseTrainConfig(minimal, 'dir/minimal.json'), v1: parseTrainConfig(v1, 'v1-min.json') };
    await expect(JSON.stringify(resolved, null, 2) + '\n').toMatchFileSnapshot('snapshots/resolved-minimal.json');
  });
});
