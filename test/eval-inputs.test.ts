// What an evaluation reads: the catalog's product vectors once, whatever the number of split parts it evaluates.
import { rm } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Dataset } from '../src/data/dataset.js';
import { EmbeddingStore } from '../src/data/store/embeddings.js';
import { workdirPaths } from '../src/data/workdir.js';
import { evaluateZeroShot, type EvalReport, type EvalRequest } from '../src/eval/evaluate.js';
import { plantedWorkdir, TEST_MODEL } from './train-fixtures.js';

let workdir = '';
let dataset: Dataset;
beforeAll(async () => {
  ({ workdir, dataset } = await plantedWorkdir({
    scenes: 120,
    dim: 8,
    categories: 3,
    latent: 4,
    seed: 5,
    missingProducts: 2,
  }));
});
afterAll(async () => {
  await rm(workdir, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** A report without what differs from one evaluation to the next. */
const outcome = ({ seconds: _seconds, createdAt: _createdAt, ...rest }: EvalReport) => rest;

describe('evaluation inputs', () => {
  it('reads the product vectors once for all the parts evaluated, with the results of one part at a time', async () => {
    // seed/val and scene/test and scene/val: three parts of two splits.
    const requests: EvalRequest[] = [
      { protocol: 'seed', split: 'val' },
      { protocol: 'catalog', split: 'test' },
      { protocol: 'category', split: 'val' },
    ];
    const read = vi.spyOn(EmbeddingStore.prototype, 'read');
    const reports = await evaluateZeroShot(workdir, dataset, TEST_MODEL, 'full', requests);
    const productsDir = workdirPaths(workdir).embeddings(TEST_MODEL, 'products');
    expect(read.mock.contexts.filter((store) => (store as EmbeddingStore).dir === productsDir)).toHaveLength(1);

    expect(reports.map((report) => report.pairs.missingProducts)).toEqual([2, 2, 2]);
    for (const [i, request] of requests.entries()) {
      const [alone] = await evaluateZeroShot(workdir, dataset, TEST_MODEL, 'full', [request]);
      expect(outcome(reports[i])).toEqual(outcome(alone));
    }
  });
});
