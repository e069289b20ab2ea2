// `ctl data merge`: one workdir from the workdirs of a sharded run. It lives above the data and download stages
// (it merges both their outputs) and is registered under `ctl data` by the CLI.
import type { Command } from 'commander';
import { action, withCommon } from '../util/command.js';
import { log, printJson } from '../util/log.js';

export function registerMergeCommand(data: Command): void {
  const cmd = data
    .command('merge')
    .description(
      'merge the workdirs of a sharded run (ctl download/embed --shard I/N) into --workdir: embedding stores, the ' +
        'download manifest and the dataset. Refuses stores whose meta.json differ and rows that differ between ' +
        'shards, naming the first difference; merging again adds nothing. Image files stay in the shard workdirs.',
    )
    .requiredOption('--from <dirs...>', 'the shard workdirs');
  withCommon(cmd).action(
    action<{ from: string[] }>(async (o) => {
      const { mergeWorkdirs } = await import('./run.js');
      const summary = await mergeWorkdirs(o.from, o.workdir);
      for (const s of summary.stores)
        log(
          `${s.store}: ${s.added} rows added from ${s.sources} shard stores (${s.alreadyThere} of their rows ` +
            `were there already, the same bytes); ${s.stored} rows now`,
        );
      if (summary.manifest)
        log(
          `images/manifest.jsonl: ${summary.manifest.images} images, ${summary.manifest.taken} records taken from the shards`,
        );
      for (const d of summary.datasets) log(`${d}: copied`);
      if (summary.stores.length === 0 && !summary.manifest)
        log(`nothing to merge: no embedding store or download manifest in ${o.from.join(', ')}`);
      if (o.json) printJson(summary);
    }),
  );
}
