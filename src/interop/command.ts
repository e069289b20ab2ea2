// `ctl import`: the reference project's artifacts into ctl's workdir.
import { Command, Option } from 'commander';
import { action, refuseFlags, withCommon } from '../util/command.js';
import { InputError } from '../util/errors.js';
import { log, printJson } from '../util/log.js';
import { IMAGE_KINDS, SPLIT_SCHEMES, type Domain, type ImageKind, type SplitScheme } from '../data/types.js';
import { EMBEDDING_VIEWS, type EmbeddingView } from '../data/workdir.js';
import { domainOption } from '../data/options.js';

interface ImportFlags {
  embeddings?: string;
  checkpoint?: string;
  run?: string;
  kind?: ImageKind;
  model?: string;
  view?: EmbeddingView;
  domain: Domain;
  split: SplitScheme;
}

export function registerImportCommand(program: Command): void {
  withCommon(
    program
      .command('import')
      .description(
        "the reference project's artifacts into the workdir: --embeddings FILE.pkl|FILE.npz (a pickled dict " +
          'signature → float32 vector, or the same as .npz) into workdir/embeddings/<model>/<view>/; ' +
          '--checkpoint FILE.pt into workdir/runs/<run>/, which eval, export and serve use like a trained run. ' +
          'Pickles are read without running anything: an embeddings file may hold only numpy arrays, a checkpoint only ' +
          'torch tensors and plain values; any other global is refused.',
      )
      .option('--embeddings <file>', "the reference's embedding file (.pkl or .npz)")
      .option(
        '--checkpoint <file>',
        "the reference's torch.save checkpoint (.pt: its dict or a bare state_dict, v1 or v2) into a run",
      )
      .option('--run <name>', "with --checkpoint: the run to create (default: the file's name)")
      .addOption(new Option('--kind <kind>', 'what the embeddings are of').choices(IMAGE_KINDS))
      .option(
        '--model <name>',
        'the embedding model the vectors come from (names the store); with --checkpoint, the store the towers read (default: the one of their input dim)',
      )
      .addOption(
        new Option(
          '--view <view>',
          'the scene view the vectors are (scene embeddings only; default scenes-full)',
        ).choices(EMBEDDING_VIEWS.filter((view) => view !== 'products')),
      )
      .addOption(domainOption())
      .addOption(
        new Option(
          '--split <scheme>',
          "with --checkpoint: the split the weights were trained on (seed: the reference's; scene: a ctl run's " +
            'scene-split twin), so eval flags the pairs whose scenes they saw',
        )
          .choices(SPLIT_SCHEMES)
          .default('seed'),
      ),
  ).action(
    action<ImportFlags>(async (flags, cmd) => {
      if (flags.checkpoint !== undefined) {
        if (flags.embeddings !== undefined) throw new InputError('give --embeddings or --checkpoint, not both');
        refuseFlags(cmd, ['kind', 'view'], '--embeddings');
        const { importCheckpoint } = await import('./import-checkpoint.js'); // loads tfjs: only when used
        const summary = await importCheckpoint({
          workdir: flags.workdir,
          file: flags.checkpoint,
          run: flags.run,
          model: flags.model,
          domain: flags.domain,
          split: flags.split,
        });
        if (flags.json) printJson(summary);
        return;
      }
      if (flags.embeddings === undefined)
        throw new InputError('nothing to import: give --checkpoint FILE or --embeddings FILE');
      refuseFlags(cmd, ['run', 'split'], '--checkpoint');
      if (!flags.kind) throw new InputError('--embeddings needs --kind scenes|products');
      if (!flags.model) throw new InputError('--embeddings needs --model NAME (the model that made the vectors)');
      const { importEmbeddings } = await import('./import-embeddings.js');
      const summary = await importEmbeddings({
        workdir: flags.workdir,
        file: flags.embeddings,
        kind: flags.kind,
        model: flags.model,
        view: flags.view,
        domain: flags.domain,
      });
      const unknown =
        summary.notInDataset === null
          ? ' (no dataset to check the signatures against)'
          : `, ${summary.notInDataset} not in the dataset`;
      log(
        `import: ${summary.rows} ${summary.dim}-d vectors from ${summary.file}: ${summary.imported} imported, ` +
          `${summary.alreadyStored} already stored${unknown}; store ${summary.store}`,
      );
      if (flags.json) printJson(summary);
    }),
  );
}
