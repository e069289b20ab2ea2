// What a run trains and validates on: the split's train and val pairs with their embeddings (pairs missing an
// embedding are counted and skipped), the product matrix, and the lookups negatives need. Bad inputs stop here
// with the file and field named.
import { createHash } from 'node:crypto';
import { datasetDigest, type Dataset } from '../data/dataset.js';
import { loadDataset } from '../data/stl/dataset-io.js';
import { loadPairInputs } from '../data/store/pair-inputs.js';
import { workdirPaths } from '../data/workdir.js';
import { InputError } from '../util/errors.js';
import { log } from '../util/log.js';
import type { TrainConfig } from './config.js';
import type { NegativeIndex } from './negatives/negative-index.js';
import { distinctRows, gatherRows } from '../util/matrix.js';
import type { PairInputs } from '../data/store/pair-inputs.js';

export interface PairRows {
  /** dataset.pairs indices, one per row. */
  pairs: number[];
  /** [distinct scene inputs, dim]: each scene embedding of these rows once (see PairInputs.scenes). */
  scenes: Float32Array;
  /** Row → its row of `scenes`. */
  sceneRow: Int32Array;
}

export interface TrainingData {
  dataset: Dataset;
  dim: number;
  embeddingModel: string;
  train: PairRows;
  val: PairRows;
  /** [dataset.products.length, dim]; zero rows where missing. */
  products: Float32Array;
  productCategory: Int32Array;
  /** Training row → dataset product index of its positive. */
  rowProduct: Int32Array;
  negativeIndex: NegativeIndex;
  missing: { trainPairs: number; valPairs: number; products: number };
  /** dataset.products indices without an embedding: never negatives, never ranked. */
  missingProducts: number[];
  /** Changes when anything the run depends on changes (dataset, split, embeddings present). */
  fingerprint: string;
  /** What the dataset holds (datasetDigest). */
  datasetDigest: string;
}

export async function loadTrainingData(
  workdir: string,
  config: TrainConfig,
  configFile: string,
): Promise<TrainingData> {
  const dataset = await loadDataset(workdir, config.domain);
  const datasetFile = workdirPaths(workdir).dataset(config.domain);
  const split = dataset.splits[config.split];
  const trainPairs = split?.parts.train ?? [];
  const valPairs = split?.parts.val ?? [];
  if (trainPairs.length === 0 || valPairs.length === 0)
    throw new InputError(
      `${datasetFile}: split '${config.split}' (config ${configFile}: split) has ${trainPairs.length} train and ${valPairs.length} val pairs; both must be non-empty`,
    );

  const numCategories = dataset.categories.length;
  const productCategory = Int32Array.from(dataset.products, (p) => p.category); // checked by loadDataset

  const inputs = await loadPairInputs(workdir, dataset, config.embeddings.model, config.sceneView, [
    ...trainPairs,
    ...valPairs,
  ]);
  if (config.embeddings.dim !== undefined && config.embeddings.dim !== inputs.dim)
    throw new InputError(
      `${configFile}: embeddings.dim: the config expects ${config.embeddings.dim}-d inputs but the store of '${config.embeddings.model}' holds ${inputs.dim}-d vectors`,
    );
  const valSet = new Set(valPairs);
  const trainRows: number[] = [];
  const valRows: number[] = [];
  inputs.keptPairs.forEach((p, row) => (valSet.has(p) ? valRows : trainRows).push(row));
  const train = pick(inputs, trainRows);
  const val = pick(inputs, valRows);
  const missing = {
    trainPairs: trainPairs.length - train.pairs.length,
    valPairs: valPairs.length - val.pairs.length,
    products: inputs.missingProducts.length,
  };
  if (missing.trainPairs + missing.valPairs + missing.products > 0)
    log(
      `embeddings missing: ${missing.trainPairs} of ${trainPairs.length} train pairs and ${missing.valPairs} of ${valPairs.length} val pairs skipped; ` +
        `${missing.products} of ${dataset.products.length} products have no embedding (run \`ctl embed\` to fill them in)`,
    );
  if (train.pairs.length === 0 || val.pairs.length === 0)
    throw new InputError(
      `no ${train.pairs.length === 0 ? 'train' : 'val'} pair of split '${config.split}' has embeddings of '${config.embeddings.model}': run \`ctl embed\` (or \`ctl data synth\` for synthetic ones)`,
    );

  const productIndex = new Map(dataset.products.map((p, j) => [p.sig, j]));
  const sceneIndex = new Map(dataset.scenes.map((s, i) => [s.sig, i]));
  const scenePositives = dataset.scenes.map((s) =>
    Int32Array.from(new Set(s.items.map((it) => productIndex.get(it.product) ?? -1))),
  );
  // A pair's scene and product are listed ones: checked by loadDataset.
  const rowProduct = Int32Array.from(train.pairs, (p) => productIndex.get(dataset.pairs[p].product)!);
  const rowScene = Int32Array.from(train.pairs, (p) => sceneIndex.get(dataset.pairs[p].scene)!);
  const usable = new Set(dataset.products.map((_, j) => j));
  for (const j of inputs.missingProducts) usable.delete(j);
  const byCategory = Array.from({ length: numCategories }, (_, c) =>
    Int32Array.from([...usable].filter((j) => productCategory[j] === c)),
  );

  const fingerprint = createHash('sha256')
    .update(
      JSON.stringify({
        domain: dataset.domain,
        source: dataset.source,
        products: dataset.products.length,
        categories: dataset.categories.map((c) => c.path),
        split: config.split,
        model: inputs.model,
        dim: inputs.dim,
        sceneView: config.sceneView,
        missingProducts: inputs.missingProducts.length,
      }),
    )
    .update(Int32Array.from(train.pairs))
    .update(Int32Array.from(val.pairs))
    .digest('hex')
    .slice(0, 16);

  return {
    dataset,
    dim: inputs.dim,
    embeddingModel: inputs.model,
    train,
    val,
    products: inputs.products,
    productCategory,
    rowProduct,
    negativeIndex: { productCategory, byCategory, scenePositives, rowScene, rowProduct, trainSceneRow: train.sceneRow },
    missing,
    missingProducts: inputs.missingProducts,
    fingerprint,
    datasetDigest: datasetDigest(dataset),
  };
}

/** Some of the inputs' rows, with the scene embeddings those rows use (each once). */
function pick(inputs: PairInputs, rows: number[]): PairRows {
  const sceneRows = rows.map((r) => inputs.sceneRow[r]);
  const { firsts, rowOf } = distinctRows(sceneRows);
  return {
    pairs: rows.map((r) => inputs.keptPairs[r]),
    scenes: gatherRows(
      inputs.scenes,
      firsts.map((i) => sceneRows[i]),
      inputs.dim,
    ),
    sceneRow: rowOf,
  };
}
