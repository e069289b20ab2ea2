// Which images to fetch: the signatures of the normalised dataset, by kind, shard and limit.
import type { Dataset } from '../data/dataset.js';
import { inShard, type Shard } from '../data/shard.js';
import type { ImageKind } from '../data/types.js';

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
