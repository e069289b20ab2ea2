// `ctl data ...`: metadata, splits, synthetic data, embedding-store checks.
import { Command } from 'commander';
import { notBuiltYet, withCommon } from '../util/command.js';
import { registerSynthCommands } from './synth-command.js';

export function registerDataCommands(program: Command): void {
  const data = program.command('data').description('STL metadata: fetch, synthesise, inspect, split');
  notBuiltYet(withCommon(data.command('fetch').description('download the STL metadata files, validate, normalise')));
  notBuiltYet(withCommon(data.command('stats').description('counts, category histogram, pairs per scene, bbox sanity, splits')));
  notBuiltYet(withCommon(data.command('pairs').description("print a split's pairs as JSON lines")));
  registerSynthCommands(data);
}
