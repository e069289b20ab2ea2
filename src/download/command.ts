import { Command } from 'commander';
import { notBuiltYet, withCommon } from '../util/command.js';

export function registerDownloadCommand(program: Command): void {
  notBuiltYet(withCommon(program.command('download').description('fetch scene and product images by signature, resumable')));
}
