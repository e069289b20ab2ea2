// Row-major float32 matrices (`rows × dim` values in one Float32Array): the helpers several stages share.

/** How many values a tensor of this shape holds (1 for a scalar's []). */
export const elementCount = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** The first `count` little-endian float32 values of `bytes` (at any alignment), copied into an array of their own. */
export function float32sOf(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(bytes.subarray(0, count * 4));
  return out;
}

/** The index of the first NaN or ±Infinity in `values`, or -1. A plain loop: findIndex with a callback takes
 * seconds over an embedding store (3-4× longer). */
export function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return i;
  return -1;
}

/** Scale every row to unit L2 norm, in place (a zero row stays zero); returns the matrix. */
export function l2NormalizeRows(matrix: Float32Array, dim: number): Float32Array {
  for (let row = 0; row < matrix.length; row += dim) {
    let sum = 0;
    for (let i = row; i < row + dim; i++) sum += matrix[i] * matrix[i];
    const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
    for (let i = row; i < row + dim; i++) matrix[i] *= scale;
  }
  return matrix;
}

/** The given rows of a matrix, in that order, as a new matrix; row index -1 gives a zero row. */
export function gatherRows(matrix: Float32Array, rows: ArrayLike<number>, dim: number): Float32Array {
  const out = new Float32Array(rows.length * dim);
  for (let i = 0; i < rows.length; i++)
    if (rows[i] >= 0) out.set(matrix.subarray(rows[i] * dim, (rows[i] + 1) * dim), i * dim);
  return out;
}

/** Two typed arrays end to end, as a new one of the same type. */
export function concat<T extends Float32Array | Int32Array>(a: T, b: T): T {
  const out = new (a.constructor as new (length: number) => T)(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Rows keyed by `keys`, each distinct key taken once: `firsts` = the index of each distinct key's first row, in
 * order of first appearance; `rowOf[i]` = the position of row i's key in `firsts`.
 */
export function distinctRows<K>(keys: readonly K[]): { firsts: number[]; rowOf: Int32Array } {
  const position = new Map<K, number>();
  const firsts: number[] = [];
  const rowOf = Int32Array.from(keys, (key, i) => {
    let at = position.get(key);
    if (at === undefined) {
      at = firsts.length;
      position.set(key, at);
      firsts.push(i);
    }
    return at;
  });
  return { firsts, rowOf };
}
