// What `ctl serve` answers with: a trained run's towers, its catalog encoded once at start, and the eval code's
// ranking (src/eval/rank.ts). A dataset scene is ranked exactly as `ctl eval --protocol catalog` ranks it: its
// image embedding through the scene tower, scored against every catalog product with a vector, and each of its
// true products ranked with the scene's other true products filtered out. The grid shows the top k, optionally
// restricted to some categories.
import { readdir } from 'node:fs/promises';
import { datasetDigest, OTHER_DATA, trainedOnOtherData, type Dataset } from '../data/dataset.js';
import { loadDataset } from '../data/stl/dataset-io.js';
import type { EmbeddingStore } from '../data/store/embeddings.js';
import { openStoreToRead } from '../data/store/writers.js';
import { IMAGE_KINDS, type BBox, type ImageKind, type Scene } from '../data/types.js';
import { workdirPaths } from '../data/workdir.js';
import { IMAGE_HOST, imageUrl } from '../data/image-host.js';
import { createScoreEngine, type ScoreEngine } from '../eval/engines.js';
import { rankTargets, toCsr } from '../eval/rank.js';
import { loadTrainedModel, type TrainedModel } from '../model/load.js';
import type { TowerBackendChoice } from '../model/backend.js';
import { trainConfigSchema, type TrainConfig } from '../train/config.js';
import { InputError } from '../util/errors.js';
import { log } from '../util/log.js';
import { gatherRows } from '../util/matrix.js';

/** Candidate sets kept ready beside the whole catalog (one per category filter asked). */
const MAX_FILTER_ENGINES = 16;

/** A request the server cannot answer as asked: 400 (bad value), 404 (unknown scene) or 413 (too large). */
export class RequestError extends InputError {
  constructor(
    readonly statusCode: 400 | 404 | 413,
    message: string,
  ) {
    super(message);
  }
}

export interface Recommendation {
  product: string;
  category: string;
  score: number;
  /** 1-based position in this list. */
  position: number;
  /** Where the page finds the image (see imageOf). */
  image: string | null;
  /** One of the scene's true products (dataset scenes only). */
  isTrue: boolean;
}

export interface TrueProduct {
  product: string;
  category: string;
  bbox: BBox;
  image: string | null;
  /** Filtered rank among the whole catalog, as `ctl eval --protocol catalog` counts it; null without a vector. */
  rank: number | null;
}

export interface RecommendResult {
  scene: { sig: string; image: string | null } | null;
  categories: string[] | null;
  candidates: number;
  results: Recommendation[];
  truth: TrueProduct[];
}

/** A set of candidates (dataset.products indices), their tower vectors, and the score engine holding them. */
interface CandidateSet {
  products: Int32Array;
  rows: Float32Array;
  /** dataset.products index → row in this set, or -1. */
  rowOf: Int32Array;
  engine: ScoreEngine;
}

export class Recommender {
  private readonly filtered = new Map<string, Promise<CandidateSet>>();

  private constructor(
    readonly run: string,
    readonly model: TrainedModel<TrainConfig>,
    readonly dataset: Dataset,
    /** Tower outputs of every product, [products, model.spec.out] (rows of missing products are unused). */
    private readonly productVectors: Float32Array,
    private readonly catalog: CandidateSet,
    private readonly sceneStore: EmbeddingStore,
    private readonly localImages: Set<string>,
    private readonly sceneIndex: Map<string, Scene>,
    /** Product signature → dataset.products index. */
    private readonly productIndex: Map<string, number>,
    /** The scenes the picker offers: the scene split's test part (else val), those with an embedding. */
    readonly pickerScenes: Scene[],
  ) {}

