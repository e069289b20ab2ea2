// `ctl demo` as a function: the whole pipeline on a generated dataset, end to end, through the same commands a
// user runs on the real one: synthesise STL-shaped metadata and images, serve the images on 127.0.0.1 as
// Pinterest's host would, download them, embed them with a generated SigLIP-shaped model, measure the zero-shot
// baseline, train, evaluate, and sum up.
// Each stage is a child `ctl ... --json` process (its human output streams through, its JSON report is kept for
// the summary), so the demo is also a check that the stages fit together; each is resumable, so a demo killed at
// any moment continues where it stopped when run again, and a finished one is not redone.
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type * as z from 'zod';
import { writeJsonAtomic } from '../util/atomic.js';
import { InputError } from '../util/errors.js';
import { differingPaths, readJsonIfExists } from '../util/json.js';
import { int, issueLines, parseWith, section } from '../util/schema.js';
import { log } from '../util/log.js';
import { workdirPaths } from '../data/workdir.js';
import { loadDataset } from '../data/stl/dataset-io.js';
import { startMirror } from './mirror.js';
import { demoSummary, type DemoSummary, type StageReports } from './summary.js';
import { shippedConfig } from '../train/shipped-configs.js';
import { stageRunner } from './stages.js';
import { pathExists } from '../util/fs.js';
import { ctlCommand } from '../util/shell.js';

const DEMO_CONFIG = shippedConfig('demo-images');
/** The generated model the demo embeds with (src/embed/generated-models.ts): random weights, 64 px, 64-d. */
const DEMO_MODEL = 'small';
/** The run the demo trains. */
export const DEMO_RUN = 'demo';

export interface DemoOptions {
  /** The workdir the demo's own (workdir/demo) goes in. */
  workdir: string;
  scenes: number;
  products: number;
  seed: number;
}

/** demo.json: the options of `ctl data synth` the demo's data was made with. */
const demoDataSchema = section({ scenes: int(1), products: int(1), seed: int(0) });
type DemoData = z.output<typeof demoDataSchema>;

/** The flags of `ctl data synth` (and of `ctl demo`) that make this data. */
const dataFlags = (d: DemoData) => [
  '--scenes',
  String(d.scenes),
  '--products',
  String(d.products),
  '--seed',
  String(d.seed),
];

/**
 * Record in `workdir`/demo.json the data the demo is made of; a later demo there that asks for other data is an
 * InputError (its stages would resume work done for the other, and training would refuse the new dataset).
 */
async function claimDemoWorkdir(workdir: string, options: DemoOptions): Promise<void> {
  const file = join(workdir, 'demo.json');
  const wanted: DemoData = { scenes: options.scenes, products: options.products, seed: options.seed };
  const flags = (d: DemoData) => dataFlags(d).join(' ');
  const document = await readJsonIfExists(file, ' (fix or remove the file)'); // none: a new demo, or an older one
  let made: DemoData | null = null;
  if (document !== undefined) {
    const parsed = parseWith(demoDataSchema, document);
    if (parsed.issues) throw new InputError(`${issueLines(file, parsed.issues)} (fix or remove the file)`);
    made = parsed.value;
  }
  if (made && differingPaths(made, wanted).length > 0)
    throw new InputError(
      `the demo in ${workdir} was made with ${flags(made)}: run \`${ctlCommand(['demo'])}\` with those to continue it, ` +
        `or remove ${workdir} (or give another --workdir) to make one with ${flags(wanted)}`,
    );
  await mkdir(workdir, { recursive: true });
  await writeJsonAtomic(file, wanted);
}

/**
 * Refuse data with an empty part in a split the demo trains or evaluates on: each scene falls into train, val or
 * test by a hash of its signature (80/10/10), so a few scenes can leave one empty, and the demo would fail only
 * after the slow stages. The claim is given up (nothing else is made of this data yet): another --seed may start
 * over in the same folder.
 */
