// A small trained run for the serve tests, made through the real stages in this process: a synthetic dataset
// with painted images, embedded by the generated 'tiny' SigLIP-shaped model (so uploads can be embedded too),
// a few epochs of training, and the catalog eval report the API's ranks are checked against.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { synthesise } from '../src/data/synth/world.js';
import { runEmbed } from '../src/embed/run.js';
import { evaluateRun, type EvalReport } from '../src/eval/evaluate.js';
import { trainRun } from '../src/train/run.js';
import { smallConfig, writeConfig } from './train-fixtures.js';

export const RUN = 'tiny-run';

export interface ServeFixture {
  workdir: string;
  catalogReport: EvalReport;
  remove(): Promise<void>;
}

export async function trainedWorkdir({ scenes = 160, products = 80 } = {}): Promise<ServeFixture> {
  const workdir = await mkdtemp(join(tmpdir(), 'ctl-serve-'));
  await synthesise(workdir, { scenes, products, seed: 5, domain: 'fashion', images: true });
  await runEmbed({
    workdir,
    domain: 'fashion',
    model: 'tiny',
    offline: true,
    provider: 'local',
    device: 'cpu',
    dtype: 'fp32',
    batch: 32,
    prefetch: 2,
    commitEvery: 512,
    kind: 'all',
    sceneView: 'full',
    hide: 'crop',
    progress: false,
  });
  const config = smallConfig({ embeddings: { model: 'tiny' }, epochs: 3, batchSize: 32 });
  await trainRun({ workdir, config: await writeConfig(workdir, RUN, config), run: RUN, backend: 'wasm', workers: 1 });
  const [catalogReport] = await evaluateRun(workdir, RUN, 'best', [{ protocol: 'catalog', split: 'test' }]);
  return { workdir, catalogReport, remove: () => rm(workdir, { recursive: true, force: true }) };
}
