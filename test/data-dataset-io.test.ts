// Raw files → normalised dataset → disk and back: vocabulary, products, scenes, splits, skipped counts, and
// the errors a user meets (nothing valid, no dataset yet, strict failure leaves the old dataset alone).
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadDataset, normaliseRaw, normaliseWorkdir, saveDataset } from '../src/data/stl/dataset-io.js';
import { InputError } from '../src/util/errors.js';
import { makeRaw, PATHS, pairsText, removeTempDirs, rejectionOf, tempDir, writeRaw } from './data-fixtures.js';

afterAll(removeTempDirs);

describe('normaliseRaw', () => {
  it('builds categories, products, scenes, pairs and both splits', async () => {
    const dir = await tempDir();
    const { pairs, categories } = makeRaw(300, 120, 5);
    const { pairsFile, categoriesFile } = await writeRaw(dir, pairsText(pairs), JSON.stringify(categories));
    const { dataset, report } = await normaliseRaw(pairsFile, categoriesFile, {
      domain: 'fashion',
      source: 'synthetic',
    });

    expect(dataset).toMatchObject({ version: 1, domain: 'fashion', source: 'synthetic', skipped: {} });
    expect(dataset.categories.map((c) => c.path)).toEqual([...PATHS].sort());
    dataset.categories.forEach((c, i) => expect(c.index).toBe(i));
    expect(dataset.categories.find((c) => c.path === PATHS[0])!.name).toBe('Shoes');

    const used = [...new Set(pairs.map((p) => p.product))].sort();
    expect(dataset.products.map((p) => p.sig)).toEqual(used);
    for (const p of dataset.products) expect(dataset.categories[p.category]!.path).toBe(categories[p.sig]);

    expect(dataset.pairs).toEqual(pairs);
    expect(dataset.scenes.map((s) => s.sig)).toEqual([...new Set(pairs.map((p) => p.scene))]);
    const first = dataset.scenes[0]!;
    expect(first.items).toEqual(
      pairs.filter((p) => p.scene === first.sig).map(({ product, bbox }) => ({ product, bbox })),
    );

    for (const split of [dataset.splits.scene, dataset.splits.seed]) {
      const all = Object.values(split.parts)
        .flat()
        .sort((a, b) => a - b);
      expect(all).toEqual(pairs.map((_, i) => i));
    }
    expect(dataset.splits.seed.parts.train).toHaveLength(Math.trunc(0.9 * pairs.length));
    expect(report.pairs).toMatchObject({ rows: pairs.length, kept: pairs.length });
  });

  it('counts skipped rows by file and reason', async () => {
    const dir = await tempDir();
    const { pairs, categories } = makeRaw(50, 20, 6);
    const bad = { ...categories, XYZ: 'A|B' };
    const text = pairsText(pairs) + 'garbage\n' + JSON.stringify({ ...pairs[0], bbox: [0.5, 0, 0.1, 1] }) + '\n';
    const { pairsFile, categoriesFile } = await writeRaw(dir, text, JSON.stringify(bad));
    const { dataset, report } = await normaliseRaw(pairsFile, categoriesFile);
    expect(dataset.skipped).toEqual({ 'categories.bad-signature': 1, 'pairs.malformed-json': 1, 'pairs.bad-bbox': 1 });
    expect(report.pairs.examples).toHaveLength(2);
    expect(dataset.pairs).toHaveLength(pairs.length);
  });

  it('refuses a file with no valid pair, saying why', async () => {
    const dir = await tempDir();
    const { pairsFile, categoriesFile } = await writeRaw(
      dir,
      '<html>not found</html>\n',
      JSON.stringify(makeRaw(5, 5).categories),
    );
    const err = await rejectionOf(normaliseRaw(pairsFile, categoriesFile));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toMatch(/no valid pairs \(1 rows read, skipped: malformed-json 1; first: .*:1: row: /);
  });

  it('loads 100K pairs', async () => {
    const dir = await tempDir();
    const { pairs, categories } = makeRaw(40_000, 38_000, 9);
    expect(pairs.length).toBeGreaterThan(95_000);
    const { pairsFile, categoriesFile } = await writeRaw(dir, pairsText(pairs), JSON.stringify(categories));
    const { dataset } = await normaliseRaw(pairsFile, categoriesFile);
    expect(dataset.pairs.length).toBe(pairs.length);
    expect(dataset.scenes.length).toBe(40_000);
  });
});

describe('saveDataset / loadDataset / normaliseWorkdir', () => {
  it('round-trips through workdir/dataset/<domain>.json atomically', async () => {
    const workdir = await tempDir();
    const { pairs, categories } = makeRaw(40, 30, 2);
    await writeRaw(workdir, pairsText(pairs), JSON.stringify(categories), 'home');
    const { dataset, path } = await normaliseWorkdir(workdir, 'home', { source: 'synthetic' });
    expect(path).toBe(join(workdir, 'dataset', 'home.json'));
    expect(await loadDataset(workdir, 'home')).toEqual(dataset);
    expect(await readdir(join(workdir, 'dataset'))).toEqual(['home.json']);
    await saveDataset(workdir, dataset);
    expect(await readdir(join(workdir, 'dataset'))).toEqual(['home.json']);
  });

  it('tells the user what to run when there is no dataset, or it is corrupt', async () => {
    const workdir = await tempDir();
    await expect(loadDataset(workdir)).rejects.toThrow(/run `ctl data fetch` or `ctl data synth` first/);
    await expect(loadDataset(workdir)).rejects.toBeInstanceOf(InputError);
    const { pairs, categories } = makeRaw(10, 10, 2);
    await writeRaw(workdir, pairsText(pairs), JSON.stringify(categories));
    const { path } = await normaliseWorkdir(workdir, 'fashion');
    await writeFile(path, '{"version": 1, "pai');
    await expect(loadDataset(workdir)).rejects.toThrow(/not valid JSON/);
  });

  it('a strict failure leaves the previous dataset untouched', async () => {
    const workdir = await tempDir();
    const { pairs, categories } = makeRaw(30, 20, 4);
    await writeRaw(workdir, pairsText(pairs), JSON.stringify(categories));
    const { path } = await normaliseWorkdir(workdir, 'fashion');
    const before = await readFile(path, 'utf8');
    await writeRaw(workdir, pairsText(pairs) + '{"product": "nope"}\n', JSON.stringify(categories));
    const line = pairs.length + 1;
    await expect(normaliseWorkdir(workdir, 'fashion', { strict: true })).rejects.toThrow(
      new RegExp(`fashion\\.json:${line}: product: 32 lower-case hex characters`),
    );
    expect(await readFile(path, 'utf8')).toBe(before);
    expect(await readdir(join(workdir, 'dataset'))).toEqual(['fashion.json']);
  });
});
