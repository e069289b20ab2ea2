// The normalised dataset: what `ctl data fetch` / `ctl data synth` write to workdir/dataset/<domain>.json and
// every later stage reads.
import { createHash } from 'node:crypto';
import type { Category, Domain, Pair, Product, Scene, Split } from './types.js';

export interface Dataset {
  version: 1;
  domain: Domain;
  /** Where the rows came from, so results on synthetic data are never labelled as STL results. */
  source: 'stl' | 'synthetic';
  /** Sorted by full path; `categories[i].index === i`. */
  categories: Category[];
  /** Sorted by signature. */
  products: Product[];
  /** In order of first appearance in the pairs file. */
  scenes: Scene[];
  /** The valid pairs, in file order (the order the reference project reads them). */
  pairs: Pair[];
  splits: { scene: Split; seed: Split };
  /** Rows skipped while loading, by reason. */
  skipped: Record<string, number>;
}

/**
 * A digest of what the dataset holds (its products and pairs), recorded with a run: another `ctl data synth` or
 * `ctl data fetch` into the workdir changes it, so a run trained on the old data is not taken for one of this.
 */
export function datasetDigest(dataset: Dataset): string {
  const hash = createHash('sha256').update(`${dataset.source} ${dataset.domain}\n`);
  for (const p of dataset.products) hash.update(`${p.sig} ${p.category}\n`);
  for (const p of dataset.pairs) hash.update(`${p.scene} ${p.product}\n`);
  return hash.digest('hex').slice(0, 16);
}

/**
 * Was a run whose checkpoint recorded `recorded` (its `data.dataset`) trained on other data than the dataset of
 * `digest` (datasetDigest)? False when unknown.
 */
export function trainedOnOtherData(recorded: string | undefined, digest: string): boolean {
  return recorded !== undefined && recorded !== digest;
}

/** Why a run's data is not this workdir's, for the messages that say so. */
export const OTHER_DATA =
  'trained on another dataset than the workdir holds now (a later `ctl data synth` or `fetch`?)';
