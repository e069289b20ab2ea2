// `ctl data ...`: metadata, splits, synthetic data, embedding-store checks.
import { Command, InvalidArgumentError } from 'commander';
import type { Domain, SplitPart, SplitScheme } from './types.js';
import { formatReport, loadDataset } from './stl/dataset-io.js';
import { STL_BASE_URL } from './stl/sources.js';
import { computeStats, formatStats } from './stl/stats.js';
import { registerVerifyEmbeddingsCommand } from './store/command.js';
import { registerSynthCommand } from './synth/command.js';
import { action, parseHttpUrl, parseIntOption, parsePositive, withCommon } from '../util/command.js';
import { log, printJson } from '../util/log.js';
import { domainOption } from './options.js';

/** Registers `ctl data` and its subcommands; returns it so commands of later stages can join (`ctl data merge`). */
export function registerDataCommands(program: Command): Command {
  const data = program
    .command('data')
    .description('STL metadata: fetch, synthesise, inspect, list pairs, verify and merge stores');
  registerFetch(data);
  registerStats(data);
  registerPairs(data);
  registerSynthCommand(data);
  registerVerifyEmbeddingsCommand(data);
  return data;
}

function registerFetch(data: Command): void {
  const cmd = data
    .command('fetch')
    .description('download the STL metadata files, validate, normalise into workdir/dataset/')
    .addOption(domainOption())
    .option(
      '--base-url <url>',
      'where <domain>.json and <domain>-cat.json are served',
      parseHttpUrl('--base-url'),
      STL_BASE_URL,
    )
    .option('--strict', 'stop at the first bad row (exit 2) instead of skipping it', false)
    .option('--force', 'download and normalise again even when everything is in place', false)
    .option('--timeout <seconds>', 'connect, headers and between-chunk timeout', parsePositive('--timeout', 86_400), 60)
    .option(
      '--retries <n>',
      'extra attempts after a transient failure (network, 5xx, truncated body)',
      parseIntOption('--retries'),
      3,
    );
  withCommon(cmd).action(
    action<{ domain: Domain; baseUrl: string; strict: boolean; force: boolean; timeout: number; retries: number }>(
      async (o) => {
        const { fetchDomain } = await import('./stl/fetch.js');
        const result = await fetchDomain(o.workdir, {
          domain: o.domain,
          baseUrl: o.baseUrl,
          strict: o.strict,
          force: o.force,
          timeoutS: o.timeout,
          retries: o.retries,
        });
        if (result.report) for (const line of formatReport(result.report)) log(line);
        const d = result.dataset;
        log(
          `${result.status}: ${d.pairs.length} pairs, ${d.scenes.length} scenes, ${d.products.length} products, ` +
            `${d.categories.length} categories → ${result.datasetPath}`,
        );
        if (o.json)
          printJson({
            status: result.status,
            domain: d.domain,
            dataset: result.datasetPath,
            files: result.manifest.files,
            counts: {
              pairs: d.pairs.length,
              scenes: d.scenes.length,
              products: d.products.length,
              categories: d.categories.length,
            },
            skipped: d.skipped,
            examples: result.report ? [...result.report.categories.examples, ...result.report.pairs.examples] : [],
          });
      },
    ),
  );
}

function registerStats(data: Command): void {
  const cmd = data
    .command('stats')
    .description('counts, category histogram, products per scene, bbox sanity, skipped rows, split sizes')
    .addOption(domainOption());
  withCommon(cmd).action(
    action<{ domain: Domain }>(async (o) => {
      const stats = computeStats(await loadDataset(o.workdir, o.domain));
      if (o.json) printJson(stats);
      else for (const line of formatStats(stats)) log(line);
    }),
  );
}

const SPLIT_CHOICES = ['seed:train', 'seed:val', 'scene:train', 'scene:val', 'scene:test'];

function parseSplit(value: string): { scheme: SplitScheme; part: SplitPart } {
  if (!SPLIT_CHOICES.includes(value)) throw new InvalidArgumentError(`expected one of ${SPLIT_CHOICES.join(', ')}`);
  const [scheme, part] = value.split(':') as [SplitScheme, SplitPart];
  return { scheme, part };
}

function registerPairs(data: Command): void {
  const cmd = data
    .command('pairs')
    .description("print a split's pairs as JSON lines (the released objects, in the order the reference sees them)")
    .requiredOption('--split <scheme:part>', `which pairs: ${SPLIT_CHOICES.join(' | ')}`, parseSplit)
    .addOption(domainOption());
  withCommon(cmd, { json: false }).action(
    action<{ split: { scheme: SplitScheme; part: SplitPart }; domain: Domain }>(async (o) => {
      const dataset = await loadDataset(o.workdir, o.domain);
      const indices = dataset.splits[o.split.scheme].parts[o.split.part] ?? [];
      const lines: string[] = [];
      for (const i of indices) {
        const { product, scene, bbox } = dataset.pairs[i]!;
        lines.push(JSON.stringify({ product, scene, bbox }));
        if (lines.length === 10_000) await writeOut(lines.splice(0).join('\n') + '\n');
      }
      if (lines.length) await writeOut(lines.join('\n') + '\n');
      log(`${indices.length} pairs (${o.split.scheme}:${o.split.part}, ${dataset.source})`);
    }),
  );
}

/** Write to stdout, waiting for the pipe to drain. */
function writeOut(text: string): Promise<void> {
  return new Promise((resolve) => {
    if (process.stdout.write(text)) resolve();
    else process.stdout.once('drain', resolve);
  });
}
