// `ctl eval` end to end through the built CLI (run `npm run build` first), on a small planted-structure workdir
// and a run trained there with a tiny v2-shaped config (eval-fixtures).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workdirPaths } from '../src/data/workdir.js';
import { lockStoreWriter } from '../src/data/store/writers.js';
import { plantedWorkdirWithConfigs } from './eval-fixtures.js';
import { TEST_MODEL } from './train-fixtures.js';

const cli = resolve(__dirname, '../dist/cli.js');
let workdir = '';
let v2Config = '';

function ctl(...args: string[]) {
  const p = spawnSync(process.execPath, [cli, ...args, '--workdir', workdir], { encoding: 'utf8', timeout: 120_000 });
  return { code: p.status, stdout: p.stdout, stderr: p.stderr };
}

beforeAll(async () => {
  const planted = await plantedWorkdirWithConfigs();
  workdir = planted.workdir;
  v2Config = planted.v2;
  const train = ctl('train', '--config', planted.v2);
  expect(train.code, train.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  await rm(workdir, { recursive: true, force: true });
});

describe('ctl eval', () => {
  it('evaluates every protocol of a run, writes the reports, prints the table and --json', async () => {
    const r = ctl('eval', '--run', 'v2', '--protocol', 'all', '--per-category', '--json');
    expect(r.code, r.stderr).toBe(0);
    const reports = JSON.parse(r.stdout);
    expect(reports.map((x: { protocol: string }) => x.protocol)).toEqual(['seed', 'catalog', 'category']);
    expect(r.stderr).toMatch(/seed \(seed\/val\)\s+\d+/);
    expect(r.stderr).toContain('catalog per category');
    const saved = JSON.parse(await readFile(join(workdir, 'runs', 'v2', 'eval', 'category-test.json'), 'utf8'));
    expect(saved.metrics).toEqual(reports[2].metrics);
    expect(saved.metrics.auc).toBeGreaterThan(0.5);
    expect(saved.checkpoint.which).toBe('best');

    // The last checkpoint's reports sit beside the best's, which stay as they were; with --protocol all and
    // --split test, seed is scored on val, the only part it has.
    const last = ctl('eval', '--run', 'v2', '--protocol', 'all', '--split', 'test', '--checkpoint', 'last', '--json');
    expect(last.code, last.stderr).toBe(0);
    expect(JSON.parse(last.stdout).map((x: { split: { part: string } }) => x.split.part)).toEqual([
      'val',
      'test',
      'test',
    ]);
    const dir = join(workdir, 'runs', 'v2', 'eval');
    expect(JSON.parse(await readFile(join(dir, 'category-test-last.json'), 'utf8')).checkpoint.which).toBe('last');
    expect(JSON.parse(await readFile(join(dir, 'category-test.json'), 'utf8'))).toEqual(saved);

    // The protocols of one call share the encoded catalog and parts: each alone gives the same numbers.
    for (const [i, protocol] of ['seed', 'catalog', 'category'].entries()) {
      const alone = ctl('eval', '--run', 'v2', '--protocol', protocol, '--json');
      expect(alone.code, alone.stderr).toBe(0);
      expect(JSON.parse(alone.stdout)[0].metrics).toEqual(reports[i].metrics);
    }
  });

  it('records in each report which backend ran the towers, and prints it', async () => {
    const r = ctl('eval', '--run', 'v2', '--protocol', 'seed', '--backend', 'wasm', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)[0].backend).toBe('wasm');
    expect(r.stderr).toContain('run v2 (best checkpoint, epoch');
    expect(r.stderr).toContain(', towers on wasm)');
    const saved = JSON.parse(await readFile(join(workdir, 'runs', 'v2', 'eval', 'seed-val.json'), 'utf8'));
    expect(saved.backend).toBe('wasm');
  });

  it('says a synthetic dataset with an empty part needs more scenes', async () => {
    const small = await mkdtemp(join(tmpdir(), 'ctl-eval-few-'));
    try {
      const run = (...args: string[]) =>
        spawnSync(process.execPath, [cli, ...args, '--workdir', small], { encoding: 'utf8', timeout: 60_000 });
      // Seed 121's 50 scenes all hash into train or val.
      expect(run('data', 'synth', '--scenes', '50', '--products', '20', '--seed', '121').status).toBe(0);
      const r = run('eval', '--zero-shot', '--embeddings', 'synthetic');
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(
        "the dataset's scene split has no test pairs: too few scenes for this part: make more with `ctl data synth --scenes N`",
      );
    } finally {
      await rm(small, { recursive: true, force: true });
    }
  });

  it('evaluates the raw embeddings with --zero-shot', () => {
    const r = ctl('eval', '--zero-shot', '--embeddings', TEST_MODEL, '--split', 'val', '--json');
    expect(r.code, r.stderr).toBe(0);
    const [report] = JSON.parse(r.stdout);
    expect(report).toMatchObject({ model: 'zero-shot', protocol: 'catalog', split: { scheme: 'scene', part: 'val' } });
    expect(existsSync(join(workdir, 'eval', 'zero-shot', TEST_MODEL, 'full', 'catalog-val.json'))).toBe(true);
  });

  it('no stage uses the rows of a store while another process adds to it (ctl embed, import, data merge)', async () => {
    const products = workdirPaths(workdir).embeddings(TEST_MODEL, 'products');
    const writer = await lockStoreWriter(products, 'w', () => 'busy'); // as a ctl embed writing it holds it
    const refusal = new RegExp(
      `${products}: another process is adding rows to this store .*: process ${process.pid} on`,
    );
    try {
      const out = join(workdir, 'export-while-written');
      for (const args of [
        ['eval', '--run', 'v2'],
        ['eval', '--zero-shot', '--embeddings', TEST_MODEL],
        ['train', '--config', v2Config, '--run', 'v2-while-written'],
        ['export', '--run', 'v2', '--format', 'pt', '--out', out],
      ]) {
        const r = ctl(...args);
        expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(refusal)]);
      }
      // A serve that started anyway would run on: the timeout stops it (status null).
      const serve = spawnSync(process.execPath, [cli, 'serve', '--run', 'v2', '--port', '0', '--workdir', workdir], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect([serve.status, serve.stderr]).toEqual([2, expect.stringMatching(refusal)]);
      expect(existsSync(out)).toBe(false);
    } finally {
      await writer.release();
    }
    expect(ctl('eval', '--run', 'v2').code).toBe(0);
  });

  it('refuses bad requests with exit 2 and a clear line', () => {
    const seedTest = ctl('eval', '--run', 'v2', '--protocol', 'seed', '--split', 'test');
    expect(seedTest.code).toBe(2);
    expect(seedTest.stderr).toContain('the seed protocol has no test part');
    const noRun = ctl('eval', '--run', 'missing');
    expect(noRun.code).toBe(2);
    expect(noRun.stderr).toMatch(/--run missing: no such run in .*runs \(runs: v2\)/);
    expect(ctl('eval').stderr).toContain('--run NAME is required');
    const zeroShotFlag = ctl('eval', '--run', 'v2', '--scene-view', 'hide-product');
    expect(zeroShotFlag.code).toBe(2);
    expect(zeroShotFlag.stderr).toContain('--scene-view: only with --zero-shot');
    expect(ctl('eval', '--run', 'v2', '--scene-view', 'full').code).toBe(0); // its default asks for nothing
    const runFlag = ctl('eval', '--zero-shot', '--embeddings', 'synthetic', '--checkpoint', 'last');
    expect(runFlag.code).toBe(2);
    expect(runFlag.stderr).toContain('--checkpoint: only with --run');
  });
});
