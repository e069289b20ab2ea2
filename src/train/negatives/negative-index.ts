// What the negative strategies know about the catalog and the training rows, and which products are a row's
// scene's own (never a negative).

export interface NegativeIndex {
  /** Dataset product index → category index. */
  productCategory: Int32Array;
  /** Category → product indices that may be drawn (those with an embedding). */
  byCategory: Int32Array[];
  /** Scene index → its true products. */
  scenePositives: Int32Array[];
  /** Training row → scene index and positive product index. */
  rowScene: Int32Array;
  rowProduct: Int32Array;
  /** Training row → its row of the training scene inputs (the engine's trainScenes, each distinct one once). */
  trainSceneRow: Int32Array;
}

export function isPositive(index: NegativeIndex, row: number, product: number): boolean {
  return index.scenePositives[index.rowScene[row]].includes(product);
}

/** The columns 0..n-1 grouped by a key of each (its product, its category: several rows of a batch can share one). */
export function columnsBy(n: number, key: (j: number) => number): Map<number, number[]> {
  const columns = new Map<number, number[]>();
  for (let j = 0; j < n; j++) {
    const k = key(j);
    const list = columns.get(k);
    if (list) list.push(j);
    else columns.set(k, [j]);
  }
  return columns;
}

/**
 * [B, B] 0/1: (i, j) = 1 when j ≠ i and batch product j is one of scene i's products (a false in-batch negative).
 * Built from each scene's few products, not by testing all B² pairs.
 */
export function inBatchFalseNegatives(index: NegativeIndex, rows: ArrayLike<number>): Uint8Array {
  const n = rows.length;
  const mask = new Uint8Array(n * n);
  const columns = columnsBy(n, (j) => index.rowProduct[rows[j]]);
  for (let i = 0; i < n; i++)
    for (const product of index.scenePositives[index.rowScene[rows[i]]])
      for (const j of columns.get(product) ?? []) if (j !== i) mask[i * n + j] = 1;
  return mask;
}
