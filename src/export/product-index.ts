// The product index: the catalog through the product tower, what a recommender serves from (file names in
// formats.ts):
//   product_index.npy    float32 [rows, out], L2-normalised product vectors (numpy.load)
//   product_index.jsonl  one line per row, same order: {"row", "id", "category", "categoryPath", "categoryRow", "url"}
// Products without an image embedding are left out (and counted).
import type { Dataset } from '../data/dataset.js';
import { openStoreToRead } from '../data/store/writers.js';
import { workdirPaths } from '../data/workdir.js';
import { DEFAULT_BASE_URL, imageUrl } from '../data/image-host.js';
import type { TrainedModel } from '../model/load.js';
import { InputError } from '../util/errors.js';
import { gatherRows } from '../util/matrix.js';

export interface ProductIndex {
  /** dataset.products indices, one per row. */
  products: number[];
  /** Rows of the product tower's input: image embeddings and category rows (the checkpoint's cat_to_idx). */
  inputs: Float32Array;
  categoryRows: Int32Array;
  /** [rows, out] L2-normalised. */
  vectors: Float32Array;
  /** Catalog products left out for want of an embedding. */
  skipped: number;
}

export async function buildProductIndex(workdir: string, dataset: Dataset, model: TrainedModel): Promise<ProductIndex> {
  const { model: embeddingModel } = model.state.embeddings;
  const store = await openStoreToRead(workdirPaths(workdir).embeddings(embeddingModel, 'products'));
  const dim = model.spec.inputDim;
  if (store.dim !== dim)
    throw new InputError(
      `${store.dir}: ${store.dim}-d embeddings, but the run was trained on ${dim}-d '${embeddingModel}' embeddings`,
    );
  const rowOfCategory = model.categoryRows(dataset.categories);
  const read = await store.read(dataset.products.map((p) => p.sig));
  const missing = new Set(read.missing);
  const products = dataset.products.flatMap((p, j) => (missing.has(p.sig) ? [] : [j]));
  if (products.length === 0)
    throw new InputError(`${store.dir}: none of the ${dataset.products.length} catalog products has an embedding`);
  const inputs = gatherRows(read.data, products, dim);
  const categoryRows = Int32Array.from(products, (j) => rowOfCategory[dataset.products[j].category]);
  const vectors = await model.encodeProducts(inputs, categoryRows, products.length);
  return { products, inputs, categoryRows, vectors, skipped: dataset.products.length - products.length };
}

/** The JSON lines of the index, one per row. */
export function indexRows(dataset: Dataset, index: ProductIndex): string {
  return index.products
    .map((j, row) => {
      const p = dataset.products[j];
      const c = dataset.categories[p.category];
      return JSON.stringify({
        row,
        id: p.sig,
        category: c.name,
        categoryPath: c.path,
        categoryRow: index.categoryRows[row],
        url: imageUrl(DEFAULT_BASE_URL, p.sig),
      });
    })
    .join('\n')
    .concat('\n');
}
