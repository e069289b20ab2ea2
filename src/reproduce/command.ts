// `ctl reproduce`: see reproduce.ts.
import { Command, Option } from 'commander';
import { EVAL_SPLITS, type EvalSplit } from '../eval/protocols.js';
import { engineOption } from '../eval/options.js';
import type { EngineName } from '../eval/engines.js';
import { TRAIN_BACKEND_CHOICES, type TrainBackendChoice } from '../train/backend.js';
import { action, exitOnStop, withCommon } from '../util/command.js';
import { log, printJson } from '../util/log.js';
import { embeddingsOption } from '../data/options.js';
import { shippedConfig } from '../train/shipped-configs.js';

/** The reference's v1 and v2 configs as this package ships them, found from wherever ctl runs. */
const REFERENCE_CONFIGS = ['v1', 'v2'].map(shippedConfig);

interface ReproduceCommandOptions {
  configs?: string;
  embeddings?: string;
  split: EvalSplit;
  backend: TrainBackendChoice;
  engine: EngineName;
}

export function registerReproduceCommand(program: Command): void {
  withCommon(
    program
      .command('reproduce')
      .description(
        "train (or reuse) each config's run on the reference's seed split and a twin on the scene split, " +
          'evaluate them (seed; catalog and category), print them beside the reference table',
      )
      .option(
        '--configs <files>',
        "comma-separated training configs (default: the package's configs/v1.json and v2.json)",
      )
      .addOption(
        embeddingsOption("train and evaluate on this embedding model's store instead of the configs' (e.g. synthetic)"),
      )
      .addOption(
        new Option('--split <part>', 'part the catalog and category protocols evaluate (seed: always its val part)')
          .choices(EVAL_SPLITS)
          .default('test'),
      )
      .addOption(
        new Option('--backend <name>', 'training engine, as for `ctl train --backend`')
          .choices(TRAIN_BACKEND_CHOICES)
          .default('auto'),
      )
      .addOption(engineOption()),
  ).action(
    action<ReproduceCommandOptions>(async (o) => {
      // Training and ranking load on use, so `ctl --help` stays quick.
      const { reproduce } = await import('./reproduce.js');
      exitOnStop(
        'ctl reproduce',
        'run the same command again to continue (finished runs are reused, an unfinished one resumes)',
      );
      const result = await reproduce({
        workdir: o.workdir,
        configs:
          o.configs !== undefined
            ? o.configs
                .split(',')
                .map((c) => c.trim())
                .filter(Boolean)
            : REFERENCE_CONFIGS,
        embeddings: o.embeddings,
        split: o.split,
        backend: o.backend,
        engine: o.engine,
      });
      log(['', ...result.lines].join('\n'));
      if (o.json)
        printJson({ data: result.data, runs: result.runs, zeroShot: result.zeroShot, reference: result.reference });
    }),
  );
}
