// The evaluation protocols (the reference's `seed` one and two honest ones), all reduced to "rank each target among
// its candidates" (rank.ts) and the metrics of those ranks (metrics.ts).
//
// - `seed`: the reference project's protocol. For the evaluated pairs in order, scene_i · product_j for all i, j
//   (an n × n matrix, duplicate products included); the query's target is the diagonal. Rank = 1 + #{j != i :
//   score_ij >= score_ii}. The reference took the diagonal's position in a descending argsort + 1; the two agree
//   unless another column ties the diagonal exactly, which happens when the same product appears in several
//   evaluated pairs (identical columns). There the reference's rank depends on its sort's order among equal
//   values, which is arbitrary (neither torch 1.13's argsort nor numpy's default one is stable beyond 16
//   elements). We count ties ahead (pessimistic) and also report `tiesBehind` (optimistic): the reference's
//   number lies between the two; `ties` says how many queries had a tied column.
// - `catalog`: each query ranks every distinct product of the catalog (dataset.products); the scene's other
//   true products are removed from its ranking ("filtered"); every true product of the scene is a target.
//   Queries of the same scene whose vectors are identical (the `full` view repeats one vector per scene) are
//   scored once.
// - `category`: the target ranked among the products of its own category, the scene's other true products
//   filtered out; AUC = fraction of those same-category negatives scored strictly below the target.
//
// Ties are pessimistic everywhere: a candidate scored equal to the target ranks ahead of it.
import type { Dataset } from '../data/dataset.js';
import { RunError } from '../util/errors.js';
import { gatherRows } from '../util/matrix.js';
import type { EngineName } from './engines.js';
import { meanAuc, summariseRanks, type RankSummary } from './metrics.js';
import { rankTargets, toCsr, type Csr } from './rank.js';

export type Protocol = 'seed' | 'catalog' | 'category';
export const PROTOCOLS: Protocol[] = ['seed', 'catalog', 'category'];

/** The parts of a split a protocol is scored on (never train). */
export const EVAL_SPLITS = ['val', 'test'] as const;
export type EvalSplit = (typeof EVAL_SPLITS)[number];

export interface ProtocolInput {
  dataset: Dataset;
  /** dataset.pairs indices evaluated. */
  pairs: number[];
  /** Row i = query vector of pairs[i] (L2-normalised). */
  sceneVectors: Float32Array;
  /** Row j = vector of dataset.products[j] (L2-normalised). */
  productVectors: Float32Array;
  dim: number;
  /** dataset.products indices with no vector (loadPairInputs' missingProducts): removed from every ranking. */
  missingProducts?: number[];
}

export type CategoryMetrics = Pick<RankSummary, 'queries' | 'recall' | 'mrr'> & { auc?: number };

/** A protocol's result: the rank summary of its target pairs ("1", "5", "10", "50" → recall 0..1), and more. */
export interface Metrics extends RankSummary {
  protocol: Protocol;
  /** `category` only: mean AUC against same-category negatives. */
  auc?: number;
  /** Keyed by category name. */
  perCategory?: Record<string, CategoryMetrics>;
  /** Distinct query vectors scored (scenes, after merging identical rows). */
  sceneRows?: number;
  /** Candidates per query: the catalog size (`catalog`), n (`seed`), or the mean category size (`category`). */
  candidates?: number;
  /** `seed` only: queries whose diagonal was tied by another column (see the note at the top of this file). */
  ties?: number;
  /** `seed` only: the same metrics with ties counted behind the target; the reference's argsort lands between. */
  tiesBehind?: Omit<RankSummary, 'queries'>;
}

export interface EvaluateOptions {
  engine?: EngineName;
  onProgress?: (done: number, total: number) => void;
}

export async function evaluateProtocol(
  protocol: Protocol,
  input: ProtocolInput,
  options: EvaluateOptions = {},
): Promise<Metrics> {
  checkInput(input);
  switch (protocol) {
    case 'seed':
      return evaluateSeed(input, options);
    case 'catalog':
      return evaluateCatalog(input, options);
    case 'category':
      return evaluateCategory(input, options);
    default:
      throw new Error(`unknown protocol '${String(protocol)}'`);
  }
}

function checkInput({ dataset, pairs, sceneVectors, productVectors, dim }: ProtocolInput): void {
  if (sceneVectors.length !== pairs.length * dim) {
    throw new RunError(
      `evaluation: ${pairs.length} pairs need ${pairs.length * dim} scene values, got ${sceneVectors.length}`,
    );
  }
  if (productVectors.length !== dataset.products.length * dim) {
    throw new RunError(
      `evaluation: ${dataset.products.length} products need ${dataset.products.length * dim} values, got ${productVectors.length}`,
    );
  }
  for (const [name, m] of [
    ['scene', sceneVectors],
    ['product', productVectors],
  ] as const) {
    for (let i = 0; i < m.length; i++) {
      if (!Number.isFinite(m[i]))
        throw new RunError(`evaluation: ${name} vector row ${Math.floor(i / dim)} has a non-finite value`);
    }
  }
}

