// `ctl serve`: see run.ts.
import { Command, Option } from 'commander';
import { towerBackendOption } from '../model/options.js';
import { action, parseIntOption, withCommon } from '../util/command.js';
import type { ServeOptions } from './run.js';

export function registerServeCommand(program: Command): void {
  const cmd = program
    .command('serve')
    .description('web demo, runs dashboard (/runs) and JSON API (/api/...) over a trained run')
    .option('--run <name>', 'run to serve (default: the best catalog R@10 among the workdir runs)')
    .option('--port <n>', 'port (0 = any free port)', parseIntOption('--port', 0, 65_535), 8000)
    .option('--host <host>', 'address to bind: 127.0.0.1 keeps other machines out, 0.0.0.0 lets them in', '127.0.0.1')
    .option(
      '--queue <n>',
      'inference requests that may wait while one runs, before new ones get 429',
      parseIntOption('--queue', 1),
      128,
    )
    .addOption(towerBackendOption())
    .addOption(
      new Option('--device <device>', 'image model device for uploads (cuda: an error when it cannot run)')
        .choices(['auto', 'cpu', 'cuda'])
        .default('cpu'),
    );
  withCommon(cmd, { json: false }).action(
    action<Omit<ServeOptions, 'workdir'>>(async (options) => {
      const { serveUntilSignal, startServer } = await import('./run.js'); // loads tfjs and fastify: only when used
      await serveUntilSignal(await startServer(options));
    }),
  );
}
