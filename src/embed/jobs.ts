// What to embed, per view: every product image; every scene (full view) or every scene–product pair with that
// product's box hidden (hide-product view, one row per product in the scene). Only this process's shard.
import { sceneProductKey } from '../data/store/embeddings.js';
import type { Dataset } from '../data/dataset.js';
import type { ImageKind } from '../data/types.js';
import { inShard, type Shard } from '../data/shard.js';
import { sceneViewStore, workdirPaths, type SceneView } from '../data/workdir.js';
import type { HideMode } from './hide.js';
import type { ImageJob } from './images.js';
import type { ViewPlan } from './pipeline.js';

export interface JobSelection {
  kind: ImageKind | 'all';
  sceneView: SceneView;
  hide: HideMode;
  shard?: Shard;
}

/** The views to run and their rows; `storeDir(view)` is where each view's store lives. */
export function planJobs(
  dataset: Pick<Dataset, 'products' | 'scenes'>,
  workdir: string,
  selection: JobSelection,
  storeDir: (view: ViewPlan['view']) => string,
): ViewPlan[] {
  const paths = workdirPaths(workdir);
  const plans: ViewPlan[] = [];
  if (selection.kind !== 'scenes') {
    const jobs = dataset.products
      .filter((p) => inShard(p.sig, selection.shard))
      .map((p) => ({ id: p.sig, sig: p.sig, file: paths.imageFile('products', p.sig) }));
    plans.push({ view: 'products', dir: storeDir('products'), jobs });
  }
  if (selection.kind !== 'products') {
    const jobs: ImageJob[] = [];
    for (const scene of dataset.scenes) {
      if (!inShard(scene.sig, selection.shard)) continue;
      const file = paths.imageFile('scenes', scene.sig);
      if (selection.sceneView === 'full') {
        jobs.push({ id: scene.sig, sig: scene.sig, file });
        continue;
      }
      // A product listed twice in one scene keeps its first box: one row per key.
      const seen = new Set<string>();
      for (const item of scene.items) {
        const id = sceneProductKey(scene.sig, item.product);
        if (seen.has(id)) continue;
        seen.add(id);
        jobs.push({ id, sig: scene.sig, file, hide: { bbox: item.bbox, mode: selection.hide } });
      }
    }
    const view = sceneViewStore(selection.sceneView);
    plans.push({ view, dir: storeDir(view), jobs });
  }
  return plans;
}