async function evaluateSeed(input: ProtocolInput, options: EvaluateOptions): Promise<Metrics> {
  const { dataset, pairs, sceneVectors, productVectors, dim } = input;
  const { productOf } = indexDataset(dataset, input.missingProducts);
  const n = pairs.length;
  const productRows = pairs.map((p) => productOf(dataset.pairs[p].product));
  const diagonal: Csr = {
    offsets: Int32Array.from({ length: n + 1 }, (_, i) => i),
    ids: Int32Array.from({ length: n }, (_, i) => i),
  };
  const { ranks, ranksTiesBehind } = await rankTargets(
    {
      queries: sceneVectors,
      candidates: gatherRows(productVectors, productRows, dim),
      dim,
      targets: diagonal,
      tiesBehind: true,
    },
    options,
  );
  let ties = 0;
  for (let i = 0; i < n; i++) if (ranks[i] !== ranksTiesBehind![i]) ties++;
  const categories = Int32Array.from(productRows, (j) => dataset.products[j].category);
  const { recall, mrr, medianRank, meanRank } = summariseRanks(ranksTiesBehind!);
  return {
    ...summarise('seed', dataset, ranks, categories),
    sceneRows: n,
    candidates: n,
    ties,
    tiesBehind: { recall, mrr, medianRank, meanRank },
  };
}

async function evaluateCatalog(input: ProtocolInput, options: EvaluateOptions): Promise<Metrics> {
  const { dataset, pairs } = input;
  const index = indexDataset(dataset, input.missingProducts);
  const queries = pairs.map((_, i) => i);
  const candidates = dataset.products.map((_, j) => j).filter((j) => !index.missing.has(j));
  const { ranks, sceneRows } = await rankAmong(input, index, queries, candidates, options);
  const categories = pairCategories(dataset, pairs, index);
  return { ...summarise('catalog', dataset, ranks, categories), sceneRows, candidates: candidates.length };
}

async function evaluateCategory(input: ProtocolInput, options: EvaluateOptions): Promise<Metrics> {
  const { dataset, pairs } = input;
  const index = indexDataset(dataset, input.missingProducts);
  const categories = pairCategories(dataset, pairs, index);
  const ranks = new Int32Array(pairs.length);
  const negatives = new Int32Array(pairs.length);
  let sceneRows = 0;
  let candidatePairs = 0;
  let done = 0;
  for (let c = 0; c < dataset.categories.length; c++) {
    const queries = pairs.map((_, i) => i).filter((i) => categories[i] === c);
    if (queries.length === 0) continue;
    const candidates = dataset.products
      .map((_, j) => j)
      .filter((j) => dataset.products[j].category === c && !index.missing.has(j));
    const part = await rankAmong(input, index, queries, candidates, { ...options, onProgress: undefined });
    queries.forEach((i, k) => {
      ranks[i] = part.ranks[k];
      negatives[i] = part.negatives[k];
    });
    sceneRows += part.sceneRows;
    candidatePairs += queries.length * candidates.length;
    done += queries.length;
    options.onProgress?.(done, pairs.length);
  }
  return {
    ...summarise('category', dataset, ranks, categories, negatives),
    sceneRows,
    candidates: pairs.length > 0 ? candidatePairs / pairs.length : 0,
  };
}

/**
 * Rank each query's true product among `candidates` (dataset.products indices), the scene's other positives
 * filtered out. Returns, per query (in the order given), its rank and its number of negatives.
 */
async function rankAmong(
  input: ProtocolInput,
  index: DatasetIndex,
  queries: number[],
  candidates: number[],
  options: EvaluateOptions,
): Promise<{ ranks: Int32Array; negatives: Int32Array; sceneRows: number }> {
  const { dataset, pairs, sceneVectors, productVectors, dim } = input;
  const local = new Map<number, number>();
  candidates.forEach((j, k) => local.set(j, k));
  const targetOf = (i: number): number => {
    const k = local.get(index.productOf(dataset.pairs[pairs[i]].product));
    if (k === undefined)
      throw new RunError(`evaluation: pair ${pairs[i]}'s product is not among the candidates (no vector?)`);
    return k;
  };
  const { source, members } = mergeSceneRows(input, queries);
  const targets = toCsr(members.map((qs) => qs.map(targetOf)));
  const filtered = source.map((i) =>
    index.positives.get(dataset.pairs[pairs[i]].scene)!.flatMap((j) => (local.has(j) ? [local.get(j)!] : [])),
  );
  const { ranks: rowRanks } = await rankTargets(
    {
      queries: gatherRows(sceneVectors, source, dim),
      candidates: gatherRows(productVectors, candidates, dim),
      dim,
      targets,
      exclude: toCsr(filtered),
    },
    options,
  );
  // Back to the order of `queries`.
  const position = new Map<number, number>();
  queries.forEach((i, k) => position.set(i, k));
  const ranks = new Int32Array(queries.length);
  const negatives = new Int32Array(queries.length);
  members.forEach((qs, row) =>
    qs.forEach((i, m) => {
      const k = position.get(i)!;
      ranks[k] = rowRanks[targets.offsets[row] + m];
      // Negatives: the candidates less the target and the scene's other positives.
      const t = targets.ids[targets.offsets[row] + m];
      negatives[k] = candidates.length - 1 - filtered[row].filter((j) => j !== t).length;
    }),
  );
  return { ranks, negatives, sceneRows: source.length };
}

