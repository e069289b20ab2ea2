import { Command } from 'commander';
import { notBuiltYet, withCommon } from '../util/command.js';

export function registerTrainCommand(program: Command): void {
  notBuiltYet(withCommon(program.command('train').description('train the scene and product towers, checkpoint every epoch')));
}
