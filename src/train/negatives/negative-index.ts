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
}

export function isPositive(index: NegativeIndex, row: number, product: number): boolean {
  return index.scenePositives[index.rowScene[row]].includes(product);
}

/** [B, B] 0/1: (i, j) = 1 when j ≠ i and batch product j is one of scene i's products (a false in-batch negative). */
export function inBatchFalseNegatives(index: NegativeIndex, rows: ArrayLike<number>): Uint8Array {
  const n = rows.length;
  const mask = new Uint8Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++)
      if (j !== i && isPositive(index, rows[i], index.rowProduct[rows[j]])) mask[i * n + j] = 1;
  return mask;
}
