// `ctl eval` and `ctl reproduce` end to end through the built CLI (run `npm run build` first), on a small
// planted-structure workdir (train-fixtures) with tiny v1/v2-shaped configs.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_MODEL, plantedWorkdir, smallConfig, writeConfig } from './train-fixtures.js';

const cli = resolve(__dirname, '../dist/cli.js');
let workdir = '';
let configs = '';

function ctl(...args: string[]) {
  const p = spawnSync(process.execPath, [cli, ...args, '--workdir', workdir], { encoding: 'utf8', timeout: 120_000 });
  return { code: p.status, stdout: p.stdout, stderr: p.stderr };
}

beforeAll(async () => {
  ({ workdir } = await plantedWorkdir({ scenes: 300, dim: 16, categories: 3, latent: 4, seed: 3 }));
  const selection = { protocol: 'seed', metric: 'recall@10' };
  const v2 = await writeConfig(
    workdir,
    'v2',
    smallConfig({ name: 'v2', split: 'seed', epochs: 2, selection } as Record<string, unknown>),
  );
  const v1 = await writeConfig(
    workdir,
    'v1',
    smallConfig({
      name: 'v1',
      split: 'seed',
      epochs: 2,
      model: { arch: 'v1', hidden: 24, out: 8, dropout: 0.2 },
      loss: { infonce: 1, triplet: 0 },
      negatives: { strategy: 'none' },
      optimizer: { kind: 'adam', lr: 1e-3 },
      selection,
    } as Record<string, unknown>),
  );
  configs = `${v1},${v2}`;
}, 120_000);

afterAll(async () => {
  await rm(workdir, { recursive: true, force: true });
});

describe('ctl reproduce', () => {
  it('trains both configs, prints the seed table beside the reference and the honest tables, labels the data', () => {
    const r = ctl('reproduce', '--configs', configs, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('data: SYNTHETIC data');
    expect(r.stderr).toContain('not STL results');
    expect(r.stderr).toMatch(/seed protocol[^\n]*\n[^\n]*R@1/);
    expect(r.stderr).toMatch(/reference v1 \(STL-Fashion, published\)\s+-\s+6\.1%\s+17\.9%\s+25\.4%/);
    expect(r.stderr).toMatch(/reference v2 \(STL-Fashion, published\)\s+-\s+12\.3%\s+28\.6%\s+36\.6%/);
    expect(r.stderr).toContain('catalog protocol (scene-disjoint split, test part');
    expect(r.stderr).toContain('category protocol (scene-disjoint split, test part');
    expect(r.stderr.match(/zero-shot \(raw embeddings\)/g)).toHaveLength(3);
    // Our synthetic rows never carry an STL label.
    for (const line of r.stderr.split('\n').filter((l) => l.startsWith('ours '))) expect(line).not.toContain('STL');

    const doc = JSON.parse(r.stdout);
    expect(doc.data).toMatchObject({ source: 'synthetic', embeddings: TEST_MODEL });
    expect(doc.runs.map((x: { run: string; trained: boolean }) => [x.run, x.trained])).toEqual([
      ['v1', true],
      ['v2', true],
    ]);
    for (const run of doc.runs) {
      expect(
        run.reports.map((x: { protocol: string; split: { part: string } }) => `${x.protocol}-${x.split.part}`),
      ).toEqual(['seed-val', 'catalog-test', 'category-test']);
      for (const report of run.reports)
        expect(existsSync(join(workdir, 'runs', run.run, 'eval', `${report.protocol}-${report.split.part}.json`))).toBe(
          true,
        );
    }
    // The seed-split runs trained on most of the scene split's scenes: the report says so.
    expect(doc.runs[1].reports[1].trainSceneOverlap).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/ours v2 .*\* \d+% of these pairs' scenes were in training/);
    // The planted structure is learnable: v2 beats the zero-shot floor on the catalog protocol.
    expect(doc.runs[1].reports[1].metrics.recall['50']).toBeGreaterThan(doc.zeroShot[1].metrics.recall['50']);
  });

  it('reuses finished runs on a second call', () => {
    const r = ctl('reproduce', '--configs', configs, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("run 'v1' is finished");
    expect(JSON.parse(r.stdout).runs.map((x: { trained: boolean }) => x.trained)).toEqual([false, false]);
  });
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
  });

  it('evaluates the raw embeddings with --zero-shot', () => {
    const r = ctl('eval', '--zero-shot', '--embeddings', TEST_MODEL, '--split', 'val', '--json');
    expect(r.code, r.stderr).toBe(0);
    const [report] = JSON.parse(r.stdout);
    expect(report).toMatchObject({ model: 'zero-shot', protocol: 'catalog', split: { scheme: 'scene', part: 'val' } });
    expect(existsSync(join(workdir, 'eval', 'zero-shot', TEST_MODEL, 'full', 'catalog-val.json'))).toBe(true);
  });

  it('refuses bad requests with exit 2 and a clear line', () => {
    const seedTest = ctl('eval', '--run', 'v2', '--protocol', 'seed', '--split', 'test');
    expect(seedTest.code).toBe(2);
    expect(seedTest.stderr).toContain('the seed protocol has no test part');
    const noRun = ctl('eval', '--run', 'missing');
    expect(noRun.code).toBe(2);
    expect(noRun.stderr).toContain("no 'best' checkpoint");
    expect(ctl('eval').stderr).toContain('--run NAME is required');
  });
});
