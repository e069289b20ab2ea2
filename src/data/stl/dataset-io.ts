// Raw STL files → the normalised dataset (workdir/dataset/<domain>.json), and back from disk for later stages.
import { readFile } from 'node:fs/promises';
import type { Dataset } from '../dataset.js';
import { SPLIT_SCHEMES, type Domain, type Product, type Scene } from '../types.js';
import { buildVocabulary, indexByPath } from './categories.js';
import { readCategoryFile, readPairsFile, type FileReport } from './raw-files.js';
import { DEFAULT_SPLIT_SEED, sceneSplit, seedSplit } from './splits.js';
import { InputError } from '../../util/errors.js';
import { parseJsonFile } from '../../util/json.js';
import { heldBy, otherHolder } from '../../util/lock.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { workdirPaths } from '../workdir.js';

export interface NormaliseOptions {
  strict?: boolean;
  domain?: Domain;
  source?: Dataset['source'];
  /** What messages call the two files (default: their paths), e.g. the URLs they came from. */
  names?: { pairs?: string; categories?: string };
  /** Seed of both split schemes (the reference's is 42). */
  seed?: number;
}

export interface NormaliseReport {
  pairs: FileReport;
  categories: FileReport;
}

/** Read, validate and normalise a pairs file and its category file. Throws InputError when nothing valid is left. */
export async function normaliseRaw(
  pairsFile: string,
  categoriesFile: string,
  options: NormaliseOptions = {},
): Promise<{ dataset: Dataset; report: NormaliseReport }> {
  const { strict = false, domain = 'fashion', source = 'stl', seed = DEFAULT_SPLIT_SEED } = options;
  const cat = await readCategoryFile(categoriesFile, { strict, name: options.names?.categories });
  if (cat.categories.size === 0)
    throw new InputError(`${cat.report.file}: no valid category entries${skippedText(cat.report)}`);
  const raw = await readPairsFile(pairsFile, (sig) => cat.categories.has(sig), { strict, name: options.names?.pairs });
  if (raw.pairs.length === 0) throw new InputError(`${raw.report.file}: no valid pairs${skippedText(raw.report)}`);

  const categories = buildVocabulary(cat.categories.values());
  const categoryIndex = indexByPath(categories);
  const productSigs = [...new Set(raw.pairs.map((p) => p.product))].sort();
  const products: Product[] = productSigs.map((sig) => ({
    sig,
    category: categoryIndex.get(cat.categories.get(sig)!)!,
  }));

  const scenes: Scene[] = [];
  const sceneBySig = new Map<string, Scene>();
  for (const pair of raw.pairs) {
    let scene = sceneBySig.get(pair.scene);
    if (!scene) {
      scene = { sig: pair.scene, items: [] };
      sceneBySig.set(pair.scene, scene);
      scenes.push(scene);
    }
    scene.items.push({ product: pair.product, bbox: pair.bbox });
  }

  const skipped: Record<string, number> = {};
  for (const [kind, report] of [
    ['categories', cat.report],
    ['pairs', raw.report],
  ] as const)
    for (const [reason, count] of Object.entries(report.skipped)) skipped[`${kind}.${reason}`] = count!;

  const dataset: Dataset = {
    version: 1,
    domain,
    source,
    categories,
    products,
    scenes,
    pairs: raw.pairs,
    splits: {
      scene: sceneSplit(raw.pairs, seed),
      seed: seedSplit(raw.rowOfPair, raw.report.rows, seed),
    },
    skipped,
  };
  return { dataset, report: { pairs: raw.report, categories: cat.report } };
}

function skippedText(report: FileReport): string {
  const reasons = Object.entries(report.skipped).map(([reason, n]) => `${reason} ${n}`);
  if (reasons.length === 0) return ` (${report.rows} rows read)`;
  return ` (${report.rows} rows read, skipped: ${reasons.join(', ')}; first: ${report.examples[0]})`;
}

/** Human summary of a load: kept/skipped per file, with the first few locations. */
export function formatReport(report: NormaliseReport): string[] {
  const lines: string[] = [];
  for (const [kind, r] of [
    ['categories', report.categories],
    ['pairs', report.pairs],
  ] as const) {
    const reasons = Object.entries(r.skipped).map(([reason, n]) => `${reason} ${n}`);
    lines.push(
      `${kind}: ${r.kept} of ${r.rows} rows kept` + (reasons.length ? `, skipped: ${reasons.join(', ')}` : ''),
    );
    for (const example of r.examples) lines.push(`  ${example}`);
  }
  return lines;
}

/** Write the dataset atomically (compact JSON: the full STL is tens of MB). Returns the path. */
export async function saveDataset(workdir: string, dataset: Dataset): Promise<string> {
  const path = workdirPaths(workdir).dataset(dataset.domain);
  await writeFileAtomic(path, JSON.stringify(dataset) + '\n');
  return path;
}

