import { Command } from 'commander';
import { notBuiltYet, withCommon } from '../util/command.js';

export function registerServeCommand(program: Command): void {
  notBuiltYet(
    withCommon(program.command('serve').description('web demo and JSON API over a trained run'), { json: false }),
  );
}
