// `ctl demo`: the whole pipeline on a generated dataset, end to end, through the same commands a user runs on
// the real one: synthesise STL-shaped metadata and images, serve the images on 127.0.0.1 as Pinterest's host
// would, download them, embed them with the generated tiny SigLIP, train, evaluate.
// Each stage is a child `ctl` process, so the demo is also a check that the stages fit together; each is
// resumable, so a demo killed at any moment continues where it stopped when run again.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { action, parseIntOption, withCommon } from '../util/command.js';
import { RunError } from '../util/errors.js';
import { formatDuration, log, printJson } from '../util/log.js';
import { startMirror } from './mirror.js';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));
const DEMO_CONFIG = fileURLToPath(new URL('../../configs/demo.json', import.meta.url));

interface DemoOptions {
  scenes: number;
  products: number;
  seed: number;
}

/** Run one `ctl` stage as a child process; its human output streams through, a failure stops the demo. */
function runStage(title: string, args: string[], json: boolean): Promise<void> {
  log(`\n== ${title}: ctl ${args.join(' ')}`);
  return new Promise((resolve, reject) => {
    // With --json the demo's stdout is its own summary, so the stages' stdout goes to stderr.
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', json ? process.stderr : 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new RunError(`${title} failed (${signal ?? `exit ${code}`}); fix what it says and run \`ctl demo\` again to continue`));
    });
  });
}

export function registerDemoCommand(program: Command): void {
  const cmd = program
    .command('demo')
    .description(
      'the whole pipeline on a generated dataset, end to end, in minutes on 2 cores: synth → download → embed → train → eval (writes <workdir>/demo/)',
    )
    .option('--scenes <n>', 'generated scenes', parseIntOption('--scenes', 20), 600)
    .option('--products <n>', 'generated products', parseIntOption('--products', 20), 900)
    .option('--seed <n>', 'seed of the generated data and of training', parseIntOption('--seed'), 7);
  withCommon(cmd).action(
    action<DemoOptions>(async (options) => {
      const started = performance.now();
      const workdir = join(options.workdir, 'demo');
      const source = join(workdir, 'mirror');
      const w = ['--workdir', workdir];
      const json = options.json;
      const synth = ['data', 'synth', '--scenes', String(options.scenes), '--products', String(options.products), '--seed', String(options.seed)];
      await runStage('paint a synthetic STL-shaped dataset with images: the stand-in for Pinterest', [...synth, '--images', '--workdir', source], json);
      // The same seed gives the same world: the demo's own dataset is marked synthetic, so no table calls it STL.
      await runStage('write the same dataset into the demo workdir, without images', [...synth, ...w], json);
      const mirror = await startMirror(source);
      try {
        log(`\nserving the images at ${mirror.baseUrl} in Pinterest's URL layout`);
        await runStage('download the images', ['download', '--base-url', mirror.baseUrl, '--concurrency', '8', ...w], json);
      } finally {
        await mirror.close();
      }
      await runStage('embed products and scenes with the generated tiny SigLIP', ['embed', '--model', 'tiny', '--offline', ...w], json);
      await runStage('train the towers', ['train', '--config', DEMO_CONFIG, '--embeddings', 'tiny', '--run', 'demo', '--resume', ...w], json);
      await runStage('evaluate', ['eval', '--run', 'demo', '--protocol', 'all', ...w], json);
      const seconds = (performance.now() - started) / 1000;
      log(`\ndemo done in ${formatDuration(seconds)}. Everything is in ${workdir}; try \`ctl data stats --workdir ${workdir}\``);
      if (json) printJson({ workdir, run: join(workdir, 'runs', 'demo'), seconds });
    }),
  );
}
