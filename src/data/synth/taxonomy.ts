// The released STL taxonomies, as the synthetic generator needs them: each leaf category's full path, its product
// count in the released category file (for real-like proportions), where such an item sits in a scene photo,
// and which silhouette its images get. Counts are those of the released fashion-cat.json / home-cat.json.
import type { Domain } from '../types.js';

/** Where an item of a category sits in a scene: ranges for its box centre and size, normalised 0..1. */
export interface PlacementSpec {
  cx: [number, number];
  cy: [number, number];
  w: [number, number];
  h: [number, number];
  /** Mirror the centre about x = 0.5 half of the time (a bag on either side, an earring on either ear). */
  mirror?: boolean;
}

/** Silhouettes the image painter knows (images.ts). */
export type Silhouette =
  | 'shoe'
  | 'top'
  | 'pants'
  | 'bag'
  | 'coat'
  | 'sunglasses'
  | 'shorts'
  | 'skirt'
  | 'earring'
  | 'necklace'
  | 'chair'
  | 'stool'
  | 'sofa'
  | 'faucet'
  | 'vase'
  | 'mirror'
  | 'rug'
  | 'pillow'
  | 'curtain'
  | 'lamp'
  | 'ceiling-light';

export interface TaxonomyEntry {
  path: string;
  /** Products of this category in the released file. */
  count: number;
  place: PlacementSpec;
  silhouette: Silhouette;
  /** Categories of one group are not worn together (one bottom per outfit). */
  group?: string;
  /** Painting order in a scene: lower first (a coat under a bag). */
  z: number;
}

const FASHION: TaxonomyEntry[] = [
  {
    path: 'Apparel & Accessories|Shoes',
    count: 11780,
    silhouette: 'shoe',
    z: 3,
    place: { cx: [0.35, 0.65], cy: [0.86, 0.94], w: [0.18, 0.42], h: [0.07, 0.14] },
  },
  {
    path: 'Apparel & Accessories|Clothing|Shirts & Tops',
    count: 7506,
    silhouette: 'top',
    z: 1,
    place: { cx: [0.44, 0.56], cy: [0.31, 0.4], w: [0.3, 0.52], h: [0.2, 0.3] },
  },
  {
    path: 'Apparel & Accessories|Clothing|Pants',
    count: 6553,
    silhouette: 'pants',
    group: 'bottom',
    z: 1,
    place: { cx: [0.44, 0.56], cy: [0.64, 0.72], w: [0.22, 0.4], h: [0.35, 0.48] },
  },
  {
    path: 'Apparel & Accessories|Handbags, Wallets & Cases',
    count: 3255,
    silhouette: 'bag',
    z: 4,
    place: { cx: [0.14, 0.28], cy: [0.5, 0.64], w: [0.14, 0.26], h: [0.12, 0.22], mirror: true },
  },
  {
    path: 'Apparel & Accessories|Clothing|Outerwear|Coats & Jackets',
    count: 2485,
    silhouette: 'coat',
    z: 2,
    place: { cx: [0.45, 0.55], cy: [0.38, 0.48], w: [0.42, 0.66], h: [0.3, 0.46] },
  },
  {
    path: 'Apparel & Accessories|Clothing Accessories|Sunglasses',
    count: 1772,
    silhouette: 'sunglasses',
    z: 5,
    place: { cx: [0.45, 0.55], cy: [0.1, 0.15], w: [0.1, 0.17], h: [0.03, 0.055] },
  },
  {
    path: 'Apparel & Accessories|Clothing|Shorts',
    count: 1533,
    silhouette: 'shorts',
    group: 'bottom',
    z: 1,
    place: { cx: [0.44, 0.56], cy: [0.55, 0.61], w: [0.24, 0.38], h: [0.12, 0.19] },
  },
  {
    path: 'Apparel & Accessories|Clothing|Skirts',
    count: 1392,
    silhouette: 'skirt',
    group: 'bottom',
    z: 1,
    place: { cx: [0.44, 0.56], cy: [0.58, 0.66], w: [0.26, 0.44], h: [0.18, 0.3] },
  },
  {
    path: 'Apparel & Accessories|Jewelry|Earrings',
    count: 926,
    silhouette: 'earring',
    z: 5,
    place: { cx: [0.41, 0.45], cy: [0.14, 0.19], w: [0.025, 0.05], h: [0.03, 0.065], mirror: true },
  },
  {
    path: 'Apparel & Accessories|Jewelry|Necklaces',
    count: 909,
    silhouette: 'necklace',
    z: 5,
    place: { cx: [0.46, 0.54], cy: [0.24, 0.29], w: [0.08, 0.17], h: [0.06, 0.13] },
  },
];

