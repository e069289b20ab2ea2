// The synthetic world: determinism, the shape of STL (taxonomy, proportions, products per scene, boxes), and the
// raw files going through the real loader strictly.
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { apportion, generateWorld, type SynthWorld } from '../src/data/synth/world.js';
import { categoriesFileText, pairsFileText, writeSyntheticDataset } from '../src/data/synth/run.js';
import { taxonomyOf } from '../src/data/synth/taxonomy.js';
import { loadDataset } from '../src/data/stl/dataset-io.js';
import { workdirPaths } from '../src/data/workdir.js';
import { removeTempWorkdirs, tempWorkdir, world } from './synth-fixtures.js';

afterAll(removeTempWorkdirs);

const SIG = /^[0-9a-f]{32}$/;
const leaf = (w: SynthWorld, category: number) => w.taxonomy[category].path.split('|').pop()!;

/** Mean box centre (x, y) of the items of a category leaf. */
function centres(w: SynthWorld, name: string): { x: number; y: number; n: number } {
  let x = 0;
  let y = 0;
  let n = 0;
  for (const s of w.scenes)
    for (const item of s.items) {
      if (leaf(w, w.products[item.product].category) !== name) continue;
      x += (item.bbox[0] + item.bbox[2]) / 2;
      y += (item.bbox[1] + item.bbox[3]) / 2;
      n++;
    }
  return { x: x / n, y: y / n, n };
}

describe('generateWorld', () => {
  it('is a pure function of its options: same seed, same bytes; another seed, other files', () => {
    const a = generateWorld({ scenes: 300, products: 400, seed: 3, domain: 'fashion' });
    const b = generateWorld({ scenes: 300, products: 400, seed: 3, domain: 'fashion' });
    const c = generateWorld({ scenes: 300, products: 400, seed: 4, domain: 'fashion' });
    expect(pairsFileText(b)).toBe(pairsFileText(a));
    expect(categoriesFileText(b)).toBe(categoriesFileText(a));
    expect(pairsFileText(c)).not.toBe(pairsFileText(a));
    expect(a.products.map((p) => p.sig)).not.toEqual(c.products.map((p) => p.sig));
  });

  it('uses the real fashion taxonomy with real-like proportions', () => {
    const w = world();
    const taxonomy = taxonomyOf('fashion');
    expect(taxonomy).toHaveLength(10);
    expect(taxonomy.map((t) => t.path)).toContain('Apparel & Accessories|Clothing|Outerwear|Coats & Jackets');
    const total = taxonomy.reduce((n, t) => n + t.count, 0);
    expect(total).toBe(38_111);
    const counts = taxonomy.map(() => 0);
    for (const p of w.products) counts[p.category]++;
    expect(w.products.length).toBe(1900);
    taxonomy.forEach((t, i) => expect(Math.abs(counts[i] / w.products.length - t.count / total)).toBeLessThan(0.01));
    expect(leaf(w, counts.indexOf(Math.max(...counts)))).toBe('Shoes');
  });

  it('has 1..5 products per scene (mean ~2.4), distinct products, one bottom per outfit, mostly distinct categories', () => {
    const w = world();
    const sizes = w.scenes.map((s) => s.items.length);
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...sizes)).toBe(5);
    const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    expect(mean).toBeGreaterThan(2.2);
    expect(mean).toBeLessThan(2.6);
    let repeated = 0;
    for (const s of w.scenes) {
      const products = s.items.map((i) => i.product);
      expect(new Set(products).size).toBe(products.length);
      const cats = products.map((p) => w.products[p].category);
      if (new Set(cats).size < cats.length) repeated++;
      expect(cats.filter((c) => w.taxonomy[c].group === 'bottom').length).toBeLessThanOrEqual(1);
    }
    expect(repeated / w.scenes.length).toBeLessThan(0.05);
  });

  it('uses every product, reuses products across scenes, and keeps scenes mostly on their style', () => {
    const w = world();
    const uses = new Int32Array(w.products.length);
    let onStyle = 0;
    let items = 0;
    for (const s of w.scenes)
      for (const item of s.items) {
        uses[item.product]++;
        items++;
        if (w.products[item.product].style === s.style) onStyle++;
      }
    expect(Math.min(...uses)).toBeGreaterThanOrEqual(1);
    expect(items / w.products.length).toBeGreaterThan(1.5); // STL: ~72K pairs over ~38K products
    expect(onStyle / items).toBeGreaterThan(0.65);
    expect(onStyle / items).toBeLessThan(0.95);
  });

  it('gives unique 32-hex signatures and valid, category-plausible boxes', () => {
    const w = world();
    const sigs = [...w.products.map((p) => p.sig), ...w.scenes.map((s) => s.sig)];
    for (const sig of sigs) expect(sig).toMatch(SIG);
    expect(new Set(sigs).size).toBe(sigs.length);
    for (const s of w.scenes)
      for (const { bbox } of s.items) {
        const [l, t, r, b] = bbox;
        expect(l).toBeGreaterThanOrEqual(0);
        expect(t).toBeGreaterThanOrEqual(0);
        expect(r).toBeLessThanOrEqual(1);
        expect(b).toBeLessThanOrEqual(1);
        expect(l).toBeLessThan(r);
        expect(t).toBeLessThan(b);
      }
    expect(centres(w, 'Shoes').y).toBeGreaterThan(0.8);
    expect(centres(w, 'Shirts & Tops').y).toBeLessThan(0.5);
    expect(centres(w, 'Pants').y).toBeGreaterThan(0.55);
    expect(centres(w, 'Sunglasses').y).toBeLessThan(0.2);
    expect(centres(w, 'Sunglasses').y).toBeLessThan(centres(w, 'Necklaces').y);
    // Bags hang at either side: their mean x is central, but each one is off-centre.
    for (const s of w.scenes)
      for (const item of s.items)
        if (leaf(w, w.products[item.product].category) === 'Handbags, Wallets & Cases')
          expect(Math.abs((item.bbox[0] + item.bbox[2]) / 2 - 0.5)).toBeGreaterThan(0.15);
  });

  it('imitates the home taxonomy too', () => {
    const w = generateWorld({ scenes: 200, products: 300, seed: 1, domain: 'home' });
    expect(new Set(w.products.map((p) => w.taxonomy[p.category].path))).toContain('Home & Garden|Decor|Rugs');
    expect(centres(w, 'Rugs').y).toBeGreaterThan(centres(w, 'Ceiling Light Fixtures').y);
  });

  it('survives tiny worlds', () => {
    const w = generateWorld({ scenes: 1, products: 1, seed: 0, domain: 'fashion' });
    expect(w.scenes.length).toBe(1);
    expect(w.products.length).toBe(1);
    expect(w.pairOrder).toEqual([[0, 0]]);
  });
});

