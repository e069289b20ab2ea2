// A damaged dataset file is refused as it is read, naming the field, so no stage runs on it (eval used to go on
// and print other numbers; stats and train died with a JavaScript TypeError).
import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../src/data/stl/dataset-io.js';
import { synthesise } from '../src/data/synth/run.js';
import { workdirPaths } from '../src/data/workdir.js';
import { InputError } from '../src/util/errors.js';
import { removeTempWorkdirs, tempWorkdir } from './synth-fixtures.js';

let workdir = '';
let original = '';

beforeAll(async () => {
  workdir = await tempWorkdir();
  await synthesise(workdir, { scenes: 30, products: 20, seed: 1, domain: 'fashion' });
  original = await readFile(workdirPaths(workdir).dataset('fashion'), 'utf8');
});
afterAll(removeTempWorkdirs);

/** The error loading the dataset gives after `damage` is done to its JSON. */
async function loadDamaged(damage: (d: Record<string, any>) => void): Promise<string> {
  const data = JSON.parse(original);
  damage(data);
  await writeFile(workdirPaths(workdir).dataset('fashion'), JSON.stringify(data));
  const error = await loadDataset(workdir).then(
    () => null,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(InputError);
  return (error as Error).message;
}

describe('loadDataset', () => {
  it('reads an intact dataset', async () => {
    await writeFile(workdirPaths(workdir).dataset('fashion'), original);
    expect((await loadDataset(workdir)).pairs.length).toBeGreaterThan(0);
  });

  it('refuses a damaged one, naming the field', async () => {
    expect(await loadDamaged((d) => delete d.products)).toMatch(/fashion\.json: products: expected a list/);
    expect(await loadDamaged((d) => (d.scenes = null))).toMatch(/: scenes: expected a list/);
    expect(await loadDamaged((d) => (d.pairs = []))).toMatch(/: pairs: expected at least one pair/);
    expect(await loadDamaged((d) => (d.categories = []))).toMatch(
      /: products\[0\]\.category: expected a category index below 0, got \d+/,
    );
    expect(await loadDamaged((d) => (d.products[2].category = 999))).toMatch(/products\[2\]\.category: .* got 999/);
    expect(await loadDamaged((d) => (d.products[1].sig = d.products[0].sig))).toMatch(
      /products\[1\]\.sig: expected a signature listed once/,
    );
    expect(await loadDamaged((d) => (d.pairs[6].scene = 'deadbeef'))).toMatch(
      /pairs\[6\]\.scene: expected the signature of a listed scene/,
    );
    expect(await loadDamaged((d) => (d.categories[1].index = 0))).toMatch(
      /categories\[1\]: expected \{ index: 1, name, path \}/,
    );
    expect(await loadDamaged((d) => (d.pairs[5].product = 'deadbeef'))).toMatch(
      /pairs\[5\]\.product: expected the signature of a listed product/,
    );
    expect(await loadDamaged((d) => d.splits.scene.parts.test.push(10 ** 6))).toMatch(
      /splits\.scene\.parts\.test: expected indices of pairs/,
    );
    // Hand edits that would fail later with a TypeError, or give NaN statistics.
    expect(await loadDamaged((d) => delete d.pairs[3].bbox)).toMatch(
      /pairs\[3\]\.bbox: expected four numbers \[x1, y1, x2, y2\], got undefined/,
    );
    expect(await loadDamaged((d) => (d.pairs[4].bbox = [0.1, 0.2]))).toMatch(/pairs\[4\]\.bbox: expected four numbers/);
    expect(await loadDamaged((d) => (d.splits.seed.parts.val = 'all'))).toMatch(
      /splits\.seed\.parts\.val: expected indices of pairs/,
    );
    expect(await loadDamaged((d) => (d.splits.scene = {}))).toMatch(
      /splits\.scene\.parts: expected an object of parts/,
    );
    expect(await loadDamaged((d) => delete d.skipped)).toMatch(/: skipped: expected an object of counts by reason/);
    expect(await loadDamaged((d) => (d.skipped = { 'pairs.bad-bbox': 'many' }))).toMatch(/: skipped: expected/);
    expect(await loadDamaged((d) => delete d.scenes[0].items[0].bbox)).toMatch(
      /scenes\[0\]\.items\[0\]\.bbox: expected four numbers/,
    );
    expect(await loadDamaged((d) => (d.scenes[1].items[0].product = 'deadbeef'))).toMatch(
      /scenes\[1\]\.items\[0\]\.product: expected the signature of a listed product/,
    );
  });
});
