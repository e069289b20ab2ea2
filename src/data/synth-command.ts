// `ctl data synth` and `ctl data verify-embeddings`.
import { Command } from 'commander';
import { notBuiltYet, withCommon } from '../util/command.js';

export function registerSynthCommands(data: Command): void {
  notBuiltYet(withCommon(data.command('synth').description('write an STL-shaped synthetic dataset with planted structure')));
  notBuiltYet(withCommon(data.command('verify-embeddings').description('check an embedding store: dims, unique ids, no NaN/Inf')));
}
