// `ctl reproduce` end to end through the built CLI (run `npm run build` first), on a small planted-structure
// workdir with tiny v1/v2-shaped configs that, like the real ones, name the seed split (eval-fixtures).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Dataset } from '../src/data/dataset.js';
import { loadDataset } from '../src/data/stl/dataset-io.js';
import type { SplitScheme } from '../src/data/types.js';
import { EmbeddingStore } from '../src/data/store/embeddings.js';
import { workdirPaths } from '../src/data/workdir.js';
import { plantedWorkdirWithConfigs } from './eval-fixtures.js';
import { TEST_MODEL } from './train-fixtures.js';

const cli = resolve(__dirname, '../dist/cli.js');
let workdir = '';
let configs = '';

function ctl(...args: string[]) {
  return ctlWith({}, ...args);
}

function ctlWith(env: Record<string, string>, ...args: string[]) {
  const p = spawnSync(process.execPath, [cli, ...args, '--workdir', workdir], {
    encoding: 'utf8',
    timeout: 240_000,
    env: { ...process.env, ...env },
  });
  return { code: p.status, stdout: p.stdout, stderr: p.stderr };
}

/** The scenes of a part of a split. */
function scenesOf(dataset: Dataset, scheme: SplitScheme, part: 'train' | 'val' | 'test'): Set<string> {
  return new Set((dataset.splits[scheme]?.parts[part] ?? []).map((p) => dataset.pairs[p].scene));
}

async function runConfig(run: string) {
  return JSON.parse(await readFile(join(workdir, 'runs', run, 'config.json'), 'utf8')).config;
}

beforeAll(async () => {
  const planted = await plantedWorkdirWithConfigs();
  workdir = planted.workdir;
  configs = `${planted.v1},${planted.v2}`;
}, 120_000);

afterAll(async () => {
  await rm(workdir, { recursive: true, force: true });
});

