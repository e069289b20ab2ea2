// The model's inputs for a set of pairs: the scene vector of each pair (in the configured view) and the vector of
// every catalog product, read from the embedding store. Shared by training, evaluation and serving. A non-finite
// value is bad input, stopped here with the store and the row's id named.
import { InputError } from '../../util/errors.js';
import { firstNonFinite } from '../../util/matrix.js';
import { sceneViewStore, SYNTH_MODEL, workdirPaths, type SceneView } from '../workdir.js';
import type { Dataset } from '../dataset.js';
import { type EmbeddingStore, sceneProductKey } from './embeddings.js';
import { openStoreToRead } from './writers.js';

export interface PairInputs {
  /** Row i = the scene vector of `keptPairs[i]`. */
  scenes: Float32Array;
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

export async function loadPairInputs(
  workdir: string,
  dataset: Dataset,
  modelId: string,
  view: SceneView,
  pairIndices: number[],
): Promise<PairInputs> {
  const paths = workdirPaths(workdir);
  const howToMake = (flags = '') =>
    modelId === SYNTH_MODEL ? '`ctl data synth --dim D`' : `\`ctl embed --model ${modelId}${flags}\``;
  const productStore = await openStoreToRead(paths.embeddings(modelId, 'products'), howToMake());
  const sceneStore = await openStoreToRead(
    paths.embeddings(modelId, sceneViewStore(view)),
    howToMake(view === 'full' ? '' : ` --scene-view ${view}`),
  );
  if (productStore.dim !== sceneStore.dim)
    throw new InputError(
      `${productStore.dir} holds ${productStore.dim}-d vectors, ${sceneStore.dir} ${sceneStore.dim}-d: embed both with the same model`,
    );

  const products = await productStore.read(dataset.products.map((p) => p.sig));
  const missingProducts = new Set(products.missing);
  const productIndexOf = new Map(dataset.products.map((p, i) => [p.sig, i]));

  const sceneKey = (i: number) => {
    const pair = dataset.pairs[i];
    return view === 'full' ? pair.scene : sceneProductKey(pair.scene, pair.product);
  };
  const keptPairs = pairIndices.filter(
    (i) =>
      sceneStore.has(sceneKey(i)) &&
      productIndexOf.has(dataset.pairs[i].product) &&
      !missingProducts.has(dataset.pairs[i].product),
  );
  const scenes = await sceneStore.read(keptPairs.map(sceneKey));
  checkFinite(productStore, products.data, (j) => dataset.products[j].sig);
  checkFinite(sceneStore, scenes.data, (i) => sceneKey(keptPairs[i]));
  return {
    scenes: scenes.data,
    products: products.data,
    dim: productStore.dim,
    keptPairs,
    missingPairs: pairIndices.length - keptPairs.length,
    missingProducts: dataset.products.flatMap((p, j) => (missingProducts.has(p.sig) ? [j] : [])),
    model: productStore.meta.model,
  };
}

function checkFinite(store: EmbeddingStore, rows: Float32Array, idOfRow: (row: number) => string): void {
  const bad = firstNonFinite(rows);
  if (bad >= 0)
    throw new InputError(
      `${store.dir}: the vector of ${idOfRow(Math.floor(bad / store.dim))} has a non-finite value; check the store with \`ctl data verify-embeddings\` and embed it again`,
    );
}
