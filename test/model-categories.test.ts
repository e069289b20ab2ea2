// The reference's category map (leaf name → row, in order of first appearance in the category file), stored in
// every checkpoint; a trained model maps a dataset's categories through it, naming a category it does not know;
// a checkpoint of the older format is refused saying what to do; its encoders show progress over a catalog.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import * as z from 'zod';
import '@tensorflow/tfjs-backend-wasm';
import { buildVocabulary } from '../src/data/stl/categories.js';
import { categoryMapOf, categoryRows } from '../src/model/categories.js';
import { checkpointDir, saveCheckpoint } from '../src/model/checkpoint.js';
import { loadTrainedModel } from '../src/model/load.js';
import { TwoTower, type ModelSpec } from '../src/model/two-tower.js';
import { InputError } from '../src/util/errors.js';
import { checkpointStateFor, TINY_V2 } from './model-fixtures.js';

let dir = '';
beforeAll(async () => {
  await tf.setBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'ctl-categories-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// Category-file order: the vocabulary sorts by path, the reference numbers leaves as they first appear, and two
// paths with one leaf share a row.
const fileOrder = ['Home|Shoes', 'Apparel|Tops', 'Apparel|Bags', 'Apparel|Tops', 'Apparel|Footwear|Shoes'];
const vocabulary = buildVocabulary(fileOrder);

describe('categoryMapOf', () => {
  it('numbers leaves in order of first appearance in the category file, whatever the vocabulary order', () => {
    expect(vocabulary.map((c) => c.path)).toEqual([
      'Apparel|Bags',
      'Apparel|Footwear|Shoes',
      'Apparel|Tops',
      'Home|Shoes',
    ]);
    expect(categoryMapOf(vocabulary)).toEqual({ cat_to_idx: { Shoes: 0, Tops: 1, Bags: 2 }, num_categories: 3 });
    expect(categoryRows(categoryMapOf(vocabulary), vocabulary, 'x')).toEqual(Int32Array.from([2, 0, 1, 0]));
  });

  it('refuses a vocabulary that records the file order for only some categories', () => {
    const partly = vocabulary.map((c, i) => (i === 1 ? { ...c, firstSeen: undefined } : c));
    expect(() => categoryMapOf(partly)).toThrow(
      'the dataset records the category-file order for only some categories: re-create it',
    );
  });

  it('names a category the map does not know', () => {
    const map = { cat_to_idx: { Shoes: 0, Tops: 1 }, num_categories: 2 };
    expect(() => categoryRows(map, vocabulary, 'the checkpoint in /r')).toThrow(
      "category 'Bags' (Apparel|Bags) is not in the 2 categories of the checkpoint in /r",
    );
  });
});

const spec: ModelSpec = { ...TINY_V2, numCategories: 2 };

async function writeRun(name: string): Promise<string> {
  const model = new TwoTower(spec);
  const runDir = join(dir, name);
  const state = checkpointStateFor(spec, { cat_to_idx: { Shoes: 0, Tops: 1 }, num_categories: 2 });
  await saveCheckpoint(runDir, 'best', model.layout, { state, params: model.layout.initialise(1) });
  return runDir;
}

describe('a trained model and its checkpoint', () => {
  it('maps the dataset categories through the checkpoint map, and names one it does not know', async () => {
    const runDir = await writeRun('known');
    const model = await loadTrainedModel(runDir, 'best', { config: z.unknown() });
    const shoesAndTops = buildVocabulary(['Apparel|Tops', 'Home|Shoes']);
    expect(model.categoryRows(shoesAndTops)).toEqual(Int32Array.from([1, 0]));
    expect(() => model.categoryRows(vocabulary)).toThrow(InputError);
    expect(() => model.categoryRows(vocabulary)).toThrow(
      new RegExp(`category 'Bags' \\(Apparel\\|Bags\\) is not in the 2 categories of the checkpoint in ${runDir}`),
    );
    const products = await model.encodeProducts(new Float32Array(2 * 5).fill(0.5), Int32Array.from([1, 0]), 2);
    expect(products.length).toBe(2 * 4);
    await expect(model.encodeProducts(new Float32Array(5), Int32Array.from([2]), 1)).rejects.toThrow(
      'category row 2: the checkpoint has 2 categories',
    );
  });

  it('shows progress while it encodes a catalog (a 38k-product v2 catalog takes seconds), not a few rows', async () => {
    const model = await loadTrainedModel(await writeRun('progress'), 'best', { config: z.unknown() });
    const lines: string[] = [];
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((s) => lines.push(String(s)) > 0);
    try {
      await model.encodeProducts(new Float32Array(2 * 5), Int32Array.from([1, 0]), 2);
      expect(lines).toEqual([]);
      const rows = 10_000;
      await model.encodeProducts(new Float32Array(rows * 5).fill(0.5), new Int32Array(rows), rows);
      await model.encodeScenes(new Float32Array(rows * 5).fill(0.5), rows);
    } finally {
      write.mockRestore();
    }
    expect(lines.join('')).toMatch(/encode products 10000\/10000 \(100\.0%\).*ETA/);
    expect(lines.join('')).toMatch(/encode scenes 10000\/10000 \(100\.0%\)/);
  });

  it('stores the map in the safetensors metadata too', async () => {
    const runDir = await writeRun('metadata');
    const bytes = await readFile(join(checkpointDir(runDir, 'best'), 'model.safetensors'));
    const length = Number(bytes.readBigUInt64LE(0));
    const metadata = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')).__metadata__;
    expect(JSON.parse(metadata.cat_to_idx)).toEqual({ Shoes: 0, Tops: 1 });
    expect(metadata.num_categories).toBe('2');
  });

  it('names each field of a damaged state.json, with what was expected', async () => {
    const runDir = await writeRun('damaged');
    const stateFile = join(checkpointDir(runDir, 'best'), 'state.json');
    const { rng: _rng, ...state } = JSON.parse(await readFile(stateFile, 'utf8'));
    await writeFile(stateFile, JSON.stringify({ ...state, epoch: '3', spec: { ...state.spec, hidden: 0 } }));
    const loading = loadTrainedModel(runDir, 'best', { config: z.unknown() });
    await expect(loading).rejects.toThrow(InputError);
    await expect(loading).rejects.toThrow(`${stateFile}: epoch: expected an integer >= 0, got "3"`);
    await expect(loading).rejects.toThrow(`${stateFile}: rng: `);
    await expect(loading).rejects.toThrow(`${stateFile}: spec.hidden: expected an integer >= 1, got 0`);
    await expect(loading).rejects.toThrow(/the checkpoint is damaged: restore it/);

    // Without a version it is damaged too, not an older format; a null metric (a NaN an earlier import wrote) is 0.
    const { version: _version, ...unversioned } = state;
    await writeFile(stateFile, JSON.stringify(unversioned));
    await expect(loadTrainedModel(runDir, 'best', { config: z.unknown() })).rejects.toThrow(
      `${stateFile}: version: expected 2, got nothing`,
    );
    await writeFile(stateFile, JSON.stringify({ ...state, rng: _rng, metric: null, best: { epoch: 1, metric: null } }));
    const model = await loadTrainedModel(runDir, 'best', { config: z.unknown() });
    expect([model.state.metric, model.state.best.metric]).toEqual([0, 0]);
  });

  it("checks the run's config with the schema the caller reads it by", async () => {
    const runDir = await writeRun('config');
    const config = z.object({ the: z.number() });
    await expect(loadTrainedModel(runDir, 'best', { config })).rejects.toThrow(/state.json: config.the: /);
  });

  it('refuses a checkpoint of an older or newer format, saying what to do', async () => {
    const runDir = await writeRun('old');
    const stateFile = join(checkpointDir(runDir, 'best'), 'state.json');
    const state = JSON.parse(await readFile(stateFile, 'utf8'));
    await writeFile(stateFile, JSON.stringify({ ...state, version: 3 }));
    await expect(loadTrainedModel(runDir, 'best', { config: z.unknown() })).rejects.toThrow(
      /state.json: checkpoint format 3, newer than this ctl reads \(2\): update ctl/,
    );
    await writeFile(stateFile, JSON.stringify({ ...state, version: 1 }));
    await expect(loadTrainedModel(runDir, 'best', { config: z.unknown() })).rejects.toThrow(
      /state.json: checkpoint format 1, expected 2 .*train it again under a new name/,
    );
  });
});
