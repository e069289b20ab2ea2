// Which row of the category embedding stands for which category, as the reference saves it: `cat_to_idx` maps
// the LEAF name (the last `|` part of the path) to a row, numbered in order of first appearance in the category
// file, and `num_categories` is the number of rows. Every checkpoint stores both, whatever order ctl's own
// vocabulary uses; training, eval and serve map the dataset's categories through them.
import type { Category } from '../data/types.js';
import { InputError } from '../util/errors.js';

export interface CategoryMap {
  cat_to_idx: Record<string, number>;
  num_categories: number;
}

/** The reference's map of a dataset vocabulary: leaves numbered by the first appearance of any of their paths. */
export function categoryMapOf(categories: Category[]): CategoryMap {
  const recorded = categories.filter((c) => c.firstSeen !== undefined).length;
  if (recorded > 0 && recorded < categories.length)
    throw new InputError('the dataset records the category-file order for only some categories: re-create it');
  // A dataset file without the file order (an optional field) is taken in the vocabulary's order.
  const inFileOrder = [...categories].sort((a, b) => (a.firstSeen ?? a.index) - (b.firstSeen ?? b.index));
  const catToIdx: Record<string, number> = {};
  let rows = 0;
  for (const c of inFileOrder) if (!Object.hasOwn(catToIdx, c.name)) catToIdx[c.name] = rows++;
  return { cat_to_idx: catToIdx, num_categories: rows };
}

/**
 * For each category of a dataset vocabulary, its row in a checkpoint's category embedding. A category the
 * checkpoint does not know is an InputError naming it (and `source`, the checkpoint).
 */
export function categoryRows(map: CategoryMap, categories: Category[], source: string): Int32Array {
  return Int32Array.from(categories, (c) => {
    if (!Object.hasOwn(map.cat_to_idx, c.name))
      throw new InputError(
        `category '${c.name}' (${c.path}) is not in the ${map.num_categories} categories of ${source}: use the model with the data it was trained on, or train on this data`,
      );
    return map.cat_to_idx[c.name];
  });
}

/** Check a map read from a file: rows are integers below num_categories, one category each. */
export function checkCategoryMap(map: unknown, source: string): CategoryMap {
  const m = map as Partial<CategoryMap> | null;
  const count = m?.num_categories;
  if (!m || typeof m.cat_to_idx !== 'object' || m.cat_to_idx === null || !Number.isInteger(count) || count! < 0)
    throw new InputError(`${source}: expected cat_to_idx (leaf name → row) and num_categories`);
  const nameOfRow = new Map<number, string>();
  for (const [name, row] of Object.entries(m.cat_to_idx)) {
    if (!Number.isInteger(row) || row < 0 || row >= count!)
      throw new InputError(
        `${source}: cat_to_idx['${name}']: expected a row below num_categories ${count}, got ${row}`,
      );
    if (nameOfRow.has(row))
      throw new InputError(
        `${source}: cat_to_idx['${name}']: row ${row} is already '${nameOfRow.get(row)}'s; expected one row per category`,
      );
    nameOfRow.set(row, name);
  }
  return { cat_to_idx: m.cat_to_idx, num_categories: count! };
}