describe('ctl reproduce', () => {
  it('trains each config on the seed split and a twin on the scene split, prints the tables, labels the data', async () => {
    const r = ctl('reproduce', '--configs', configs, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('data: SYNTHETIC data');
    expect(r.stderr).toContain('not STL results');
    expect(r.stderr).toMatch(/seed protocol[^\n]*\n[^\n]*R@1/);
    expect(r.stderr).toMatch(/reference v1 \(STL-Fashion, published\)\s+-\s+6\.1%\s+17\.9%\s+25\.4%/);
    expect(r.stderr).toMatch(/reference v2 \(STL-Fashion, published\)\s+-\s+12\.3%\s+28\.6%\s+36\.6%/);
    expect(r.stderr).toContain('catalog protocol (scene-disjoint split, test part');
    expect(r.stderr).toContain('category protocol (scene-disjoint split, test part');
    expect(r.stderr.split(`zero-shot (raw '${TEST_MODEL}')`)).toHaveLength(4); // one row in each of the 3 tables
    // The seed table holds the seed-split runs, the honest tables their scene-split twins, none flagged.
    const [seedTable, catalogTable, categoryTable] = r.stderr
      .split(/\n(?=(?:seed|catalog|category) protocol \()/)
      .slice(1);
    expect(seedTable).toMatch(/\nours v1 /);
    expect(seedTable).toMatch(/\nours v2 /);
    expect(seedTable).not.toContain('-scene');
    for (const table of [catalogTable, categoryTable]) {
      expect(table).toMatch(/\nours v1-scene /);
      expect(table).toMatch(/\nours v2-scene /);
      expect(table).not.toMatch(/\nours v[12] /);
      expect(table).not.toContain('were in training');
    }
    // The seed protocol is the reference's own leaky one: its rows stay flagged.
    expect(seedTable).toMatch(/\nours v2 .*\* \d+% of these pairs' scenes were in training/);
    // Our synthetic rows never carry an STL label.
    for (const line of r.stderr.split('\n').filter((l) => l.startsWith('ours '))) expect(line).not.toContain('STL');

    const doc = JSON.parse(r.stdout);
    expect(doc.data).toMatchObject({ source: 'synthetic', embeddings: [TEST_MODEL] });
    expect(doc.runs.map((x: { run: string; split: string; trained: boolean }) => [x.run, x.split, x.trained])).toEqual([
      ['v1', 'seed', true],
      ['v1-scene', 'scene', true],
      ['v2', 'seed', true],
      ['v2-scene', 'scene', true],
    ]);
    for (const run of doc.runs) {
      expect(
        run.reports.map((x: { protocol: string; split: { part: string } }) => `${x.protocol}-${x.split.part}`),
      ).toEqual(run.split === 'seed' ? ['seed-val'] : ['catalog-test', 'category-test']);
      for (const report of run.reports)
        expect(existsSync(join(workdir, 'runs', run.run, 'eval', `${report.protocol}-${report.split.part}.json`))).toBe(
          true,
        );
    }

    // The proof, from what each run recorded: every catalog and category row comes from a run whose training
    // scenes are disjoint from the scenes it was scored on; every seed row from a run trained on the seed split.
    const dataset = await loadDataset(workdir, 'fashion');
    let honestRows = 0;
    for (const run of doc.runs) {
      const config = await runConfig(run.run);
      const trainScenes = scenesOf(dataset, config.split, 'train');
      expect(trainScenes.size).toBeGreaterThan(0);
      for (const report of run.reports) {
        if (report.protocol === 'seed') {
          expect(config.split).toBe('seed');
          continue;
        }
        const scored = scenesOf(dataset, report.split.scheme, report.split.part);
        expect(scored.size).toBeGreaterThan(0);
        expect([...scored].filter((scene) => trainScenes.has(scene))).toEqual([]);
        expect(report.trainSceneOverlap).toBe(0);
        honestRows++;
      }
    }
    expect(honestRows).toBe(4);
    // The twin is its config with only the split changed, by a recorded `--set split=scene`.
    const twin = JSON.parse(await readFile(join(workdir, 'runs', 'v2-scene', 'config.json'), 'utf8'));
    expect(twin.overrides?.set).toEqual(['split=scene']);
    const { split, ...rest } = twin.config;
    const { split: originalSplit, ...original } = await runConfig('v2');
    expect([originalSplit, split]).toEqual(['seed', 'scene']);
    expect(rest).toEqual(original);
    // The planted structure is learnable without seeing the test scenes: v2's twin beats the zero-shot floor.
    expect(doc.runs[3].reports[0].metrics.recall['50']).toBeGreaterThan(doc.zeroShot[1].metrics.recall['50']);
  });

  it("takes the package's v1 and v2 configs without --configs, from any folder", async () => {
    const elsewhere = await mkdtemp(join(tmpdir(), 'ctl-reproduce-cwd-'));
    try {
      const p = spawnSync(process.execPath, [cli, 'reproduce', '--workdir', join(elsewhere, 'w')], {
        cwd: elsewhere,
        encoding: 'utf8',
      });
      // Past the configs (read first), to the data the empty workdir lacks.
      expect([p.status, p.stderr]).toEqual([2, expect.stringMatching(/error: no fashion dataset at .*ctl data synth/)]);
      // An empty list given (an unset variable in a script) is not the default's.
      const none = spawnSync(process.execPath, [cli, 'reproduce', '--configs', '', '--workdir', join(elsewhere, 'w')], {
        encoding: 'utf8',
      });
      expect([none.status, none.stderr]).toEqual([
        2,
        expect.stringContaining('--configs: give at least one config file'),
      ]);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  it('reuses finished runs, twins included, on a second call', () => {
    const r = ctl('reproduce', '--configs', configs, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("run 'v1' is finished");
    expect(r.stderr).toContain("run 'v2-scene' is finished");
    expect(JSON.parse(r.stdout).runs.map((x: { trained: boolean }) => x.trained)).toEqual([false, false, false, false]);
  });

  it('takes CTL_EMBEDDINGS as --embeddings, and names the runs it trains as train names them', async () => {
    // The configs' own model names no run of its own; another model's store adds its name.
    const same = ctlWith({ CTL_EMBEDDINGS: TEST_MODEL }, 'reproduce', '--configs', configs, '--json');
    expect(same.code, same.stderr).toBe(0);
    expect(JSON.parse(same.stdout).runs.map((x: { run: string; trained: boolean }) => [x.run, x.trained])).toEqual([
      ['v1', false],
      ['v1-scene', false],
      ['v2', false],
      ['v2-scene', false],
    ]);
    const paths = workdirPaths(workdir);
    for (const view of ['products', 'scenes-full'] as const) {
      const { ids, data } = await (await EmbeddingStore.open(paths.embeddings(TEST_MODEL, view))).readAll();
      const copy = await EmbeddingStore.openOrCreate(paths.embeddings('other-model', view), {
        model: 'other-model',
        dim: data.length / ids.length,
        view,
      });
      await copy.append(ids, data);
    }
    const other = ctlWith({ CTL_EMBEDDINGS: 'other-model' }, 'reproduce', '--configs', configs, '--json');
    expect(other.code, other.stderr).toBe(0);
    const doc = JSON.parse(other.stdout);
    expect(doc.runs.map((x: { run: string }) => x.run)).toEqual([
      'v1-other-model',
      'v1-other-model-scene',
      'v2-other-model',
      'v2-other-model-scene',
    ]);
    expect(other.stderr).toContain("zero-shot (raw 'other-model')");
  });

  it('checks every run name, twins included, before training any', async () => {
    const [, v2] = configs.split(',');
    const long = join(workdir, 'long-name.json');
    const name = 'n'.repeat(195); // a valid run name, whose twin `<name>-scene` is over the 200-character limit
    await writeFile(long, JSON.stringify({ ...JSON.parse(await readFile(v2, 'utf8')), name }));
    const r = ctl('reproduce', '--configs', long);
    expect([r.code, r.stderr]).toEqual([
      2,
      expect.stringMatching(
        /long-name\.json: its scene-split run: 'n{24}…' is too long for a run name \(201 characters/,
      ),
    ]);
    expect(existsSync(workdirPaths(workdir).run(name))).toBe(false);
  });

  it('stopped by SIGTERM: exit 143, and one line saying how to go on', async () => {
    const [, v2] = configs.split(',');
    const slow = join(workdir, 'slow.json');
    await writeFile(
      slow,
      JSON.stringify({ ...JSON.parse(await readFile(v2, 'utf8')), name: 'slow', epochs: 500, patience: 500 }),
    );
    const child = spawn(process.execPath, [cli, 'reproduce', '--configs', slow, '--workdir', workdir], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    while (!/epoch 1\//.test(stderr)) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGTERM');
    expect(await exited).toBe(143);
    expect(stderr).toMatch(
      /\nctl reproduce: stopped by SIGTERM; run the same command again to continue \(finished runs are reused, an unfinished one resumes\)\n$/,
    );
  });

  it('refuses to stand a finished run for a config it did not train with, naming what changed', async () => {
    const [, v2] = configs.split(',');
    const changed = join(workdir, 'v2-changed.json');
    const raw = JSON.parse(await readFile(v2, 'utf8'));
    await writeFile(changed, JSON.stringify({ ...raw, optimizer: { ...raw.optimizer, lr: 0.0123 } }));
    const r = ctl('reproduce', '--configs', changed);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/run 'v2' was trained with another config \(config optimizer\.lr: [0-9.e-]+ → 0\.0123\)/);
  });
});
