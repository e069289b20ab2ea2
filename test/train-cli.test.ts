// `ctl train` as a user runs it (node dist/cli.js; run `npm run build` first): data-parallel worker threads,
// a run killed mid-epoch and resumed reaching exactly the metrics of an uninterrupted run (wasm and ort-cpu
// engines), --json, exit codes.
import { spawn, spawnSync } from 'node:child_process';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointEpoch, epochRecords, plantedWorkdir, smallConfig, writeConfig } from './train-fixtures.js';

const CLI = join(process.cwd(), 'dist', 'cli.js');
let workdir = '';
let config = '';
/** Mined negatives, re-mined every 5 steps: an epoch ends between two minings, so a resumed run starts on the
 * pool its checkpoint kept. */
let minedConfig = '';

beforeAll(async () => {
  ({ workdir } = await plantedWorkdir({ scenes: 500, dim: 24, categories: 4, latent: 6, seed: 2 }));
  config = await writeConfig(workdir, 'cli', smallConfig({ epochs: 3 }));
  const mined = { strategy: 'mined' as const, refreshSteps: 5, rankWindow: [1, 10] as [number, number], poolSize: 4 };
  minedConfig = await writeConfig(workdir, 'cli-mined', smallConfig({ epochs: 3, negatives: mined }));
});

afterAll(async () => {
  await rm(workdir, { recursive: true, force: true });
});

const ctl = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args, '--workdir', workdir], { encoding: 'utf8' });

