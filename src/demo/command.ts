// `ctl demo`: the pipeline on generated data (run.ts), its summary, and with --serve the trained run served.
import { Command } from 'commander';
import { MAX_GENERATED } from '../data/options.js';
import { action, parseIntOption, refuseFlags, withCommon } from '../util/command.js';
import { log, printJson } from '../util/log.js';
import { DEMO_RUN, runDemo, type DemoOptions } from './run.js';
import { formatSummary } from './summary.js';
import { ctlCommand } from '../util/shell.js';

/**
 * Fewer scenes leave a part of the 80/10/10 scene split empty for many seeds (about 1 in 4 at 20, 1 in 150 at 50);
 * the demo refuses those seeds after its first stage.
 */
const MIN_SCENES = 50;

export function registerDemoCommand(program: Command): void {
  const cmd = program
    .command('demo')
    .description(
      'the whole pipeline on a generated dataset, end to end, in under a minute on 2 cores: synth → download → embed → ' +
        'zero-shot baseline → train → eval, then a summary (writes <workdir>/demo/; a second run resumes, finished stages are not redone)',
    )
    .option('--scenes <n>', 'generated scenes', parseIntOption('--scenes', MIN_SCENES, MAX_GENERATED), 2000)
    .option(
      '--products <n>',
      'generated products (about √n latent styles)',
      parseIntOption('--products', 20, MAX_GENERATED),
      600,
    )
    .option('--seed <n>', 'seed of the generated data', parseIntOption('--seed'), 7)
    .option('--serve', 'end by serving the trained run (`ctl serve`) on 127.0.0.1 until Ctrl-C', false)
    .option('--port <n>', 'port for --serve (0 = any free port)', parseIntOption('--port', 0, 65_535), 8000);
  withCommon(cmd, { workdirHelp: 'the demo lives in <workdir>/demo' }).action(
    action<DemoOptions & { serve: boolean; port: number }>(async (options, cmd) => {
      if (!options.serve) refuseFlags(cmd, ['port'], '--serve');
      const summary = await runDemo(options);
      log(`\n${formatSummary(summary).join('\n')}`);
      if (options.json) printJson(summary);
      if (options.serve) {
        const { serveUntilSignal, startServer } = await import('../serve/run.js'); // loads tfjs and fastify
        const workdir = summary.files.workdir;
        log(`\n== serve the trained run: ${ctlCommand(['serve', '--run', DEMO_RUN, '--workdir', workdir])}`);
        const server = await startServer({
          workdir,
          run: DEMO_RUN,
          port: options.port,
          host: '127.0.0.1',
          queue: 128,
          backend: 'auto',
          device: 'cpu',
        });
        await serveUntilSignal(server);
      }
    }),
  );
}
