// `ctl train --config FILE`: see run.ts.
import { Command, Option } from 'commander';
import { action, exitOnStop, parseIntOption, refuseFlags, withCommon } from '../util/command.js';
import { printJson } from '../util/log.js';
import { embeddingsOption } from '../data/options.js';
import { TRAIN_BACKEND_CHOICES, type TrainBackendChoice } from './backend.js';

interface TrainOptions {
  config: string;
  set?: string[];
  backend: TrainBackendChoice;
  resume: boolean;
  run?: string;
  embeddings?: string;
  workers: number | 'auto';
}

const parseWorkers = (value: string): number | 'auto' =>
  value === 'auto' ? 'auto' : parseIntOption("--workers (or 'auto')", 1)(value);

export function registerTrainCommand(program: Command): void {
  withCommon(
    program
      .command('train')
      .description('train the scene and product towers, validate and checkpoint every epoch')
      .requiredOption(
        '--config <file>',
        "training config, e.g. configs/v2.json (configs/README.md lists them all), or a run's runs/NAME/config.json",
      )
      .option(
        '--set <path=value>',
        'override a config field (repeatable): a dotted path, the value as JSON when it parses, else a string; ' +
          "checked like the file and recorded in the run's config (see the examples below)",
        (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
      )
      .addOption(
        new Option(
          '--backend <name>',
          "training engine: ort-cpu = each step as one ONNX graph in onnxruntime-node (native CPU); webgpu = the same graph on onnxruntime's WebGPU provider (a software adapter too, when named); tensorflow, wasm, cpu = TensorFlow.js backends; auto = webgpu on a hardware adapter, else ort-cpu; where onnxruntime-node does not load, tfjs-node-gpu, then tfjs-node if installed, else wasm, else cpu",
        )
          .choices(TRAIN_BACKEND_CHOICES)
          .default('auto'),
      )
      .option(
        '--resume',
        'continue the run from its last checkpoint (refused if the config, --set flags included, or the data changed)',
        false,
      )
      .option(
        '--run <name>',
        "run name under <workdir>/runs/ (default: the config's name, plus the embedding model when --embeddings overrides it; the run itself for a run's config.json)",
      )
      .addOption(embeddingsOption("train on this embedding model's store instead of the config's, e.g. 'synthetic'"))
      .addOption(
        new Option('--workers <n>', 'data-parallel worker threads for the wasm backend; auto = one per core, at most 2')
          .argParser(parseWorkers)
          .default('auto'),
      )
      .addHelpText(
        'after',
        [
          '',
          'Examples:',
          '  ctl train --config configs/demo.json',
          '  ctl train --config configs/v2.json --set epochs=5 --set optimizer.lr=1e-3 --run v2-short',
          "  ctl train --config configs/v2-mined.json --set 'negatives.rankWindow=[2,30]' --set name=v2-window",
          '  ctl train --config configs/v2.json --set epochs=5 --run v2-short --resume   (same --set flags to resume)',
        ].join('\n'),
      ),
  ).action(
    action<TrainOptions>(async (options, cmd) => {
      // Worker threads are the wasm engine's; one (none) is what every engine runs.
      if (typeof options.workers === 'number' && options.workers > 1 && !['wasm', 'auto'].includes(options.backend))
        refuseFlags(cmd, ['workers'], '--backend wasm or auto');
      // Loaded here: it pulls in TensorFlow.js, which other commands should not wait for.
      const { trainRun } = await import('./run.js');
      exitOnStop('ctl train', 'continue from the last checkpoint with the same command and --resume');
      const result = await trainRun({
        workdir: options.workdir,
        config: options.config,
        set: options.set,
        run: options.run,
        backend: options.backend,
        resume: options.resume,
        embeddings: options.embeddings,
        workers: options.workers,
      });
      if (options.json) printJson(result);
    }),
  );
}