  /** `backend`: what runs the towers (model/tower-encoder.ts). */
  static async open(workdir: string, run: string, backend: TowerBackendChoice = 'auto'): Promise<Recommender> {
    const paths = workdirPaths(workdir);
    const model = await loadTrainedModel(paths.run(run), 'best', {
      backend,
      config: trainConfigSchema,
      checkpointFlag: false,
    });
    const dataset = await loadDataset(workdir, model.config.domain);
    if (trainedOnOtherData(model.state.data.dataset, datasetDigest(dataset)))
      log(`note: run '${run}' was ${OTHER_DATA}`);
    const embeddings = model.state.embeddings.model;
    const productStore = await openStoreToRead(paths.embeddings(embeddings, 'products'));
    const sceneStore = await openStoreToRead(paths.embeddings(embeddings, 'scenes-full'));

    const { data, missing } = await productStore.read(dataset.products.map((p) => p.sig));
    const missingSet = new Set(missing);
    const available = dataset.products.flatMap((p, j) => (missingSet.has(p.sig) ? [] : [j]));
    if (available.length === 0)
      throw new InputError(
        `${productStore.dir}: no product of the dataset has an embedding (every answer would be empty): ` +
          `embed the products with the run's model '${embeddings}' first`,
      );
    // The checkpoint's category rows (its cat_to_idx); a category it does not know is an error naming it.
    const rows = model.categoryRows(dataset.categories);
    const categories = Int32Array.from(dataset.products, (p) => rows[p.category]);
    const productVectors = await model.encodeProducts(data, categories, dataset.products.length);
    const catalog = await candidateSet(productVectors, Int32Array.from(available), model.spec.out);

    const localImages = new Set<string>();
    for (const kind of IMAGE_KINDS) {
      const files = await readdir(paths.images(kind)).catch(() => [] as string[]);
      for (const f of files) if (f.endsWith('.jpg')) localImages.add(`${kind}/${f.slice(0, -4)}`);
    }
    const sceneIndex = new Map(dataset.scenes.map((s) => [s.sig, s]));
    const parts = dataset.splits.scene?.parts;
    const pickerPairs = parts?.test?.length ? parts.test : (parts?.val ?? []);
    const pickerSigs = [...new Set(pickerPairs.map((p) => dataset.pairs[p].scene))].filter((s) => sceneStore.has(s));
    const pickerScenes = pickerSigs.map((s) => sceneIndex.get(s)!);
    return new Recommender(
      run,
      model,
      dataset,
      productVectors,
      catalog,
      sceneStore,
      localImages,
      sceneIndex,
      new Map(dataset.products.map((p, j) => [p.sig, j])),
      pickerScenes,
    );
  }

  /** The catalog products with a vector, per category name (the page's chips). */
  categoryCounts(): { name: string; count: number }[] {
    const counts = new Array<number>(this.dataset.categories.length).fill(0);
    for (const j of this.catalog.products) counts[this.dataset.products[j].category]++;
    return this.dataset.categories.map((c, i) => ({ name: c.name, count: counts[i] }));
  }

  get catalogSize(): number {
    return this.catalog.products.length;
  }

  /**
   * The workdir's copy of an image, else the image host's for a real STL image; null for a generated dataset's image
   * not on disk (the host has none of its made-up signatures: the page shows a blank instead of asking it).
   */
  imageOf(kind: ImageKind, sig: string): string | null {
    if (this.localImages.has(`${kind}/${sig}`)) return `/images/${kind}/${sig}.jpg`;
    return this.dataset.source === 'stl' ? imageUrl(`https://${IMAGE_HOST}`, sig) : null;
  }

  hasLocalImage(kind: ImageKind, sig: string): boolean {
    return this.localImages.has(`${kind}/${sig}`);
  }

  /** A dataset scene's recommendations and the ranks of its true products. */
  async recommendScene(sig: string, k: number, categories: string[] | null): Promise<RecommendResult> {
    const scene = this.sceneIndex.get(sig);
    if (!scene || !this.sceneStore.has(sig))
      throw new RequestError(404, `unknown scene '${sig}': not in the dataset, or it has no image embedding`);
    const { data } = await this.sceneStore.read([sig]);
    const query = await this.model.encodeScenes(data, 1);

    // Rank the true products against the whole catalog, each with the scene's other true products filtered out.
    const indexOf = (sig: string) => this.productIndex.get(sig)!;
    const positives = [...new Set(scene.items.map((it) => indexOf(it.product)))];
    const inCatalog = positives.map((j) => this.catalog.rowOf[j]).filter((c) => c >= 0);
    const full = await rankTargets(
      {
        queries: query,
        candidates: this.catalog.rows,
        dim: query.length,
        targets: toCsr([inCatalog]),
        exclude: toCsr([inCatalog]),
        topK: categories ? 0 : k,
      },
      { engine: this.shared(this.catalog) },
    );
    const rankOf = new Map<number, number>();
    inCatalog.forEach((c, i) => rankOf.set(this.catalog.products[c], full.ranks[i]));

    const truth = scene.items.map((item) => {
      const j = indexOf(item.product);
      return {
        product: item.product,
        category: this.categoryName(j),
        bbox: item.bbox,
        image: this.imageOf('products', item.product),
        rank: rankOf.get(j) ?? null,
      };
    });
    const top = categories ? await this.top(query, k, categories) : this.listOf(this.catalog, full, k);
    const trueSet = new Set(positives);
    return {
      scene: { sig, image: this.imageOf('scenes', sig) },
      categories,
      candidates: top.candidates,
      results: top.results.map((r) => ({ ...r, isTrue: trueSet.has(this.productIndex.get(r.product)!) })),
      truth,
    };
  }

