import { Command } from 'commander';
import { notBuiltYet, withCommon } from '../util/command.js';

export function registerEmbedCommand(program: Command): void {
  notBuiltYet(withCommon(program.command('embed').description('image embeddings (fashion SigLIP, CPU or CUDA), resumable')));
}
