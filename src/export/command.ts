import { Command } from 'commander';
import { notBuiltYet, withCommon } from '../util/command.js';

export function registerExportCommand(program: Command): void {
  notBuiltYet(
    withCommon(program.command('export').description('portable model (onnx, safetensors, tfjs) and product index')),
  );
}