  /** An uploaded photo's recommendations, from its image embedding (`dim` values, L2-normalised). */
  async recommendVector(embedding: Float32Array, k: number, categories: string[] | null): Promise<RecommendResult> {
    const query = await this.model.encodeScenes(embedding, 1);
    const top = await this.top(query, k, categories);
    return { scene: null, categories, candidates: top.candidates, results: top.results, truth: [] };
  }

  /** Names checked against the dataset's categories; null = all. */
  checkCategories(names: string[] | undefined): string[] | null {
    if (!names || names.length === 0) return null;
    const known = new Set(this.dataset.categories.map((c) => c.name));
    for (const name of names)
      if (!known.has(name))
        throw new RequestError(400, `unknown category '${name}': expected one of ${[...known].join(', ')}`);
    return [...new Set(names)].sort();
  }

  async close(): Promise<void> {
    const sets = [this.catalog, ...(await Promise.all(this.filtered.values()))];
    await Promise.all(sets.map((s) => s.engine.dispose()));
    await this.model.dispose();
  }

  private categoryName(j: number): string {
    return this.dataset.categories[this.dataset.products[j].category].name;
  }

  private async top(
    query: Float32Array,
    k: number,
    categories: string[] | null,
  ): Promise<{ candidates: number; results: Recommendation[] }> {
    const set = categories ? await this.filteredSet(categories) : this.catalog;
    const ranked = await rankTargets(
      { queries: query, candidates: set.rows, dim: query.length, targets: toCsr([[]]), topK: k },
      { engine: this.shared(set) },
    );
    return this.listOf(set, ranked, k);
  }

  private listOf(
    set: CandidateSet,
    ranked: { topIds?: Int32Array; topScores?: Float32Array },
    k: number,
  ): { candidates: number; results: Recommendation[] } {
    const n = Math.min(k, set.products.length);
    const results = Array.from({ length: n }, (_, i) => {
      const j = set.products[ranked.topIds![i]];
      const sig = this.dataset.products[j].sig;
      return {
        product: sig,
        category: this.categoryName(j),
        score: ranked.topScores![i],
        position: i + 1,
        image: this.imageOf('products', sig),
        isTrue: false,
      };
    });
    return { candidates: set.products.length, results };
  }

  /** The catalog restricted to some categories, its engine built on first use and kept (a few at most). */
  private filteredSet(categories: string[]): Promise<CandidateSet> {
    const key = categories.join('|');
    let set = this.filtered.get(key);
    if (!set) {
      const wanted = new Set(categories);
      const products = this.catalog.products.filter((j) => wanted.has(this.categoryName(j)));
      set = candidateSet(this.productVectors, products, this.model.spec.out);
      this.filtered.set(key, set);
      if (this.filtered.size > MAX_FILTER_ENGINES) {
        const [oldestKey, oldest] = this.filtered.entries().next().value!;
        this.filtered.delete(oldestKey);
        void oldest.then((s) => s.engine.dispose());
      }
    }
    return set;
  }

  /**
   * rankTargets takes the candidates through an engine built once here (building one per request would copy
   * the whole catalog), and disposes the engine it is given: hand it a view that leaves ours open.
   */
  private shared(set: CandidateSet): ScoreEngine {
    return { name: set.engine.name, score: (rows, out) => set.engine.score(rows, out), dispose: async () => {} };
  }
}

async function candidateSet(vectors: Float32Array, products: Int32Array, dim: number): Promise<CandidateSet> {
  const rows = gatherRows(vectors, products, dim);
  const rowOf = new Int32Array(vectors.length / dim).fill(-1);
  products.forEach((j, c) => (rowOf[j] = c));
  return { products, rows, rowOf, engine: await createScoreEngine('auto', rows, products.length, dim) };
}
