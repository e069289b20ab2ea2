// The normalised dataset: what `ctl data fetch` / `ctl data synth` write to workdir/dataset/<domain>.json and
// every later stage reads.
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
