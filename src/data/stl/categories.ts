// The category vocabulary: one entry per distinct full path, sorted by path (code-unit order, independent of the
// locale), so index i names the same category on every machine. Each entry keeps the rank of its first
// appearance in the file, the order the reference numbers categories in.
import type { Category } from '../types.js';
import { leafOf } from './raw-files.js';

/** The vocabulary of the paths, given in file order. */
export function buildVocabulary(paths: Iterable<string>): Category[] {
  const inFileOrder = [...new Set(paths)];
  const firstSeen = new Map(inFileOrder.map((path, rank) => [path, rank]));
  const distinct = inFileOrder.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return distinct.map((path, index) => ({ index, name: leafOf(path), path, firstSeen: firstSeen.get(path)! }));
}

/** Full path → category index. */
export function indexByPath(categories: Category[]): Map<string, number> {
  return new Map(categories.map((c) => [c.path, c.index]));
}
