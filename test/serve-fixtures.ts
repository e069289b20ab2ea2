// Two small trained runs for the serve tests, made through the real stages in this process: a synthetic dataset
// with painted images, embedded by the generated 'tiny' SigLIP-shaped model (uploads can be embedded: RUN) and
// with synthetic embeddings too (no image model: SYNTH_RUN), a few epochs of training each, and the catalog eval
// reports the API's ranks are checked against.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SYNTH_MODEL } from '../src/data/workdir.js';
import { synthesise } from '../src/data/synth/run.js';
import { runEmbed } from '../src/embed/run.js';
import { evaluateRun, type EvalReport } from '../src/eval/evaluate.js';
import { trainRun } from '../src/train/run.js';
import { embedOptions } from './embed-fixtures.js';
import { smallConfig, writeConfig } from './train-fixtures.js';

const CLI = resolve(__dirname, '../dist/cli.js');

export const RUN = 'tiny-run';
export const SYNTH_RUN = 'synthetic-run';

export interface ServeFixture {
  workdir: string;
  /** RUN's catalog report (test part). */
  catalogReport: EvalReport;
  synthCatalogReport: EvalReport;
  remove(): Promise<void>;
}

export async function trainedWorkdir({ scenes = 160, products = 80 } = {}): Promise<ServeFixture> {
  const workdir = await mkdtemp(join(tmpdir(), 'ctl-serve-'));
  await synthesise(workdir, { scenes, products, seed: 5, domain: 'fashion', images: true, dim: 16 });
  await runEmbed(embedOptions(workdir, { batch: 32, commitEvery: 512 }));
  const reports: EvalReport[] = [];
  for (const [run, model] of [
    [RUN, 'tiny'],
    [SYNTH_RUN, SYNTH_MODEL],
  ]) {
    const config = smallConfig({ embeddings: { model }, epochs: 3, batchSize: 32 });
    await trainRun({ workdir, config: await writeConfig(workdir, run, config), run, backend: 'wasm', workers: 1 });
    reports.push(...(await evaluateRun(workdir, run, 'best', [{ protocol: 'catalog', split: 'test' }])));
  }
  return {
    workdir,
    catalogReport: reports[0],
    synthCatalogReport: reports[1],
    remove: () => rm(workdir, { recursive: true, force: true }),
  };
}

/** Start the built `ctl` (serve, or demo --serve): `listening` resolves with the URL it prints. */
/** The CLI processes startCli started that may still run (a failed assertion skips a test's own kill). */
const running = new Set<ChildProcess>();

/** Stop what startCli started and is still running (call from afterAll). */
export function stopClis(): void {
  for (const child of running) child.kill('SIGKILL');
}

export function startCli(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  running.add(child);
  child.on('close', () => running.delete(child));
  let stderr = '';
  const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
  const listening = new Promise<string>((done, fail) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /open (http:\/\/\S+\/) /.exec(stderr);
      if (match) done(match[1]);
    });
    void exited.then((code) => fail(new Error(`ctl serve exited (${code}) before listening:\n${stderr}`)));
  });
  listening.catch(() => {}); // the tests of failed starts wait for the exit instead
  return { child, listening, exited, stderr: () => stderr };
}
