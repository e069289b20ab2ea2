// The model's inputs for a set of pairs: the scene vectors of the pairs (in the configured view), each held once
// however many pairs share it, and the vector of every catalog product, read from the embedding store. Shared by
// training, evaluation and serving. A non-finite value is bad input, stopped here with the store and the row's id
// named.
import { InputError } from '../../util/errors.js';
import { distinctRows, firstNonFinite } from '../../util/matrix.js';
import { sceneViewStore, SYNTH_MODEL, workdirPaths, type SceneView } from '../workdir.js';
import type { Dataset } from '../dataset.js';
import { type EmbeddingStore, sceneProductKey } from './embeddings.js';
import { openStoreToRead } from './writers.js';

export interface PairInputs {
  /** One row per distinct scene input of the kept pairs, in order of first use: a scene in the full view (its
   * pairs share it), a (scene, product) in the crop views. */
  scenes: Float32Array;
  /** keptPairs[i]'s row of `scenes`. */
  sceneRow: Int32Array;
  /** Row j = the vector of `dataset.products[j]` (zeros where missing). */
  products: Float32Array;
  dim: number;
  /** Indices into `dataset.pairs` that have both embeddings, in the order asked. */
  keptPairs: number[];
  /** How many of the asked pairs were dropped for a missing scene or product embedding. */
  missingPairs: number;
  /** Indices into `dataset.products` with no embedding: not valid ranking candidates. */
  missingProducts: number[];
  /** The embedding model id, as recorded in the store. */
  model: string;
}

/** The vector of every catalog product: read once by a caller that loads several sets of pairs. */
export type ProductInputs = Pick<PairInputs, 'products' | 'dim' | 'missingProducts' | 'model'>;

/** `products`: the catalog's vectors as loadProductInputs read them (read here when not given). */
export async function loadPairInputs(
  workdir: string,
  dataset: Dataset,
  modelId: string,
  view: SceneView,
  pairIndices: number[],
  products?: ProductInputs,
): Promise<PairInputs> {
  const paths = workdirPaths(workdir);
  const catalog = products ?? (await loadProductInputs(workdir, dataset, modelId));
  const sceneStore = await openStoreToRead(
    paths.embeddings(modelId, sceneViewStore(view)),
    howToMake(modelId, view === 'full' ? '' : ` --scene-view ${view}`),
  );
  if (catalog.dim !== sceneStore.dim)
    throw new InputError(
      `${paths.embeddings(modelId, 'products')} holds ${catalog.dim}-d vectors, ${sceneStore.dir} ${sceneStore.dim}-d: embed both with the same model`,
    );

  const missingProducts = new Set(catalog.missingProducts);
  const productIndexOf = new Map(dataset.products.map((p, i) => [p.sig, i]));
  const hasProductVector = (sig: string) => {
    const j = productIndexOf.get(sig);
    return j !== undefined && !missingProducts.has(j);
  };

  const sceneKey = (i: number) => {
    const pair = dataset.pairs[i];
    return view === 'full' ? pair.scene : sceneProductKey(pair.scene, pair.product);
  };
  const keptPairs = pairIndices.filter(
    (i) => sceneStore.has(sceneKey(i)) && hasProductVector(dataset.pairs[i].product),
  );
  const { firsts, rowOf } = distinctRows(keptPairs.map(sceneKey));
  const sceneKeys = firsts.map((i) => sceneKey(keptPairs[i]));
  const scenes = await sceneStore.read(sceneKeys);
  checkFinite(sceneStore, scenes.data, (row) => sceneKeys[row]);
  return {
    ...catalog,
    scenes: scenes.data,
    sceneRow: rowOf,
    keptPairs,
    missingPairs: pairIndices.length - keptPairs.length,
  };
}

/** The vector of every product of `dataset.products`, from the model's product store. */
export async function loadProductInputs(workdir: string, dataset: Dataset, modelId: string): Promise<ProductInputs> {
  const store = await openStoreToRead(workdirPaths(workdir).embeddings(modelId, 'products'), howToMake(modelId));
  const products = await store.read(dataset.products.map((p) => p.sig));
  checkFinite(store, products.data, (j) => dataset.products[j].sig);
  const missing = new Set(products.missing);
  return {
    products: products.data,
    dim: store.dim,
    missingProducts: dataset.products.flatMap((p, j) => (missing.has(p.sig) ? [j] : [])),
    model: store.meta.model,
  };
}

/** The command that makes the model's stores (`flags` added to it). */
function howToMake(modelId: string, flags = ''): string {
  return modelId === SYNTH_MODEL ? '`ctl data synth --dim D`' : `\`ctl embed --model ${modelId}${flags}\``;
}

function checkFinite(store: EmbeddingStore, rows: Float32Array, idOfRow: (row: number) => string): void {
  const bad = firstNonFinite(rows);
  if (bad >= 0)
    throw new InputError(
      `${store.dir}: the vector of ${idOfRow(Math.floor(bad / store.dim))} has a non-finite value; check the store with \`ctl data verify-embeddings\` and embed it again`,
    );
}