/** The normalised dataset of a domain; InputError (exit 2) telling what to run when it is absent. */
export async function loadDataset(workdir: string, domain: Domain = 'fashion'): Promise<Dataset> {
  const path = workdirPaths(workdir).dataset(domain);
  // Refused while `ctl data synth` rewrites it and its stores: what this process read would mix the two worlds.
  const writer = await otherHolder(path);
  if (writer)
    throw new InputError(`${path} is being rewritten by ctl data synth: ${heldBy(writer.holder, writer.file)}`);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new InputError(`no ${domain} dataset at ${path}: run \`ctl data fetch\` or \`ctl data synth\` first`);
  }
  const dataset = parseJsonFile(text, path, REWRITE) as Dataset;
  if (dataset?.version !== 1 || !dataset.splits?.scene || !dataset.splits?.seed)
    throw new InputError(`${path}: not a version 1 dataset${REWRITE}`);
  checkDataset(dataset, path);
  return dataset;
}

const REWRITE = '; re-run `ctl data fetch --force` or `ctl data synth`';

/**
 * What every stage relies on, checked once as the file is read: the lists are lists, every product's category is
 * one of the categories, every pair's and scene item's product is listed and its box is four numbers, every pair's
 * scene is listed, every split's parts
 * index pairs. An InputError names the first field that is not.
 */
function checkDataset(d: Dataset, path: string): void {
  const fail = (field: string, expected: string): never => {
    throw new InputError(`${path}: ${field}: expected ${expected}${REWRITE}`);
  };
  for (const key of ['categories', 'products', 'scenes', 'pairs'] as const)
    if (!Array.isArray(d[key])) fail(key, 'a list');
  if (d.pairs.length === 0) fail('pairs', 'at least one pair');
  d.categories.forEach((c, i) => {
    if (c?.index !== i || typeof c.name !== 'string') fail(`categories[${i}]`, `{ index: ${i}, name, path }`);
  });
  const products = new Set<string>();
  d.products.forEach((p, j) => {
    if (typeof p?.sig !== 'string' || products.has(p.sig)) fail(`products[${j}].sig`, 'a signature listed once');
    if (!Number.isInteger(p.category) || p.category < 0 || p.category >= d.categories.length)
      fail(
        `products[${j}].category`,
        `a category index below ${d.categories.length}, got ${JSON.stringify(p.category)}`,
      );
    products.add(p.sig);
  });
  const checkBox = (box: unknown, field: string) => {
    if (!(Array.isArray(box) && box.length === 4 && box.every(Number.isFinite)))
      fail(field, `four numbers [x1, y1, x2, y2], got ${JSON.stringify(box)}`);
  };
  const scenes = new Set<string>();
  d.scenes.forEach((s, t) => {
    if (typeof s?.sig !== 'string' || !Array.isArray(s.items)) fail(`scenes[${t}]`, '{ sig, items: [...] }');
    s.items.forEach((item, k) => {
      if (!products.has(item?.product)) fail(`scenes[${t}].items[${k}].product`, 'the signature of a listed product');
      checkBox(item.bbox, `scenes[${t}].items[${k}].bbox`);
    });
    scenes.add(s.sig);
  });
  d.pairs.forEach((p, i) => {
    if (!scenes.has(p?.scene)) fail(`pairs[${i}].scene`, 'the signature of a listed scene');
    if (!products.has(p.product)) fail(`pairs[${i}].product`, 'the signature of a listed product');
    checkBox(p.bbox, `pairs[${i}].bbox`);
  });
  for (const scheme of SPLIT_SCHEMES) {
    const parts: unknown = d.splits?.[scheme]?.parts;
    if (typeof parts !== 'object' || parts === null) fail(`splits.${scheme}.parts`, 'an object of parts');
    // A part that is not there is empty.
    for (const [part, rows] of Object.entries(parts as Record<string, unknown>))
      if (!Array.isArray(rows) || rows.some((r) => !Number.isInteger(r) || r < 0 || r >= d.pairs.length))
        fail(`splits.${scheme}.parts.${part}`, `indices of pairs (below ${d.pairs.length})`);
  }
  if (
    typeof d.skipped !== 'object' ||
    d.skipped === null ||
    !Object.values(d.skipped).every((n) => Number.isInteger(n) && n >= 0)
  )
    fail('skipped', 'an object of counts by reason');
}

/**
 * Normalise the raw files already in workdir/stl/ and save the dataset: the last step of both `ctl data fetch`
 * and `ctl data synth`.
 */
export async function normaliseWorkdir(
  workdir: string,
  domain: Domain,
  options: { strict?: boolean; source?: Dataset['source'] } = {},
): Promise<{ dataset: Dataset; report: NormaliseReport; path: string }> {
  const paths = workdirPaths(workdir);
  const { dataset, report } = await normaliseRaw(paths.rawPairs(domain), paths.rawCategories(domain), {
    ...options,
    domain,
  });
  const path = await saveDataset(workdir, dataset);
  return { dataset, report, path };
}
