// What `ctl demo` says at the end, built from the JSON reports of its stages: what the data and the embeddings
// are (generated, random weights: said plainly), the zero-shot baseline beside the trained run under the catalog
// protocol on the test part, what each stage did in this run (a resumed demo does no work twice), where the files
// are and what to run next.
import { basename, dirname } from 'node:path';
import type { DownloadSummary } from '../download/downloader.js';
import type { EmbedSummary } from '../embed/run.js';
import type { EvalReport } from '../eval/evaluate.js';
import { percent } from '../eval/table.js';
import type { TrainRunResult } from '../train/run.js';
import { formatDuration } from '../util/log.js';
import { runPaths, type WorkdirPaths } from '../data/workdir.js';
import { ctlCommand } from '../util/shell.js';

/** The part of `ctl data synth --json` the summary reads. */
interface SynthReport {
  dataset: string;
  counts: { pairs: number; scenes: number; products: number; categories: number; styles: number };
  images?: { written: number; skipped: number; bytes: number };
}

export interface StageReports {
  mirror: SynthReport;
  synth: SynthReport;
  download: DownloadSummary;
  embed: EmbedSummary;
  zeroShot: EvalReport[];
  train: TrainRunResult;
  eval: EvalReport[];
}

export interface DemoInput {
  workdir: string;
  /** The synthetic workdir the stand-in image host served. */
  mirror: string;
  paths: WorkdirPaths;
  run: string;
  model: string;
  config: string;
  stages: StageReports;
  seconds: Record<string, number>;
}

/** One protocol's headline numbers. */
interface Headline {
  protocol: string;
  split: string;
  queries: number;
  recall: Record<string, number>;
  mrr: number;
  medianRank: number;
}

const headline = (r: EvalReport): Headline => ({
  protocol: r.protocol,
  split: `${r.split.scheme}/${r.split.part}`,
  queries: r.metrics.queries,
  recall: r.metrics.recall,
  mrr: r.metrics.mrr,
  medianRank: r.metrics.medianRank,
});

export type DemoSummary = ReturnType<typeof demoSummary>;

export function demoSummary(input: DemoInput) {
  const { workdir, paths, run, model, stages } = input;
  const zeroShot = stages.zeroShot.find((r) => r.protocol === 'catalog');
  const trained = stages.eval.find((r) => r.protocol === 'catalog');
  if (!zeroShot || !trained) throw new Error('demo: the catalog protocol is missing from the eval reports');
  const runDir = paths.run(run);
  return {
    data: {
      source: 'synthetic' as const,
      generator: 'ctl data synth: planted latent styles, painted images; no real STL data',
      ...stages.synth.counts,
    },
    embeddings: {
      model,
      weights: 'random (a generated SigLIP-shaped model); a real run uses Marqo/marqo-fashionSigLIP on the STL images',
    },
    catalog: {
      split: `${trained.split.scheme}/${trained.split.part}`,
      queries: trained.metrics.queries,
      candidates: trained.metrics.candidates ?? stages.synth.counts.products,
      zeroShot: headline(zeroShot),
      trained: { ...headline(trained), epoch: trained.checkpoint?.epoch ?? stages.train.best.epoch },
    },
    eval: { zeroShot: stages.zeroShot.map(headline), trained: stages.eval.map(headline) },
    /** What each stage did in this run: all zeros but the cheap dataset rewrite when a finished demo runs again. */
    work: {
      imagesPainted: stages.mirror.images?.written ?? 0,
      imagesDownloaded: stages.download.results.ok,
      rowsEmbedded: stages.embed.embedded,
      train: { epochs: stages.train.epochs, bestEpoch: stages.train.best.epoch },
    },
    files: {
      workdir,
      dataset: stages.synth.dataset,
      images: paths.imagesDir,
      embeddings: dirname(paths.embeddings(model, 'products')),
      run: runDir,
      evalReports: runPaths(runDir).evalDir,
      zeroShotReports: paths.zeroShotReports(model, 'full'),
      mirror: input.mirror,
      config: input.config,
    },
    next: [
      {
        command: ctlCommand(['eval', '--run', run, '--workdir', workdir, '--protocol', 'all', '--per-category']),
        why: 'every protocol of the trained run, per category',
      },
      {
        command: ctlCommand(['data', 'stats', '--workdir', workdir]),
        why: 'what the generated dataset holds',
      },
      {
        command: ctlCommand(['train', '--config', input.config, '--run', `${run}-2`, '--workdir', workdir]),
        why: 'train again after editing the config (a new run name; --resume continues one)',
      },
    ],
    seconds: input.seconds,
  };
}

/** The summary as lines of text for stderr. */
export function formatSummary(s: DemoSummary): string[] {
  const { catalog: c } = s;
  const row = (label: string, h: Headline) =>
    `  ${label.padEnd(24)} ${percent(h.recall['10']).padStart(6)}  ${h.mrr.toFixed(3).padStart(6)}  ${String(h.medianRank).padStart(7)}`;
  const gain = c.zeroShot.recall['10'] > 0 ? c.trained.recall['10'] / c.zeroShot.recall['10'] : Infinity;
  const verdict =
    c.trained.recall['10'] > c.zeroShot.recall['10']
      ? `the trained towers put a true product in the top 10 ${Number.isFinite(gain) ? `${gain.toFixed(1)}× as often as` : 'where'} the raw embeddings ${Number.isFinite(gain) ? 'do' : 'never do'}`
      : 'the trained towers do not beat the raw embeddings here: too few pairs to learn from? (the defaults are --scenes 2000 --products 600)';
  const w = s.work;
  const files = Object.entries(s.files).map(([k, v]) => `  ${k.padEnd(16)} ${v}`);
  return [
    `== demo summary (${formatDuration(s.seconds.total)})`,
    `data        SYNTHETIC, from ctl data synth: ${s.data.scenes} scenes, ${s.data.products} products, ${s.data.pairs} pairs, ` +
      `${s.data.styles} latent styles planted in the painted images`,
    `embeddings  '${s.embeddings.model}', a generated SigLIP-shaped model with RANDOM weights; a real run embeds the STL images ` +
      `with Marqo/marqo-fashionSigLIP`,
    `this run    painted ${w.imagesPainted} images, downloaded ${w.imagesDownloaded}, embedded ${w.rowsEmbedded}; ` +
      `run '${basename(s.files.run)}' has ${w.train.epochs} epochs, best ${w.train.bestEpoch}`,
    '',
    `catalog protocol, test scenes (${c.split}): ${c.queries} queries, each ranks all ${c.candidates} products`,
    `  ${''.padEnd(24)} ${'R@10'.padStart(6)}  ${'MRR'.padStart(6)}  ${'median'.padStart(7)}`,
    row('zero-shot (cosine)', c.zeroShot),
    row(`trained (epoch ${c.trained.epoch})`, c.trained),
    `  ${verdict}`,
    '',
    'files',
    ...files,
    '',
    'next',
    ...s.next.map((n) => `  ${n.command}\n      ${n.why}`),
  ];
}
