// `ctl export`: see export.ts.
import { Command, Option } from 'commander';
import { CHECKPOINT_NAMES, type CheckpointName } from '../model/checkpoint.js';
import type { TowerBackendChoice } from '../model/backend.js';
import { towerBackendOption } from '../model/options.js';
import { action, withCommon } from '../util/command.js';
import { InputError } from '../util/errors.js';
import { formatBytes, log, printJson } from '../util/log.js';
import { EXPORT_FORMATS, type ExportFormat } from './formats.js';

interface ExportFlags {
  run?: string;
  checkpoint: CheckpointName;
  format: ExportFormat | 'all';
  out?: string;
  withOptimizer: boolean;
  backend: TowerBackendChoice;
}

export function registerExportCommand(program: Command): void {
  withCommon(
    program
      .command('export')
      .description(
        "a run's checkpoint as portable files: the reference's state_dict (safetensors + config.json), its " +
          'torch.save checkpoint dict (pt), both towers as ONNX, the product index (.npy + .jsonl) and ' +
          'model-card.md; each format is checked when written',
      )
      .option('--run <name>', 'run under <workdir>/runs/ to export')
      .addOption(new Option('--checkpoint <which>', 'checkpoint of the run').choices(CHECKPOINT_NAMES).default('best'))
      .addOption(
        new Option('--format <format>', 'what to write besides the index and card')
          .choices([...EXPORT_FORMATS, 'all'])
          .default('all'),
      )
      .option('--out <dir>', 'folder to write (replaced whole; default: checkpoints/<run>)')
      .option(
        '--with-optimizer',
        "pt: add Adam's state as optimizer_state_dict, to resume training in PyTorch (needs --checkpoint last)",
        false,
      )
      .addOption(towerBackendOption()),
  ).action(
    action<ExportFlags>(async (o) => {
      if (!o.run) throw new InputError('--run NAME is required');
      const { exportRun } = await import('./export.js');
      const summary = await exportRun({
        workdir: o.workdir,
        run: o.run,
        checkpoint: o.checkpoint,
        formats: o.format === 'all' ? EXPORT_FORMATS : [o.format],
        out: o.out,
        withOptimizer: o.withOptimizer,
        backend: o.backend,
      });
      log(
        `export ${o.run} (${o.checkpoint} checkpoint, epoch ${summary.checkpoint.epoch}) → ${summary.out}\n` +
          summary.files.map((f) => `  ${f.name.padEnd(22)} ${formatBytes(f.bytes)}`).join('\n') +
          `\nproduct index: ${summary.index.rows} products` +
          (summary.index.skipped ? ` (${summary.index.skipped} without an embedding left out)` : '') +
          (summary.onnxDifference
            ? `\nONNX checked against tfjs: max abs difference ${summary.onnxDifference.scene.toExponential(1)} (scene), ${summary.onnxDifference.product.toExponential(1)} (product)`
            : ''),
      );
      if (o.json) printJson(summary);
    }),
  );
}
