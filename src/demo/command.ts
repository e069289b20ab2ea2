import { Command } from 'commander';
import { notBuiltYet, withCommon } from '../util/command.js';

export function registerDemoCommand(program: Command): void {
  notBuiltYet(withCommon(program.command('demo').description('the whole pipeline on a generated dataset, end to end, in minutes')));
}
