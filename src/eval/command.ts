import { Command } from 'commander';
import { notBuiltYet, withCommon } from '../util/command.js';

export function registerEvalCommands(program: Command): void {
  notBuiltYet(withCommon(program.command('eval').description('metrics of a run: R@k, MRR, ranks, per category')));
  notBuiltYet(withCommon(program.command('reproduce').description('train and evaluate v1 and v2, print them beside the reference table')));
}