type DatasetIndex = ReturnType<typeof indexDataset>;

/** Lookups shared by the protocols. */
function indexDataset(dataset: Dataset, missingProducts: number[] = []) {
  const productIndex = new Map<string, number>();
  dataset.products.forEach((p, i) => productIndex.set(p.sig, i));
  const productOf = (sig: string): number => {
    const j = productIndex.get(sig);
    if (j === undefined) throw new RunError(`evaluation: product ${sig} of a pair is not in dataset.products`);
    return j;
  };
  const positives = new Map<string, number[]>();
  for (const scene of dataset.scenes) {
    positives.set(scene.sig, [...new Set(scene.items.map((it) => productOf(it.product)))]);
  }
  // Pairs also make a product a scene's positive, should scenes and pairs ever disagree.
  for (const pair of dataset.pairs) {
    const list = positives.get(pair.scene) ?? [];
    const j = productOf(pair.product);
    if (!list.includes(j)) list.push(j);
    positives.set(pair.scene, list);
  }
  return { productOf, positives, missing: new Set(missingProducts) };
}

/** The category of each pair's product, in `pairs`' order. */
function pairCategories(dataset: Dataset, pairs: number[], index: ReturnType<typeof indexDataset>): Int32Array {
  return Int32Array.from(pairs, (p) => dataset.products[index.productOf(dataset.pairs[p].product)].category);
}

/** Category labels: the leaf name, or the full path where two categories share a leaf name. */
function categoryLabels(dataset: Dataset): string[] {
  const counts = new Map<string, number>();
  for (const c of dataset.categories) counts.set(c.name, (counts.get(c.name) ?? 0) + 1);
  return dataset.categories.map((c) => ((counts.get(c.name) ?? 0) > 1 ? c.path : c.name));
}

/**
 * Merge queries into scored rows: queries of the same scene with bit-identical vectors share one row.
 * Returns, per row, the query index whose vector it uses and the queries it stands for.
 */
function mergeSceneRows(input: ProtocolInput, queries: number[]): { source: number[]; members: number[][] } {
  const { dataset, pairs, sceneVectors, dim } = input;
  const source: number[] = [];
  const members: number[][] = [];
  const rowsOfScene = new Map<string, number[]>();
  const bits = new Uint32Array(sceneVectors.buffer, sceneVectors.byteOffset, sceneVectors.length);
  const same = (a: number, b: number): boolean => {
    for (let d = 0; d < dim; d++) if (bits[a * dim + d] !== bits[b * dim + d]) return false;
    return true;
  };
  for (const i of queries) {
    const scene = dataset.pairs[pairs[i]].scene;
    const rows = rowsOfScene.get(scene) ?? [];
    const row = rows.find((r) => same(source[r], i));
    if (row !== undefined) {
      members[row].push(i);
      continue;
    }
    rows.push(source.length);
    rowsOfScene.set(scene, rows);
    source.push(i);
    members.push([i]);
  }
  return { source, members };
}

/** Overall and per-category summaries of ranks, each query's category given. */
function summarise(
  protocol: Protocol,
  dataset: Dataset,
  ranks: Int32Array,
  categoryOfQuery: Int32Array,
  negatives?: Int32Array,
): Pick<Metrics, 'protocol' | 'queries' | 'recall' | 'mrr' | 'medianRank' | 'meanRank' | 'auc' | 'perCategory'> {
  const labels = categoryLabels(dataset);
  const perCategory: Record<string, CategoryMetrics> = {};
  for (let c = 0; c < dataset.categories.length; c++) {
    const members: number[] = [];
    for (let i = 0; i < ranks.length; i++) if (categoryOfQuery[i] === c) members.push(i);
    if (members.length === 0) continue;
    const r = Int32Array.from(members, (i) => ranks[i]);
    const s = summariseRanks(r);
    // An AUC only where a query has a same-category negative (a category of one product has none).
    const auc =
      negatives &&
      meanAuc(
        r,
        Int32Array.from(members, (i) => negatives[i]),
      );
    perCategory[labels[c]] = { queries: s.queries, recall: s.recall, mrr: s.mrr, ...(auc !== undefined && { auc }) };
  }
  const auc = negatives && meanAuc(ranks, negatives);
  return { protocol, ...summariseRanks(ranks), ...(auc !== undefined && { auc }), perCategory };
}
