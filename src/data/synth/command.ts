// `ctl data synth` and `ctl data verify-embeddings`.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import type { Domain } from '../types.js';
import { EmbeddingStore } from '../store/embeddings.js';
import type { ImageFormat } from './images.js';
import { action, parseIntOption, refuseFlags, withCommon } from '../../util/command.js';
import { InputError, RunError } from '../../util/errors.js';
import { formatBytes, log, printJson } from '../../util/log.js';
import { EMBEDDING_VIEWS, modelSlug, workdirPaths, type EmbeddingView } from '../workdir.js';
import { domainOption, MAX_GENERATED } from '../options.js';

export function registerSynthCommands(data: Command): void {
  registerSynth(data);
  registerVerifyEmbeddings(data);
}

interface SynthFlags {
  scenes: number;
  products: number;
  seed: number;
  domain: Domain;
  dim?: number;
  images: boolean;
  format: ImageFormat;
  force: boolean;
}

function registerSynth(data: Command): void {
  const cmd = data
    .command('synth')
    .description('write an STL-shaped synthetic dataset with planted structure (raw files + normalised dataset)')
    .option('--scenes <n>', 'scenes to generate', parseIntOption('--scenes', 1, MAX_GENERATED), 30_000)
    .option(
      '--products <n>',
      'products to generate (those that find no scene slot are left out)',
      parseIntOption('--products', 1, MAX_GENERATED),
      38_000,
    )
    .option('--seed <n>', 'generator seed: same seed and sizes, same files byte for byte', parseIntOption('--seed'), 42)
    .addOption(domainOption('taxonomy to imitate'))
    .option(
      '--dim <d>',
      'also write precomputed embeddings of this dimension (model id "synthetic"); default: none',
      parseIntOption('--dim', 2, 4096),
    )
    .option('--images', 'also paint product and scene images into workdir/images/', false)
    .addOption(
      new Option('--format <format>', 'image encoding (files keep the .jpg names of the layout)')
        .choices(['jpeg', 'png'])
        .default('jpeg'),
    )
    .option('--force', 'replace STL files that `ctl data fetch` put in this workdir', false);
  withCommon(cmd).action(
    action<SynthFlags>(async (o, cmd) => {
      if (!o.images) refuseFlags(cmd, ['format'], '--images');
      const { synthesise } = await import('./world.js'); // loads sharp: only when used
      const r = await synthesise(o.workdir, {
        scenes: o.scenes,
        products: o.products,
        seed: o.seed,
        domain: o.domain,
        dim: o.dim,
        images: o.images,
        format: o.format,
        force: o.force,
      });
      const d = r.dataset;
      log(
        `synthetic ${d.domain} (seed ${o.seed}): ${d.pairs.length} pairs, ${d.scenes.length} scenes, ${d.products.length} products, ` +
          `${d.categories.length} categories, ${r.world.styles} latent styles → ${r.datasetPath} (${r.seconds.dataset}s)`,
      );
      for (const e of r.embeddings ?? [])
        log(
          `embeddings ${e.view}: ${e.rows} rows of dim ${o.dim}${e.appended ? `, ${e.appended} written` : ', already there'} → ${e.dir}`,
        );
      if (r.images)
        log(
          `images: ${r.images.written} written (${formatBytes(r.images.bytes)}), ${r.images.skipped} already there → ${workdirPaths(o.workdir).imagesDir}`,
        );
      if (o.json)
        printJson({
          domain: d.domain,
          source: d.source,
          seed: o.seed,
          dataset: r.datasetPath,
          files: r.files,
          counts: {
            pairs: d.pairs.length,
            scenes: d.scenes.length,
            products: d.products.length,
            categories: d.categories.length,
            styles: r.world.styles,
          },
          embeddings: r.embeddings && { model: 'synthetic', dim: o.dim, views: r.embeddings },
          images: r.images && { format: o.format, ...r.images },
          seconds: r.seconds,
        });
    }),
  );
}

interface StoreCheck {
  dir: string;
  model: string;
  view: string;
  ok: boolean;
  count: number;
  dim: number;
  problems: string[];
}

function registerVerifyEmbeddings(data: Command): void {
  const cmd = data
    .command('verify-embeddings')
    .description('check embedding stores: dims agree, ids unique, no NaN/Inf (exit 1 when one is bad)')
    .option('--model <id>', 'only the stores of this model id (default: every model in the workdir)')
    .addOption(new Option('--view <view>', 'only this view (default: every view)').choices(EMBEDDING_VIEWS));
  withCommon(cmd).action(
    action<{ model?: string; view?: EmbeddingView }>(async (o) => {
      const root = join(o.workdir, 'embeddings');
      const models = o.model ? [modelSlug(o.model)] : await subfolders(root);
      const dirs: string[] = [];
      for (const model of models) {
        const views = o.view ? [o.view] : await subfolders(join(root, model));
        for (const view of views) dirs.push(join(root, model, view));
      }
      if (dirs.length === 0)
        throw new InputError(
          `no embedding stores under ${root}${o.model ? ` for model ${o.model}` : ''} (run \`ctl embed\` or \`ctl data synth --dim D\`)`,
        );
      const checks: StoreCheck[] = [];
      for (const dir of dirs) checks.push(await checkStore(dir));
      for (const c of checks) {
        log(`${c.ok ? 'ok ' : 'BAD'} ${c.model} ${c.view}: ${c.count} rows of dim ${c.dim}`);
        for (const p of c.problems.slice(0, 10)) log(`    ${p}`);
        if (c.problems.length > 10) log(`    ... and ${c.problems.length - 10} more`);
      }
      const ok = checks.every((c) => c.ok);
      if (o.json) printJson({ ok, stores: checks });
      if (!ok)
        throw new RunError(`${checks.filter((c) => !c.ok).length} of ${checks.length} embedding stores have problems`);
    }),
  );
}

async function checkStore(dir: string): Promise<StoreCheck> {
  const [model, view] = dir.split(/[\\/]/).slice(-2);
  try {
    const store = await EmbeddingStore.open(dir);
    const result = await store.verify();
    return { dir, model: store.meta.model, view, ...result };
  } catch (err) {
    return { dir, model, view, ok: false, count: 0, dim: 0, problems: [(err as Error).message] };
  }
}

async function subfolders(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true }))
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}
