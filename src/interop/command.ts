// `ctl import`: the reference project's artifacts into ctl's workdir.
import { Command, Option } from 'commander';
import { action, withCommon } from '../util/command.js';
import { InputError } from '../util/errors.js';
import { log, printJson } from '../util/log.js';
import type { Domain } from '../data/types.js';
import type { EmbeddingView } from '../data/workdir.js';
import { importEmbeddings } from './import-embeddings.js';

interface ImportFlags {
  embeddings?: string;
  checkpoint?: string;
  kind?: 'scenes' | 'products';
  model?: string;
  view?: EmbeddingView;
  domain: Domain;
}

export function registerImportCommand(program: Command): void {
  withCommon(
    program
      .command('import')
      .description(
        "the reference project's artifacts into the workdir: --embeddings FILE.pkl|FILE.npz (a pickled dict " +
          'signature → float32 vector, or the same as .npz) into workdir/embeddings/<model>/<view>/. Pickles are ' +
          'read without running anything: globals other than numpy arrays are refused.',
      )
      .option('--embeddings <file>', "the reference's embedding file (.pkl or .npz)")
      .option('--checkpoint <file>', "the reference's torch.save checkpoint (.pt)")
      .addOption(new Option('--kind <kind>', 'what the embeddings are of').choices(['scenes', 'products']))
      .option('--model <name>', 'the embedding model the vectors come from (names the store)')
      .addOption(
        new Option(
          '--view <view>',
          'the scene view the vectors are (scene embeddings only; default scenes-full)',
        ).choices(['scenes-full', 'scenes-hide-product']),
      )
      .addOption(new Option('--domain <domain>', 'dataset domain').choices(['fashion', 'home']).default('fashion')),
  ).action(
    action<ImportFlags>(async (flags) => {
      if (flags.checkpoint !== undefined) {
        if (flags.embeddings !== undefined) throw new InputError('give --embeddings or --checkpoint, not both');
        throw new InputError("'import --checkpoint' is not built yet");
      }
      if (flags.embeddings === undefined) throw new InputError('nothing to import: give --embeddings FILE');
      if (!flags.kind) throw new InputError('--embeddings needs --kind scenes|products');
      if (!flags.model) throw new InputError('--embeddings needs --model NAME (the model that made the vectors)');
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