const HOME: TaxonomyEntry[] = [
  {
    path: 'Home & Garden|Decor|Rugs',
    count: 6638,
    silhouette: 'rug',
    z: 0,
    place: { cx: [0.4, 0.6], cy: [0.82, 0.9], w: [0.5, 0.9], h: [0.12, 0.22] },
  },
  {
    path: 'Furniture|Chairs',
    count: 5796,
    silhouette: 'chair',
    z: 2,
    place: { cx: [0.2, 0.8], cy: [0.62, 0.74], w: [0.14, 0.26], h: [0.22, 0.34] },
  },
  {
    path: 'Home & Garden|Lighting|Lighting Fixtures|Ceiling Light Fixtures',
    count: 5271,
    silhouette: 'ceiling-light',
    z: 1,
    place: { cx: [0.35, 0.65], cy: [0.08, 0.18], w: [0.12, 0.26], h: [0.1, 0.2] },
  },
  {
    path: 'Home & Garden|Decor|Throw Pillows',
    count: 4548,
    silhouette: 'pillow',
    z: 3,
    place: { cx: [0.3, 0.7], cy: [0.55, 0.62], w: [0.08, 0.14], h: [0.07, 0.12] },
  },
  {
    path: 'Home & Garden|Decor|Mirrors',
    count: 3627,
    silhouette: 'mirror',
    z: 1,
    place: { cx: [0.3, 0.7], cy: [0.3, 0.42], w: [0.12, 0.24], h: [0.16, 0.3] },
  },
  {
    path: 'Hardware|Plumbing|Plumbing Fixtures|Faucets',
    count: 3522,
    silhouette: 'faucet',
    z: 2,
    place: { cx: [0.35, 0.65], cy: [0.45, 0.55], w: [0.06, 0.12], h: [0.08, 0.14] },
  },
  {
    path: 'Home & Garden|Lighting|Lamps',
    count: 2857,
    silhouette: 'lamp',
    z: 2,
    place: { cx: [0.12, 0.3], cy: [0.45, 0.6], w: [0.08, 0.16], h: [0.2, 0.34], mirror: true },
  },
  {
    path: 'Furniture|Sofas',
    count: 2453,
    silhouette: 'sofa',
    z: 1,
    place: { cx: [0.4, 0.6], cy: [0.6, 0.7], w: [0.4, 0.66], h: [0.18, 0.28] },
  },
  {
    path: 'Furniture|Chairs|Table & Bar Stools',
    count: 2413,
    silhouette: 'stool',
    z: 2,
    place: { cx: [0.2, 0.8], cy: [0.66, 0.78], w: [0.08, 0.14], h: [0.16, 0.26] },
  },
  {
    path: 'Home & Garden|Decor',
    count: 2215,
    silhouette: 'vase',
    z: 3,
    place: { cx: [0.25, 0.75], cy: [0.45, 0.62], w: [0.05, 0.1], h: [0.08, 0.16] },
  },
  {
    path: 'Home & Garden|Decor|Window Treatments|Curtains & Drapes',
    count: 1966,
    silhouette: 'curtain',
    z: 0,
    place: { cx: [0.08, 0.18], cy: [0.35, 0.5], w: [0.12, 0.22], h: [0.5, 0.75], mirror: true },
  },
];

export function taxonomyOf(domain: Domain): TaxonomyEntry[] {
  return domain === 'home' ? HOME : FASHION;
}

/** Products per scene, 1..5, shaped so the mean is ~2.4 (STL fashion: ~72K pairs over ~30K scenes). */
export const ITEMS_PER_SCENE_WEIGHTS = [0.24, 0.34, 0.24, 0.12, 0.06];
