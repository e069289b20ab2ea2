// Which images to fetch: the signatures of the normalised dataset, by kind, shard and limit, and where each
// one lives on the image host.
import type { Dataset } from '../data/dataset.js';
import { inShard, type Shard } from '../data/shard.js';
import type { ImageKind } from '../data/types.js';

/** Pinterest's image host. The STL release names its URLs with http; a web page loads them over https. */
export const IMAGE_HOST = 'i.pinimg.com';
export const DEFAULT_BASE_URL = `http://${IMAGE_HOST}`;

export interface ImageTarget {
  sig: string;
  kind: ImageKind;
}

export interface TargetSelection {
  kind: ImageKind | 'all';
  shard?: Shard;
  /** At most this many images (after the shard filter), in dataset order: scenes first, then products. */
  limit?: number;
}

export function selectTargets(
  dataset: Pick<Dataset, 'scenes' | 'products'>,
  selection: TargetSelection,
): ImageTarget[] {
  const all: ImageTarget[] = [];
  if (selection.kind !== 'products') for (const s of dataset.scenes) all.push({ sig: s.sig, kind: 'scenes' });
  if (selection.kind !== 'scenes') for (const p of dataset.products) all.push({ sig: p.sig, kind: 'products' });
  const mine = all.filter((t) => inShard(t.sig, selection.shard));
  return selection.limit === undefined ? mine : mine.slice(0, selection.limit);
}

/** Pinterest's layout: `{base}/400x/ab/cd/ef/abcdef....jpg`. */
export function imageUrl(baseUrl: string, sig: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/400x/${sig.slice(0, 2)}/${sig.slice(2, 4)}/${sig.slice(4, 6)}/${sig}.jpg`;
}
