// The category vocabulary: one entry per distinct full path, sorted by path (code-unit order, independent of the
// locale), so index i names the same category on every machine and in every checkpoint.
import type { Category } from '../types.js';
import { leafOf } from './raw-files.js';

export function buildVocabulary(paths: Iterable<string>): Category[] {
  const distinct = [...new Set(paths)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return distinct.map((path, index) => ({ index, name: leafOf(path), path }));
}

/** Full path → category index. */
export function indexByPath(categories: Category[]): Map<string, number> {
  return new Map(categories.map((c) => [c.path, c.index]));
}