describe('apportion', () => {
  it('splits a total by weight (largest remainder), every part at least 1 when the total allows', () => {
    expect(apportion([1, 1, 1], 10)).toEqual([4, 3, 3]);
    expect(apportion([100, 1, 1], 3)).toEqual([1, 1, 1]);
    expect(apportion([3, 1], 8)).toEqual([6, 2]);
    expect(apportion([5, 1, 1], 2).reduce((a, b) => a + b)).toBe(2);
    const real = taxonomyOf('fashion').map((t) => t.count);
    for (const total of [10, 500, 38_000]) expect(apportion(real, total).reduce((a, b) => a + b)).toBe(total);
  });
});

describe('writeSyntheticDataset', () => {
  it('writes the released formats, normalised strictly by the real loader', async () => {
    const workdir = await tempWorkdir();
    const options = { scenes: 400, products: 500, seed: 11, domain: 'fashion' as const };
    const r = await writeSyntheticDataset(workdir, options);
    const paths = workdirPaths(workdir);
    const lines = (await readFile(paths.rawPairs('fashion'), 'utf8')).trim().split('\n');
    const first = JSON.parse(lines[0]);
    expect(Object.keys(first)).toEqual(['product', 'scene', 'bbox']);
    expect(first.bbox).toHaveLength(4);
    const cats = JSON.parse(await readFile(paths.rawCategories('fashion'), 'utf8')) as Record<string, string>;
    expect(Object.keys(cats)).toHaveLength(r.world.products.length);
    const dataset = await loadDataset(workdir, 'fashion');
    expect(dataset.source).toBe('synthetic');
    expect(dataset.pairs).toHaveLength(lines.length);
    expect(dataset.scenes).toHaveLength(r.world.scenes.length);
    expect(dataset.products).toHaveLength(r.world.products.length);
    expect(dataset.categories).toHaveLength(10);
    expect(dataset.skipped).toEqual({});
    expect(JSON.parse(await readFile(workdirPaths(workdir).synthMarker('fashion'), 'utf8'))).toMatchObject(options);
    // Same options again: the same bytes.
    const before = await readFile(paths.rawPairs('fashion'));
    await writeSyntheticDataset(workdir, options);
    expect((await readFile(paths.rawPairs('fashion'))).equals(before)).toBe(true);
  });

  it('refuses to overwrite fetched STL files unless forced', async () => {
    const workdir = await tempWorkdir();
    await mkdir(workdirPaths(workdir).root + '/stl', { recursive: true });
    await writeFile(workdirPaths(workdir).fetchManifest('fashion'), '{}');
    const options = { scenes: 20, products: 30, seed: 1, domain: 'fashion' as const };
    await expect(writeSyntheticDataset(workdir, options)).rejects.toThrow(/fetched by `ctl data fetch`.*--force/);
    await writeSyntheticDataset(workdir, options, true);
    await expect(readFile(workdirPaths(workdir).fetchManifest('fashion'))).rejects.toThrow();
    expect((await loadDataset(workdir)).source).toBe('synthetic');
  });
});
