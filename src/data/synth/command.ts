// `ctl data synth`.
import { Command, Option } from 'commander';
import type { Domain } from '../types.js';
import { SYNTH_IMAGE_FORMATS, type SynthImageFormat } from '../image-format.js';
import { action, parseIntOption, refuseFlags, withCommon } from '../../util/command.js';
import { formatBytes, log, printJson } from '../../util/log.js';
import { SYNTH_MODEL, workdirPaths } from '../workdir.js';
import { domainOption, MAX_GENERATED } from '../options.js';

interface SynthFlags {
  scenes: number;
  products: number;
  seed: number;
  domain: Domain;
  dim?: number;
  images: boolean;
  format: SynthImageFormat;
  force: boolean;
}

export function registerSynthCommand(data: Command): void {
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
      `also write precomputed embeddings of this dimension (model id "${SYNTH_MODEL}"); default: none`,
      parseIntOption('--dim', 2, 4096),
    )
    .option('--images', 'also paint product and scene images into workdir/images/', false)
    .addOption(
      new Option('--format <format>', 'image encoding (files keep the .jpg names of the layout)')
        .choices(SYNTH_IMAGE_FORMATS)
        .default('jpeg'),
    )
    .option('--force', 'replace STL files that `ctl data fetch` put in this workdir', false);
  withCommon(cmd).action(
    action<SynthFlags>(async (o, cmd) => {
      if (!o.images) refuseFlags(cmd, ['format'], '--images');
      const { synthesise } = await import('./run.js'); // loads sharp: only when used
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
          embeddings: r.embeddings && { model: SYNTH_MODEL, dim: o.dim, views: r.embeddings },
          images: r.images && { format: o.format, ...r.images },
          seconds: r.seconds,
        });
    }),
  );
}