describe('ctl train', () => {
  it('documents every flag with its default', () => {
    const help = ctl('train', '--help');
    expect(help.status).toBe(0);
    for (const flag of [
      '--config',
      '--backend',
      '--resume',
      '--run',
      '--embeddings',
      '--workers',
      '--workdir',
      '--json',
    ])
      expect(help.stdout).toContain(flag);
    expect(help.stdout).toMatch(/default: "auto"/);
  });

  it('explains --set with an example, and exits 2 naming a bad --set flag', () => {
    expect(ctl('train', '--help').stdout).toMatch(/--set <path=value>[^]*--set epochs=5 --set optimizer.lr=1e-3/);
    const cases: [string, RegExp][] = [
      ['epochs=0', /--set epochs=0: epochs: expected an integer >= 1, got 0/],
      ['optimizer.lrr=1', /--set optimizer.lrr=1: optimizer.lrr: unknown field \(known: kind, lr,/],
      ['split=random', /--set split=random: split: expected one of 'seed', 'scene', got "random"/],
      ['epochs', /--set epochs: expected PATH=VALUE/],
    ];
    for (const [assignment, message] of cases) {
      const run = ctl('train', '--config', config, '--set', assignment);
      expect(run.status, run.stderr).toBe(2);
      expect(run.stderr).toMatch(message);
    }
  });

  it('exits 2 on a run name that is not a folder of runs/ (.., hidden, a path)', () => {
    for (const name of ['..', '.hidden', 'a/b']) {
      const run = ctl('train', '--config', config, '--run', name);
      expect(run.status, run.stderr).toBe(2);
      expect(run.stderr).toContain(`--run: '${name}' is not a valid run name`);
    }
    // A name from the config (here set on the command line) is named as the config's field.
    const named = ctl('train', '--config', config, '--set', 'name=../evil');
    expect([named.status, named.stderr]).toEqual([
      2,
      expect.stringContaining(
        `${config}: name: '../evil' is not a valid run name (letters, digits, . _ -; not starting with .): give --run NAME`,
      ),
    ]);
    // Room is left for the lock and temporary files beside a run's folder (255 bytes a name).
    const long = ctl('train', '--config', config, '--run', 'r'.repeat(201));
    expect([long.status, long.stderr]).toEqual([
      2,
      expect.stringContaining(`--run: '${'r'.repeat(24)}…' is too long for a run name (201 characters, at most 200)`),
    ]);
  });

  it('exits 2 on a missing config file, naming it', () => {
    const run = ctl('train', '--config', join(workdir, 'nope.json'));
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/nope.json: config file not found/);
  });

  it('exits 2 on a worker count that is not a whole number written in digits', () => {
    for (const count of ['1e1', '0x2', '0', '1.5']) {
      const run = ctl('train', '--config', join(workdir, 'nope.json'), '--workers', count);
      expect([run.status, run.stderr]).toEqual([
        2,
        expect.stringContaining("--workers (or 'auto') expects an integer >= 1"),
      ]);
    }
  });

  it('exits 2 on worker threads for an engine that has none', () => {
    const run = ctl('train', '--config', join(workdir, 'nope.json'), '--backend', 'ort-cpu', '--workers', '2');
    expect([run.status, run.stderr]).toEqual([
      2,
      expect.stringContaining('--workers: only with --backend wasm or auto'),
    ]);
  });

  it('stopped by SIGINT after a checkpoint: exit 130, and one line saying how to go on', async () => {
    // Epochs enough that the run is still training when the signal comes, however slow the machine.
    const args = ['train', '--config', config, '--run', 'interrupted', '--set', 'epochs=100', '--workdir', workdir];
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    while ((await checkpointEpoch(workdir, 'interrupted')) < 1) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toMatch(
      /\nctl train: stopped by SIGINT; continue from the last checkpoint with the same command and --resume\n$/,
    );
  });

  it('--resume of a run that does not exist says so, naming the runs there, and starts it', () => {
    const fresh = ctl('train', '--config', config, '--run', 'never-started', '--resume', '--set', 'epochs=1');
    expect(fresh.status, fresh.stderr).toBe(0);
    expect(fresh.stderr).toMatch(/run 'never-started' does not exist yet: starting it \(runs here: [^)]*\)/);
  });

  it('trains in-batch-hard negatives with false negatives masked on ort-cpu, within 1 point of R@10 of wasm', async () => {
    const hard = await writeConfig(
      workdir,
      'hard',
      smallConfig({
        negatives: { strategy: 'in-batch-hard' },
        loss: { infonce: 1, triplet: 0.5, margin: 0.2, maskFalseNegatives: true },
      }),
    );
    const [onOrt, onWasm] = ['ort-cpu', 'wasm'].map((backend) =>
      ctl('train', '--config', hard, '--run', `hard-${backend}`, '--backend', backend, '--workers', '1', '--json'),
    );
    expect(onOrt.status, onOrt.stderr).toBe(0);
    expect(onWasm.status, onWasm.stderr).toBe(0);
    expect(onOrt.stderr).toMatch(/engine: ort-cpu/);
    const [ort, wasm] = [JSON.parse(onOrt.stdout), JSON.parse(onWasm.stdout)];
    expect(ort.epochs).toBe(3);
    expect(wasm.best.metric).toBeGreaterThan(0.2); // the runs learnt something worth comparing
    expect(Math.abs(ort.best.metric - wasm.best.metric)).toBeLessThanOrEqual(0.01);
  });

  for (const { backend, workers, label, mined } of [
    { backend: 'wasm', workers: '2', label: 'wasm, 2 worker threads, mined negatives', mined: true },
    { backend: 'ort-cpu', workers: '1', label: 'ort-cpu', mined: false },
  ])
    it(`resumed after a kill mid-epoch, reaches the same metrics as an uninterrupted run (${label})`, async () => {
      const config_ = mined ? minedConfig : config;
      const [full_, killed_] = [`full-${backend}`, `killed-${backend}`];
      const full = ctl(
        'train',
        '--config',
        config_,
        '--run',
        full_,
        '--backend',
        backend,
        '--workers',
        workers,
        '--json',
      );
      expect(full.status, full.stderr).toBe(0);
      const result = JSON.parse(full.stdout);
      expect(result).toMatchObject({ run: full_, epochs: 3, metric: 'recall@10', protocol: 'catalog' });
      expect(full.stderr).toMatch(backend === 'wasm' ? /2 workers/ : /engine: ort-cpu/);

      const trainKilled = ['train', '--config', config_, '--run', killed_, '--backend', backend, '--workers', workers];
      const child = spawn(process.execPath, [CLI, ...trainKilled, '--workdir', workdir], { stdio: 'ignore' });
      const exited = new Promise((resolve) => child.on('exit', resolve));
      while ((await checkpointEpoch(workdir, killed_)) < 1) await new Promise((r) => setTimeout(r, 20));
      child.kill('SIGKILL');
      await exited;
      const killedAt = await checkpointEpoch(workdir, killed_);
      expect(killedAt).toBeLessThan(3);

      const resumed = ctl(...trainKilled, '--resume', '--json');
      expect(resumed.status, resumed.stderr).toBe(0);
      expect(JSON.parse(resumed.stdout).best).toEqual(result.best);
      expect(resumed.stderr).toContain(`resuming after epoch ${killedAt}/3 (step `);
      const a = await epochRecords(workdir, full_);
      const b = await epochRecords(workdir, killed_);
      expect(b.map((r) => [r.epoch, r.step, r.loss, r.metric])).toEqual(
        a.map((r) => [r.epoch, r.step, r.loss, r.metric]),
      );
      // One step record per step: the records of the killed epoch were dropped on resume.
      const steps = (await readFile(join(workdir, 'runs', killed_, 'metrics.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .filter((r) => r.type === 'step')
        .map((r) => r.step);
      expect(steps).toEqual(Array.from({ length: a[2].step }, (_, i) => i + 1));
      await stat(join(workdir, 'runs', killed_, 'checkpoints', 'best', 'model.safetensors'));
    }, 300_000); // three training processes: ~20 s of CPU, minutes of wall time on a busy machine
});
