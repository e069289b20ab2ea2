// `ctl data synth`'s work: the world (world.ts) written in the released raw formats (workdir/stl/<domain>.json +
// <domain>-cat.json) and normalised by the same code path as the real files, so every later stage runs on it
// unchanged; optionally precomputed embeddings (embeddings.ts) and images (images.ts).
import { rm } from 'node:fs/promises';
import type { Dataset } from '../dataset.js';
import type { SynthImageFormat } from '../image-format.js';
import { normaliseWorkdir } from '../stl/dataset-io.js';
import { workdirPaths } from '../workdir.js';
import { writeFileAtomic, writeJsonAtomic } from '../../util/atomic.js';
import { InputError } from '../../util/errors.js';
import { pathExists } from '../../util/fs.js';
import { acquireLock, heldBy } from '../../util/lock.js';
import { log } from '../../util/log.js';
import {
  checkRoomForEmbeddings,
  removeStaleSyntheticStores,
  writeSyntheticEmbeddings,
  type StoreReport,
} from './embeddings.js';
import { writeSyntheticImages, type ImageReport } from './images.js';
import { generateWorld, type SynthWorld, type WorldOptions } from './world.js';

/** Bumped when the generator changes what a seed produces, so stores of an older generator are redone. */
const SYNTH_VERSION = 2;

/** What generated a synthetic dataset: recorded beside its raw files and in its embedding stores. */
function provenanceOf({ scenes, products, seed, domain }: WorldOptions) {
  return { generator: SYNTH_VERSION, domain, seed, scenes, products };
}

/** The pairs file, as released: one `{"product","scene","bbox"}` object per line. */
export function pairsFileText(world: SynthWorld): string {
  const lines = world.pairOrder.map(([t, j]) => {
    const scene = world.scenes[t];
    const item = scene.items[j];
    return JSON.stringify({ product: world.products[item.product].sig, scene: scene.sig, bbox: item.bbox });
  });
  return lines.join('\n') + '\n';
}

/** The category file, as released: one object, signature → full category path. */
export function categoriesFileText(world: SynthWorld): string {
  const entries = world.products.map((p) => [p.sig, world.taxonomy[p.category].path]);
  return JSON.stringify(Object.fromEntries(entries)) + '\n';
}

export interface WrittenDataset {
  world: SynthWorld;
  dataset: Dataset;
  datasetPath: string;
  files: { pairs: string; categories: string };
}

/**
 * Generate the world, write the raw files atomically and normalise them (strictly: a synthetic file with a bad row
 * is a bug). Refuses to overwrite raw files fetched from STL unless `force`.
 */
export async function writeSyntheticDataset(
  workdir: string,
  options: WorldOptions,
  force = false,
): Promise<WrittenDataset> {
  const paths = workdirPaths(workdir);
  const { domain } = options;
  const fetched = await pathExists(paths.fetchManifest(domain));
  if (fetched && !force)
    throw new InputError(
      `${paths.rawPairs(domain)} holds the STL files fetched by \`ctl data fetch\`: use another --workdir, or --force to replace them with synthetic data`,
    );
  log(`generating ${options.scenes} scenes and ${options.products} products (${domain}, seed ${options.seed})`);
  const world = generateWorld(options);
  await writeFileAtomic(paths.rawPairs(domain), pairsFileText(world));
  await writeFileAtomic(paths.rawCategories(domain), categoriesFileText(world));
  if (fetched) await rm(paths.fetchManifest(domain), { force: true });
  await writeJsonAtomic(paths.synthMarker(domain), provenanceOf(options));
  const { dataset, path } = await normaliseWorkdir(workdir, domain, { strict: true, source: 'synthetic' });
  if (world.products.length < options.products)
    log(
      `note: ${options.products - world.products.length} of ${options.products} products found no scene slot and were left out`,
    );
  return {
    world,
    dataset,
    datasetPath: path,
    files: { pairs: paths.rawPairs(domain), categories: paths.rawCategories(domain) },
  };
}

export interface SynthesiseOptions extends WorldOptions {
  /** Write precomputed embeddings of this dimension. */
  dim?: number;
  images?: boolean;
  format?: SynthImageFormat;
  /** Replace raw files fetched from STL. */
  force?: boolean;
}

export interface SynthesiseResult extends WrittenDataset {
  embeddings?: StoreReport[];
  images?: ImageReport;
  seconds: { dataset: number; embeddings?: number; images?: number };
}

/** `ctl data synth`: the dataset, then optionally embeddings and images. Idempotent for the same options. */
export async function synthesise(workdir: string, options: SynthesiseOptions): Promise<SynthesiseResult> {
  if (options.dim !== undefined) await checkRoomForEmbeddings(workdir, options, options.dim);
  // One writer of a domain's data at a time, and no reader meanwhile (loadDataset refuses while this lock is held).
  const lock = await acquireLock(
    workdirPaths(workdir).dataset(options.domain),
    (holder, file) => `another ctl data synth into ${workdir} is running: ${heldBy(holder, file)}`,
  );
  try {
    return await synthesiseLocked(workdir, options);
  } finally {
    await lock.release();
  }
}

async function synthesiseLocked(workdir: string, options: SynthesiseOptions): Promise<SynthesiseResult> {
  const { scenes, products, seed, domain } = options;
  let start = performance.now();
  const lap = () => {
    const seconds = (performance.now() - start) / 1000;
    start = performance.now();
    return Math.round(seconds * 100) / 100;
  };
  const result: SynthesiseResult = {
    ...(await writeSyntheticDataset(workdir, { scenes, products, seed, domain }, options.force)),
    seconds: { dataset: 0 },
  };
  result.seconds.dataset = lap();
  const provenance = provenanceOf(options);
  if (options.dim === undefined) await removeStaleSyntheticStores(workdir, provenance);
  else {
    result.embeddings = await writeSyntheticEmbeddings(workdir, result.world, options.dim, provenance);
    result.seconds.embeddings = lap();
  }
  if (options.images) {
    result.images = await writeSyntheticImages(workdir, result.world, options.format ?? 'jpeg');
    result.seconds.images = lap();
  }
  return result;
}