async function checkSplits(workdir: string, options: DemoOptions): Promise<void> {
  const { splits } = await loadDataset(workdir);
  for (const split of [splits.scene, splits.seed])
    for (const [part, pairs] of Object.entries(split.parts))
      if (pairs.length === 0) {
        await rm(join(workdir, 'demo.json'), { force: true });
        throw new InputError(
          `too few scenes for a ${part} split: the ${split.scheme} split of --scenes ${options.scenes} --seed ${options.seed} ` +
            `has no ${part} pairs: try --scenes ${2 * options.scenes} or another --seed`,
        );
      }
}

/** The demo's stages, each a child `ctl` process, then their summary (see the top of the file). */
export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  // A demo's own folder given as the workdir (`ctl serve` takes that one) would get a second demo nested in it.
  if (await pathExists(join(options.workdir, 'demo.json')))
    throw new InputError(
      `--workdir ${options.workdir} is a demo's own folder (it holds demo.json); the demo lives in <workdir>/demo: ` +
        `give its parent, \`${ctlCommand(['demo', '--workdir', dirname(options.workdir)])}\``,
    );
  const workdir = workdirPaths(options.workdir).demo;
  await claimDemoWorkdir(workdir, options);
  const stages = stageRunner(['demo', '--workdir', options.workdir, ...dataFlags(options)]);
  try {
    return await runStages(options, workdir, stages.run);
  } finally {
    stages.release();
  }
}

async function runStages(
  options: DemoOptions,
  workdir: string,
  runStage: <T>(title: string, args: string[]) => Promise<T>,
): Promise<DemoSummary> {
  const started = performance.now();
  const source = join(workdir, 'mirror');
  const w = ['--workdir', workdir];
  const stages: Partial<StageReports> = {};
  const seconds: Record<string, number> = {};
  const timed = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    const result = await work();
    seconds[name] = Math.round((performance.now() - t) / 100) / 10;
    return result;
  };

  const synth = ['data', 'synth', ...dataFlags(options)];
  // The demo's own dataset first (cheap): its splits are checked before anything slow runs. The same seed gives
  // the same world in the mirror: the demo's own dataset is marked synthetic, so no table calls it STL.
  stages.synth = await timed('synth', () =>
    runStage('write a synthetic STL-shaped dataset into the demo workdir, without images', [...synth, ...w]),
  );
  await checkSplits(workdir, options);
  stages.mirror = await timed('paint', () =>
    runStage('paint the same dataset with images: the stand-in for Pinterest', [
      ...synth,
      '--images',
      '--workdir',
      source,
    ]),
  );
  const mirror = await startMirror(source);
  try {
    log(`\nserving the images at ${mirror.baseUrl} in Pinterest's URL layout`);
    stages.download = await timed('download', () =>
      runStage('download the images', ['download', '--base-url', mirror.baseUrl, '--concurrency', '8', ...w]),
    );
  } finally {
    await mirror.close();
  }
  stages.embed = await timed('embed', () =>
    runStage(`embed products and scenes with the generated '${DEMO_MODEL}' SigLIP-shaped model (random weights)`, [
      'embed',
      '--model',
      DEMO_MODEL,
      '--offline',
      ...w,
    ]),
  );
  stages.zeroShot = await timed('zeroShot', () =>
    runStage('the zero-shot baseline: raw image embeddings, cosine, no training', [
      'eval',
      '--zero-shot',
      '--embeddings',
      DEMO_MODEL,
      '--protocol',
      'catalog',
      ...w,
    ]),
  );
  stages.train = await timed('train', () =>
    // One worker where the wasm engine trains (auto without onnxruntime-node): towers this small train faster
    // than two workers can exchange gradients, and use less CPU.
    runStage('train the towers', [
      'train',
      '--config',
      DEMO_CONFIG,
      '--run',
      DEMO_RUN,
      '--resume',
      '--workers',
      '1',
      ...w,
    ]),
  );
  stages.eval = await timed('eval', () =>
    runStage('evaluate the trained run', ['eval', '--run', DEMO_RUN, '--protocol', 'all', ...w]),
  );

  return demoSummary({
    workdir,
    mirror: source,
    paths: workdirPaths(workdir),
    run: DEMO_RUN,
    model: DEMO_MODEL,
    config: DEMO_CONFIG,
    stages: stages as StageReports,
    seconds: { ...seconds, total: Math.round((performance.now() - started) / 100) / 10 },
  });
}
