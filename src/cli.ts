#!/usr/bin/env node
// `ctl`: wires each stage's commands into one program. The commands live with their stage.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { registerDataCommands } from './data/command.js';
import { registerDownloadCommand } from './download/command.js';
import { registerEmbedCommand } from './embed/command.js';
import { registerTrainCommand } from './train/command.js';
import { registerEvalCommand } from './eval/command.js';
import { registerExportCommand } from './export/command.js';
import { registerImportCommand } from './interop/command.js';
import { registerServeCommand } from './serve/command.js';
import { registerReproduceCommand } from './reproduce/command.js';
import { registerDemoCommand } from './demo/command.js';
import { registerMergeCommand } from './merge/command.js';
import { stopWithParent } from './util/command.js';

// onnxruntime-node (1.29 on) sends usage telemetry to Microsoft from Linux and macOS and writes
// /tmp/mat-debug-<pid>.log each process. It reads this when its first session is made; ORT_DISABLE_TELEMETRY=0
// turns it back on.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

// A closed pipe (`ctl data pairs … | head`, `ctl eval --help | head`) is not an error: with no reader of the
// answer there is nothing left to do; with none of the log (stderr), the work goes on unlogged.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});
process.stderr.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

// A stage of `ctl demo` stops when the demo is gone.
stopWithParent();

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command('ctl')
  .description('Complete the look: rank the products that complete an outfit photo (Shop-The-Look), end to end.')
  .version(version)
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerMergeCommand(registerDataCommands(program));
registerDownloadCommand(program);
registerEmbedCommand(program);
registerTrainCommand(program);
registerEvalCommand(program);
registerExportCommand(program);
registerImportCommand(program);
registerServeCommand(program);
registerReproduceCommand(program);
registerDemoCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // Help and version are not errors; every other parse failure is bad usage: exit 2.
  if (err instanceof CommanderError) process.exitCode = err.exitCode === 0 ? 0 : 2;
  else throw err;
}
