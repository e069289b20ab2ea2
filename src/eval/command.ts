// `ctl eval`: see evaluate.ts.
import { Command, Option } from 'commander';
import { loadDataset } from '../data/stl/dataset-io.js';
import { SCENE_VIEWS, type SceneView } from '../data/workdir.js';
import type { Domain } from '../data/types.js';
import { action, refuseFlags, withCommon } from '../util/command.js';
import { InputError } from '../util/errors.js';
import { log, printJson } from '../util/log.js';
import type { EngineName } from './engines.js';
import { engineOption } from './options.js';
import type { EvalReport } from './evaluate.js';
import { CHECKPOINT_NAMES, type CheckpointName } from '../model/checkpoint.js';
import type { TowerBackendChoice } from '../model/backend.js';
import { towerBackendOption } from '../model/options.js';
import { EVAL_SPLITS, PROTOCOLS, type EvalSplit, type Protocol } from './protocols.js';
import { formatCategoryTable, formatTable, reportNote } from './table.js';
import { domainOption } from '../data/options.js';

interface EvalOptions {
  run?: string;
  protocol: Protocol | 'all';
  split?: EvalSplit;
  checkpoint: CheckpointName;
  engine: EngineName;
  backend: TowerBackendChoice;
  zeroShot: boolean;
  embeddings?: string;
  sceneView: SceneView;
  domain: Domain;
  perCategory: boolean;
}

const PROTOCOL_HELP = `
Protocols:
  seed      the reference project's: its 90/10 pair split (val part), every val scene scored against every val
            pair's product (n × n, duplicates included), rank of the diagonal. For comparison with its table only:
            it leaks scenes between train and val and counts a scene's other products as negatives.
  catalog   scene-disjoint split; each scene ranks every product of the catalog with its other true products
            removed ("filtered"); every true product is a target.
  category  as catalog, among the products of the target's own category; AUC against those negatives.
Ties count against the model: a product scored equal to the target ranks ahead of it. For seed, the report
also gives the metrics with ties counted behind (the reference's argsort lands between the two).
Reports: <workdir>/runs/<run>/eval/<protocol>-<split>.json, <protocol>-<split>-last.json for --checkpoint last
(zero-shot: <workdir>/eval/zero-shot/<model>/<scene view>/).`;

export function registerEvalCommand(program: Command): void {
  withCommon(
    program
      .command('eval')
      .description('metrics of a run (or of the raw embeddings): R@1/5/10/50, MRR, median/mean rank, AUC, per category')
      .option('--run <name>', 'run under <workdir>/runs/ to evaluate')
      .addOption(
        new Option('--protocol <name>', "seed (the reference's), catalog (full catalog, filtered), category, or all")
          .choices([...PROTOCOLS, 'all'])
          .default('catalog'),
      )
      .addOption(
        new Option(
          '--split <part>',
          'part of the split evaluated (default: test; val for seed, which has no test part, so with --protocol all seed is on val)',
        ).choices(EVAL_SPLITS),
      )
      .addOption(new Option('--checkpoint <which>', 'checkpoint of the run').choices(CHECKPOINT_NAMES).default('best'))
      .addOption(engineOption())
      .addOption(towerBackendOption())
      .option('--zero-shot', 'evaluate the raw image embeddings (cosine, no model) instead of a run', false)
      .option('--embeddings <model>', 'with --zero-shot: the embedding model whose store to read (e.g. synthetic)')
      .addOption(
        new Option(
          '--scene-view <view>',
          'with --zero-shot: scene embeddings of the whole scene or with the product hidden',
        )
          .choices(SCENE_VIEWS)
          .default('full'),
      )
      .addOption(domainOption('with --zero-shot: STL domain'))
      .option('--per-category', 'also print the per-category table', false)
      .addHelpText('after', PROTOCOL_HELP),
  ).action(
    action<EvalOptions>(async (o, cmd) => {
      // The ranking engines load on use, so `ctl --help` stays quick.
      const { defaultSplit, evaluateRun, evaluateZeroShot } = await import('./evaluate.js');
      const protocols = o.protocol === 'all' ? PROTOCOLS : [o.protocol];
      // Asked for every protocol, seed is scored on the only part it has; asked for alone, a wrong part is an error.
      const splitOf = (protocol: Protocol) =>
        o.protocol === 'all' && protocol === 'seed' ? defaultSplit(protocol) : (o.split ?? defaultSplit(protocol));
      const requests = protocols.map((protocol) => ({ protocol, split: splitOf(protocol) }));
      let reports: EvalReport[];
      if (o.zeroShot) {
        if (o.run) throw new InputError('--zero-shot evaluates raw embeddings: drop --run');
        refuseFlags(cmd, ['checkpoint', 'backend'], '--run');
        if (!o.embeddings)
          throw new InputError('--zero-shot needs --embeddings MODEL (the store to read, e.g. synthetic)');
        const dataset = await loadDataset(o.workdir, o.domain);
        reports = await evaluateZeroShot(o.workdir, dataset, o.embeddings, o.sceneView, requests, o.engine);
      } else {
        if (!o.run) throw new InputError('--run NAME is required (or --zero-shot --embeddings MODEL)');
        refuseFlags(cmd, ['embeddings', 'sceneView', 'domain'], '--zero-shot'); // a run knows what it trained on
        reports = await evaluateRun(o.workdir, o.run, o.checkpoint, requests, o.engine, o.backend);
      }
      const first = reports[0];
      log(
        `\n${o.zeroShot ? `zero-shot '${first.data.embeddings}'` : `run ${o.run} (${o.checkpoint} checkpoint, epoch ${first.checkpoint?.epoch}, towers on ${first.backend})`}, ` +
          `${first.data.source === 'stl' ? `STL-${first.data.domain}` : 'SYNTHETIC data'}, ${first.data.sceneView} scenes`,
      );
      log(
        formatTable(
          reports.map((r) => ({
            label: `${r.protocol} (${r.split.scheme}/${r.split.part})`,
            metrics: r.metrics,
            note: reportNote(r),
          })),
        ).join('\n'),
      );
      for (const r of reports) {
        if (r.pairs.missingEmbeddings > 0)
          log(`${r.protocol}: ${r.pairs.missingEmbeddings} of ${r.pairs.asked} pairs skipped (no embedding)`);
        if (o.perCategory) log(`\n${r.protocol} per category\n${formatCategoryTable(r.metrics).join('\n')}`);
      }
      if (o.json) printJson(reports);
    }),
  );
}
