// The dataset's vocabulary, defined once and imported by every stage.

/** A Pinterest image signature: 32 lower-case hex characters. */
export type Signature = string;

/** [left, top, right, bottom], normalised to 0..1, origin top-left (as released in STL). */
export type BBox = [number, number, number, number];

/** A leaf category. `index` is stable: categories are sorted by full path, so checkpoints agree everywhere. */
export interface Category {
  index: number;
  /** The leaf of the path, e.g. "Shoes". */
  name: string;
  /** The full `|` path as released, e.g. "Apparel & Accessories|Shoes". */
  path: string;
  /** Rank of the path's first appearance in the category file (the reference numbers leaf names in that order,
   * see model/categories.ts). Optional in a dataset file: without it the vocabulary's order stands in. */
  firstSeen?: number;
}

export interface Product {
  sig: Signature;
  /** Index into the dataset's categories. */
  category: number;
}

/** One product worn in a scene, with where it is. */
export interface SceneItem {
  product: Signature;
  bbox: BBox;
}

/** An outfit photo and the products that complete it. */
export interface Scene {
  sig: Signature;
  items: SceneItem[];
}

/** One row of the released pairs file. */
export interface Pair {
  scene: Signature;
  product: Signature;
  bbox: BBox;
}

/** The parts of a split. The `seed` scheme (the reference's) has no test part. */
export type SplitPart = 'train' | 'val' | 'test';

/** Split schemes: `scene` is scene-disjoint and seeded; `seed` is the reference's pair shuffle, bit-exact. */
export const SPLIT_SCHEMES = ['seed', 'scene'] as const;
export type SplitScheme = (typeof SPLIT_SCHEMES)[number];

/** A split: for each part, indices into `Dataset.pairs`, in the order the part is consumed. */
export interface Split {
  scheme: SplitScheme;
  seed: number;
  parts: Partial<Record<SplitPart, number[]>>;
}

/** The two kinds of image a dataset has, each a folder of images/ and of the download manifest. */
export const IMAGE_KINDS = ['scenes', 'products'] as const;
export type ImageKind = (typeof IMAGE_KINDS)[number];

/** STL's two datasets. */
export const DOMAINS = ['fashion', 'home'] as const;
export type Domain = (typeof DOMAINS)[number];
