// The shipped configs parse and carry the reference hyper-parameters; bad configs fail naming file and field;
// --set overrides; the configs/README.md field table is the one the schema generates.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTrainConfig, parseOverride, parseTrainConfig } from '../src/train/config.js';
import { fieldTable, withFieldTable } from '../src/train/config-doc.js';
import { InputError } from '../src/util/errors.js';
import { smallConfig } from './train-fixtures.js';

describe('a config file that is not JSON', () => {
  it('names the file, line and column', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ctl-config-'));
    try {
      const file = join(dir, 'bad.json');
      await writeFile(file, '{\n  "epochs": 5\n  "batchSize": 64\n}\n');
      await expect(loadTrainConfig(file)).rejects.toThrow(`${file}:3:3: not valid JSON (`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('configs/', () => {
  it('v2.json is the reference v2', async () => {
    const c = await loadTrainConfig('configs/v2.json');
    expect(c.model).toEqual({
      arch: 'v2',
      hidden: 512,
      out: 256,
      blocks: 2,
      dropout: 0.1,
      categoryDim: 64,
      normalize: true,
      temperature: { init: 0.07, learnable: true, parametrisation: 'log', min: 0.01, max: 1 },
    });
    expect(c.loss).toEqual({ infonce: 1, triplet: 0.5, margin: 0.2, maskFalseNegatives: false });
    expect(c.negatives.strategy).toBe('same-category-random');
    expect(c.optimizer).toEqual({
      kind: 'adamw',
      lr: 3e-4,
      weightDecay: 0.01,
      betas: [0.9, 0.999],
      eps: 1e-8,
      gradClip: 1,
    });
    expect(c.schedule).toMatchObject({ warmupFraction: 0.1, decay: 'cosine', unit: 'step' });
    expect([c.batchSize, c.epochs, c.patience, c.split, c.selection.protocol, c.selection.metric]).toEqual([
      256,
      50,
      10,
      'seed',
      'seed',
      'recall@10',
    ]);
    expect(c.embeddings).toEqual({ model: 'Marqo/marqo-fashionSigLIP', dim: 768 });
  });

  it('v1.json is the reference v1', async () => {
    const c = await loadTrainConfig('configs/v1.json');
    expect(c.model).toMatchObject({ arch: 'v1', hidden: 384, out: 128, dropout: 0.2, categoryDim: 0 });
    expect(c.model.temperature).toMatchObject({ init: 0.07, learnable: true, parametrisation: 'raw' });
    expect(c.loss).toMatchObject({ infonce: 1, triplet: 0 });
    expect(c.optimizer).toMatchObject({ kind: 'adam', lr: 1e-3, gradClip: 0 });
    expect(c.schedule).toMatchObject({ warmupFraction: 0, decay: 'cosine', unit: 'epoch' });
    expect([c.batchSize, c.epochs, c.split, c.selection.protocol]).toEqual([128, 20, 'seed', 'seed']);
    expect(c.embeddings.dim).toBe(512);
  });

  it('v2-mined.json and demo.json are ours: scene split, catalog protocol, mined negatives', async () => {
    for (const file of ['configs/v2-mined.json', 'configs/demo.json']) {
      const c = await loadTrainConfig(file);
      expect([c.split, c.selection.protocol, c.negatives.strategy]).toEqual(['scene', 'catalog', 'mined']);
    }
    expect((await loadTrainConfig('configs/v2-mined.json')).sceneView).toBe('hide-product');
    expect((await loadTrainConfig('configs/demo.json')).embeddings.model).toBe('synthetic');
  });
});

describe('validation', () => {
  const bad = (patch: Record<string, unknown>) => () => parseTrainConfig(smallConfig(patch), 'my.json');

  it('names the file and the field', () => {
    expect(bad({ batchSize: 0 })).toThrow('my.json: batchSize: expected an integer >= 2, got 0');
    expect(bad({ split: 'random' })).toThrow("my.json: split: expected one of 'seed', 'scene', got \"random\"");
    expect(bad({ model: { arch: 'v3' } })).toThrow("my.json: model.arch: expected one of 'v1', 'v2'");
    expect(bad({ negatives: { strategy: 'mined', rankWindow: [9, 3] } })).toThrow(
      'my.json: negatives.rankWindow: expected [lo, hi]',
    );
    expect(bad({ selection: { protocol: 'catalog', metric: 'recall@7' } })).toThrow('my.json: selection.metric');
    expect(bad({ negatives: { strategy: 'none' } })).toThrow(
      'my.json: negatives.strategy: expected a negative strategy when loss.triplet > 0',
    );
    expect(bad({ model: { arch: 'v2', hidden: 8, out: 4, temperature: { init: 2 } } })).toThrow(
      'my.json: model.temperature: expected min <= init <= max',
    );
    expect(bad({ negatives: { strategy: 'mined', rankWindow: [5, 50], poolSize: 100 } })).toThrow(
      "my.json: negatives.poolSize: expected at most the rank window's 45 ranks",
    );
    expect(bad({ optimizer: { kind: 'adamw', lr: 1e-3 }, schedule: { minLr: 1e-2 } })).toThrow(
      'my.json: schedule.minLr: expected at most optimizer.lr (0.001), the peak',
    );
    expect(bad({ model: { arch: 'v1', hidden: 8, out: 4, temperature: { parametrisation: 'exp' } } })).toThrow(
      "my.json: model.temperature.parametrisation: expected one of 'raw', 'log'",
    );
    // Unnormalised towers are not built (every loss and ranking is a cosine): a config asking for them is refused.
    expect(bad({ model: { arch: 'v2', hidden: 8, out: 4, normalize: false } })).toThrow(
      'my.json: model.normalize: expected true (tower outputs are always L2-normalised), got false',
    );
  });

  it('fills defaults for optional fields', () => {
    const c = parseTrainConfig(
      { ...smallConfig(), schedule: undefined, patience: undefined, seed: undefined },
      'x.json',
    );
    expect(c.schedule).toEqual({ warmupFraction: 0, decay: 'cosine', unit: 'step', minLr: 0 });
    expect([c.patience, c.seed]).toEqual([0, 42]);
  });
});

describe('--set overrides', () => {
  const sets = (...assignments: string[]) => assignments.map(parseOverride);

  it('reads the value as JSON when it parses, else as a string', () => {
    const values = [
      'optimizer.lr=1e-3',
      'name=v2 short',
      'name="7"',
      'negatives.rankWindow=[2,30]',
      'loss.x=true',
      'a=',
    ]
      .map(parseOverride)
      .map((o) => [o.path, o.value]);
    expect(values).toEqual([
      ['optimizer.lr', 0.001],
      ['name', 'v2 short'],
      ['name', '7'],
      ['negatives.rankWindow', [2, 30]],
      ['loss.x', true],
      ['a', ''],
    ]);
    for (const bad of ['epochs', '=5', 'optimizer..lr=1', '.lr=1'])
      expect(() => parseOverride(bad)).toThrow(
        new InputError(`--set ${bad}: expected PATH=VALUE with a dotted field path, e.g. --set optimizer.lr=1e-3`),
      );
  });

  it('changes only the fields named, and fills a missing section with its defaults', async () => {
    const plain = await loadTrainConfig('configs/v2.json');
    const changed = await loadTrainConfig('configs/v2.json', sets('epochs=5', 'optimizer.lr=1e-3', 'name=v2-short'));
    expect(changed).toEqual({ ...plain, name: 'v2-short', epochs: 5, optimizer: { ...plain.optimizer, lr: 1e-3 } });
    const raw = { ...smallConfig(), schedule: undefined };
    expect(parseTrainConfig(raw, 'x.json', sets('schedule.minLr=1e-5')).schedule).toEqual({
      warmupFraction: 0,
      decay: 'cosine',
      unit: 'step',
      minLr: 1e-5,
    });
  });

  it('fails naming the flag for its field, and the file with the flags for a field they do not touch', () => {
    const bad =
      (...assignments: string[]) =>
      () =>
        parseTrainConfig(smallConfig(), 'my.json', sets(...assignments));
    expect(bad('epochs=0')).toThrow('--set epochs=0: epochs: expected an integer >= 1, got 0');
    expect(bad('epochs=1e400')).toThrow('--set epochs=1e400: epochs: expected an integer >= 1, got Infinity');
    expect(bad('optimizer.lrr=1')).toThrow('--set optimizer.lrr=1: optimizer.lrr: unknown field (known: kind, lr,');
    expect(bad('foo.bar=2')).toThrow('--set foo.bar=2: foo: unknown field');
    expect(bad('epochs.x=1')).toThrow('--set epochs.x=1: epochs: expected an integer >= 1, got {"x":1}');
    expect(bad('model.temperature.init=fast')).toThrow(
      '--set model.temperature.init=fast: model.temperature.init: expected a number >= 0.000001, got "fast"',
    );
    expect(bad('loss.infonce=0', 'loss.triplet=0')).toThrow(
      '--set loss.infonce=0 --set loss.triplet=0: loss: expected infonce or triplet weight > 0',
    );
    expect(() =>
      parseTrainConfig({ ...smallConfig(), negatives: undefined }, 'my.json', sets('negatives.poolSize=4')),
    ).toThrow("my.json with --set negatives.poolSize=4: negatives.strategy: expected one of 'none',");
  });
});

describe('configs/README.md', () => {
  it('has the field table the schema generates (else run `npm run configs:doc`)', async () => {
    const readme = await readFile('configs/README.md', 'utf8');
    expect(readme).toBe(withFieldTable(readme));
  });

  it('lists every field of a resolved config once, with its default', async () => {
    const leaves = (value: unknown, prefix = ''): string[] =>
      typeof value === 'object' && value !== null && !Array.isArray(value)
        ? Object.entries(value).flatMap(([k, v]) => leaves(v, `${prefix}${k}.`))
        : [prefix.slice(0, -1)];
    const rows = fieldTable()
      .split('\n')
      .slice(2, -1)
      .map((line) => line.split(' | ').map((cell) => cell.replace(/^\| /, '').trim()));
    const fields = rows.map((row) => row[0].replaceAll('`', ''));
    const config = await loadTrainConfig('configs/v2.json');
    expect(fields.filter((f) => f !== 'description').sort()).toEqual(
      leaves(config)
        .filter((f) => f !== 'description')
        .sort(),
    );
    const defaults = Object.fromEntries(rows.map((row) => [row[0].replaceAll('`', ''), row[1]]));
    expect(defaults).toMatchObject({
      name: 'file name',
      split: 'required',
      'embeddings.dim': 'none',
      'negatives.strategy': '`none`',
      'negatives.rankWindow': '`[5, 50]`',
      'model.temperature.init': '`0.07`',
      'optimizer.eps': '`1e-8`',
    });
  });
});
