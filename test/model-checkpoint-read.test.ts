// loadCheckpoint's retry: a read that fails because a trainer swaps a new save in is read again; one that fails
// because the checkpoint is damaged fails at once. Reads are counted through node:fs/promises.readFile.
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { checkpointDir, loadCheckpoint, saveCheckpoint } from '../src/model/checkpoint.js';
import { TwoTower } from '../src/model/two-tower.js';
import { setAside } from '../src/util/atomic.js';
import { InputError } from '../src/util/errors.js';
import { checkpointStateFor, TINY_V2 } from './model-fixtures.js';

/** Called (and awaited) before each readFile; the paths of the files read. */
const reads = vi.hoisted(() => ({ before: async (_file: string) => {}, files: [] as string[] }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const readFile = async (...args: Parameters<typeof fs.readFile>) => {
    reads.files.push(String(args[0]));
    await reads.before(String(args[0]));
    return fs.readFile(...args);
  };
  return { ...fs, default: { ...fs, readFile }, readFile };
});

const layout = new TwoTower(TINY_V2).layout;
const state = checkpointStateFor(TINY_V2, { cat_to_idx: { Shoes: 0, Bags: 1, Hats: 2 }, num_categories: 3 });
const params = layout.initialise(3);

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ctl-checkpoint-read-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  reads.before = async () => {};
  reads.files = [];
});

/** How many times the weights file was read. */
const weightReads = () => reads.files.filter((file) => basename(file) === 'model.safetensors').length;

describe('loadCheckpoint', () => {
  it('reads again when a trainer swaps a new save in under it, and returns the new save whole', async () => {
    const runDir = join(dir, 'swapped');
    await saveCheckpoint(runDir, 'best', layout, { state, params });
    // The next save, made elsewhere, to be renamed in the way replaceDir does it.
    const nextDir = join(dir, 'next');
    const next = { state: { ...state, epoch: state.epoch + 1 }, params: params.map((p) => p + 1) };
    await saveCheckpoint(nextDir, 'best', layout, next);
    const path = checkpointDir(runDir, 'best');
    let swapped: Promise<void> | undefined;
    reads.before = async (file) => {
      if (swapped || basename(file) !== 'model.safetensors') return;
      // The first weights read finds the folder set aside (ENOENT); the new one is renamed in a moment later.
      const aside = await setAside(path);
      swapped = new Promise((resolve) => setTimeout(resolve, 50)).then(async () => {
        await rename(checkpointDir(nextDir, 'best'), path);
        await rm(aside, { recursive: true });
      });
    };
    const loaded = await loadCheckpoint(runDir, 'best', layout);
    await swapped;
    expect(loaded.state.epoch).toBe(next.state.epoch);
    expect(loaded.params).toEqual(next.params);
    expect(weightReads()).toBe(2);
  });

  it('fails at once, with what is wrong, on damaged weights that no second read would mend', async () => {
    const runDir = join(dir, 'damaged');
    await saveCheckpoint(runDir, 'best', layout, { state, params });
    const weights = join(checkpointDir(runDir, 'best'), 'model.safetensors');
    await writeFile(weights, new Uint8Array(4)); // truncated: shorter than its header's length
    const loading = loadCheckpoint(runDir, 'best', layout);
    await expect(loading).rejects.toThrow(InputError);
    await expect(loading).rejects.toThrow(weights);
    expect(weightReads()).toBe(1);

    reads.files = [];
    await rm(weights);
    await expect(loadCheckpoint(runDir, 'best', layout)).rejects.toThrow(`${weights}: cannot read (ENOENT)`);
    expect(weightReads()).toBe(1);
  });

  it('fails at once where there is no checkpoint', async () => {
    await expect(loadCheckpoint(join(dir, 'none'), 'best', layout)).rejects.toThrow('no checkpoint at');
    expect(reads.files.filter((file) => basename(file) === 'state.json').length).toBeLessThanOrEqual(2); // before, after
  });
});
