// Precomputed embeddings for a synthetic world (`ctl data synth --dim D`), with structure planted the way image
// embeddings of STL behave, so training without images is meaningful:
//
//   product p    = lift( look_p + shot noise ),  look_p = style_s + jitter_p + category·category_k + identity_p
//   scene t      = lift( R·style_s + Σ_items w_i·(view_k(look_i) + view noise + leak·look_i + cue_k) + clutter + distractors )
//   hide (t, i)  = scene t with item i's term mostly removed (as if its box were hidden)
//
// Everything lives in a small latent space (real image embeddings have a low effective dimension; in a high one,
// isotropic noise would average away) and is lifted to `dim` by a fixed random orthonormal map plus a little
// ambient noise. Scenes see their items through a fixed random rotation R followed by a signed permutation of the
// item's category (`view_k`), and show which kinds of item they hold (`cue_k`, a direction per category: silhouette,
// place in the frame), while a product's own embedding says little of its category (`category` is small). So raw
// cosine between a scene and its products is weak (only the small `leak` term), a learned map recovers the scene's
// style and some of each item, and a model told the product's category (v2's category embedding) can read the
// scene's cues for that category and undo its view: that is what lets v2 beat v1 here, as in the reference table
// (the reference's v2 also had better image embeddings; here both read the same vectors).
// The constants below are calibrated so that, under the seed protocol, raw cosine ranks worst, a learned linear map
// better, the map told the candidate's category better still, and v2 beats v1 (the measured recalls are in
// bench/eval/README.md).
import { rm } from 'node:fs/promises';
import { totalmem } from 'node:os';
import type { BBox } from '../types.js';
import type { SynthWorld } from './world.js';
import { EmbeddingStore, sceneProductKey, type EmbeddingRows, type StoreMeta } from '../store/embeddings.js';
import { Random } from '../../util/random.js';
import { InputError } from '../../util/errors.js';
import { folderBytes, freeBytes } from '../../util/fs.js';
import { formatBytes, log } from '../../util/log.js';
import { ITEMS_PER_SCENE_WEIGHTS } from './taxonomy.js';
import { gatherRows } from '../../util/matrix.js';
import { EMBEDDING_VIEWS, SYNTH_MODEL, workdirPaths, type EmbeddingView } from '../workdir.js';

const SYNTH_EMBEDDING_WEIGHTS = {
  /** Latent dimension (at most the output dim). */
  latentDim: 64,
  style: 1.0,
  /** A product's own deviation from its style. */
  styleJitter: 0.7,
  category: 0.1,
  identity: 1.0,
  /** Product-shot noise (background, angle): in the product view only. */
  productShot: 0.6,
  /** Share of a scene's view of an item that is category-specific. */
  categoryTwist: 1.0,
  /** What a scene shows of an item's kind whatever its look (silhouette, place in the frame): a direction per category. */
  categoryCue: 4.0,
  sceneStyle: 0.8,
  /** Noise of a scene's partial view of each item (occlusion, pose, light). */
  itemView: 4.0,
  /** The item's look, unrotated, in the scene: what raw cosine can find. */
  leak: 0.6,
  clutter: 1.0,
  distractor: 0.3,
  /** What is left of a hidden item's term in the hide-product view. */
  hiddenResidue: 0.1,
  /** Full-dimensional noise added after the lift. */
  ambient: 0.1,
};

export interface SynthEmbeddings {
  dim: number;
  /** Rows L2-normalised. */
  products: EmbeddingRows;
  scenesFull: EmbeddingRows;
  scenesHideProduct: EmbeddingRows;
}

/** An item's weight in its scene: bigger boxes show more of it. */
function itemWeight(bbox: BBox): number {
  const area = Math.max(0, bbox[2] - bbox[0]) * Math.max(0, bbox[3] - bbox[1]);
  return Math.min(1.5, Math.max(0.2, Math.sqrt(area) / 0.3));
}

/** The latent space (L dims) the synthetic world's looks live in: its styles and categories, and how a scene sees. */
interface LatentSpace {
  L: number;
  styles: Float32Array;
  categoryDirs: Float32Array;
  categoryCues: Float32Array;
  /** How a scene sees any look: one rotation, then a twist of the product's category. */
  rotation: Float32Array;
  twists: { sign: Float32Array; perm: Int32Array }[];
}

export function computeEmbeddings(world: SynthWorld, dim: number): SynthEmbeddings {
  const L = Math.min(SYNTH_EMBEDDING_WEIGHTS.latentDim, dim);
  const rng = new Random(
    `synth-embeddings/${world.options.domain}/${world.options.seed}/${world.scenes.length}/${world.products.length}/${dim}`,
  );
  const latent = (rows: number, r: Random) => r.fillNormal(new Float32Array(rows * L), 1 / Math.sqrt(L));
  const categories = world.taxonomy.length;
  const space: LatentSpace = {
    L,
    styles: latent(world.styles, rng.fork('styles')),
    categoryDirs: latent(categories, rng.fork('categories')),
    categoryCues: latent(categories, rng.fork('category-cues')),
    rotation: orthonormalColumns(L, L, rng.fork('rotation')),
    twists: Array.from({ length: categories }, (_, k) => signedPermutation(L, rng.fork(`twist/${k}`))),
  };
  const lift = new Lift(
    orthonormalColumns(dim, L, rng.fork('lift')),
    dim,
    L,
    SYNTH_EMBEDDING_WEIGHTS.ambient,
    rng.fork('ambient'),
  );
  const products = productLatents(world, space, rng.fork('products'));
  const scenes = sceneLatents(world, space, products, rng.fork('scenes'));

  const lifted = (latentRows: Float32Array, n: number) => {
    const out = new Float32Array(n * dim);
    lift.matrix(latentRows, n, out);
    return out;
  };
  return {
    dim,
    products: { ids: world.products.map((p) => p.sig), data: lifted(products.shot, world.products.length) },
    scenesFull: { ids: world.scenes.map((s) => s.sig), data: lifted(scenes.full, world.scenes.length) },
    scenesHideProduct: { ids: scenes.hideIds, data: lifted(scenes.hidden, scenes.hideIds.length) },
  };
}

/** Each product's look (style, category, identity), its product shot (the look and a shot's noise), and how a
 * scene sees it (the look rotated and twisted by its category); rows of L values. */
function productLatents(world: SynthWorld, space: LatentSpace, productRng: Random) {
  const { L, styles, categoryDirs, rotation, twists } = space;
  const W = SYNTH_EMBEDDING_WEIGHTS;
  const P = world.products.length;
  const looks = new Float32Array(P * L);
  const seen = new Float32Array(P * L);
  const shots = new Float32Array(P * L);
  const jitter = new Float32Array(L);
  const identity = new Float32Array(L);
  const shot = new Float32Array(L);
  const rotated = new Float32Array(L);
  const twistA = Math.sqrt(1 - W.categoryTwist);
  const twistB = Math.sqrt(W.categoryTwist);
  world.products.forEach((p, i) => {
    productRng.fillNormal(jitter, 1 / Math.sqrt(L));
    productRng.fillNormal(identity, 1 / Math.sqrt(L));
    productRng.fillNormal(shot, 1 / Math.sqrt(L));
    const look = looks.subarray(i * L, (i + 1) * L);
    for (let l = 0; l < L; l++) {
      look[l] =
        W.style * (styles[p.style * L + l] + W.styleJitter * jitter[l]) +
        W.category * categoryDirs[p.category * L + l] +
        W.identity * identity[l];
      shots[i * L + l] = look[l] + W.productShot * shot[l];
    }
    matVec(rotation, look, rotated, L);
    const twist = twists[p.category];
    const out = seen.subarray(i * L, (i + 1) * L);
    for (let l = 0; l < L; l++) out[l] = twistA * rotated[l] + twistB * twist.sign[l] * rotated[twist.perm[l]];
  });
  return { looks, seen, shot: shots };
}

/** Each scene whole (its style through the rotation, every item's weighted view, clutter, distractors), and once
 * per item with that item's term mostly taken out (the hide-product view); rows of L values. */
function sceneLatents(
  world: SynthWorld,
  space: LatentSpace,
  products: { looks: Float32Array; seen: Float32Array },
  sceneRng: Random,
) {
  const { L, styles, categoryCues, rotation } = space;
  const { looks, seen } = products;
  const W = SYNTH_EMBEDDING_WEIGHTS;
  const rotatedStyles = new Float32Array(world.styles * L);
  for (let s = 0; s < world.styles; s++)
    matVec(rotation, styles.subarray(s * L, (s + 1) * L), rotatedStyles.subarray(s * L, (s + 1) * L), L);
  const pairCount = world.scenes.reduce((n, s) => n + s.items.length, 0);
  const full = new Float32Array(world.scenes.length * L);
  const hidden = new Float32Array(pairCount * L);
  const hideIds: string[] = [];
  const noise = new Float32Array(L);
  const x = new Float32Array(L);
  const terms: Float32Array[] = [];
  let pairRow = 0;
  world.scenes.forEach((scene, t) => {
    sceneRng.fillNormal(noise, 1 / Math.sqrt(L));
    for (let l = 0; l < L; l++) x[l] = W.sceneStyle * rotatedStyles[scene.style * L + l] + W.clutter * noise[l];
    for (const d of scene.distractors) for (let l = 0; l < L; l++) x[l] += W.distractor * seen[d * L + l];
    terms.length = 0;
    for (const item of scene.items) {
      sceneRng.fillNormal(noise, 1 / Math.sqrt(L));
      const w = itemWeight(item.bbox);
      const term = new Float32Array(L);
      const p = item.product;
      const k = world.products[p].category;
      for (let l = 0; l < L; l++)
        term[l] =
          w *
          (seen[p * L + l] +
            W.itemView * noise[l] +
            W.leak * looks[p * L + l] +
            W.categoryCue * categoryCues[k * L + l]);
      for (let l = 0; l < L; l++) x[l] += term[l];
      terms.push(term);
    }
    full.set(x, t * L);
    scene.items.forEach((item, j) => {
      for (let l = 0; l < L; l++) hidden[pairRow * L + l] = x[l] - (1 - W.hiddenResidue) * terms[j][l];
      hideIds.push(sceneProductKey(scene.sig, world.products[item.product].sig));
      pairRow++;
    });
  });
  return { full, hidden, hideIds };
}

/** Latent (L) → output (dim): a fixed map with orthonormal columns, ambient noise, L2 normalisation. */
class Lift {
  /** The map, dim × L row-major, in float64 (faster arithmetic in V8 than float32 loads). */
  private readonly map: Float64Array;
  /** Four latent rows, lifted together so each load of the map serves four outputs. */
  private readonly z: Float64Array[];
  private readonly noise: Float32Array;

  constructor(
    columns: Float32Array,
    private readonly dim: number,
    private readonly L: number,
    private readonly ambient: number,
    private readonly rng: Random,
  ) {
    this.map = Float64Array.from(columns);
    this.z = Array.from({ length: 4 }, () => new Float64Array(L));
    this.noise = new Float32Array(dim);
  }

  /** Lift `n` latent rows (n × L) into `out` (n × dim). */
  matrix(latent: Float32Array, n: number, out: Float32Array): void {
    const { map, dim, L } = this;
    const [z0, z1, z2, z3] = this.z;
    for (let r = 0; r < n; r += 4) {
      const k = Math.min(4, n - r);
      this.z.forEach((z, j) => (j < k ? z.set(latent.subarray((r + j) * L, (r + j + 1) * L)) : z.fill(0)));
      for (let d = 0; d < dim; d++) {
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        const base = d * L;
        for (let l = 0; l < L; l++) {
          const w = map[base + l];
          s0 += z0[l] * w;
          s1 += z1[l] * w;
          s2 += z2[l] * w;
          s3 += z3[l] * w;
        }
        out[r * dim + d] = s0;
        if (k > 1) out[(r + 1) * dim + d] = s1;
        if (k > 2) out[(r + 2) * dim + d] = s2;
        if (k > 3) out[(r + 3) * dim + d] = s3;
      }
      for (let j = 0; j < k; j++) this.finish(out.subarray((r + j) * dim, (r + j + 1) * dim));
    }
  }

  /** Add ambient noise and L2-normalise a lifted row in place. */
  private finish(row: Float32Array): void {
    const { dim, noise } = this;
    this.rng.fillApproxNormal(noise, this.ambient / Math.sqrt(dim));
    let norm = 0;
    for (let d = 0; d < dim; d++) {
      const v = row[d] + noise[d];
      row[d] = v;
      norm += v * v;
    }
    const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let d = 0; d < dim; d++) row[d] *= inv;
  }
}

/** A rows × cols matrix (row-major) whose columns are orthonormal: Gram–Schmidt on Gaussian columns. */
function orthonormalColumns(rows: number, cols: number, rng: Random): Float32Array {
  if (cols > rows) throw new RangeError(`orthonormalColumns: ${cols} columns do not fit in ${rows} rows`);
  const q = Array.from({ length: cols }, () => Float64Array.from({ length: rows }, () => rng.normal()));
  for (let c = 0; c < cols; c++) {
    for (let pass = 0; pass < 2; pass++)
      // twice is enough for numerical orthogonality
      for (let k = 0; k < c; k++) {
        let dot = 0;
        for (let r = 0; r < rows; r++) dot += q[c][r] * q[k][r];
        for (let r = 0; r < rows; r++) q[c][r] -= dot * q[k][r];
      }
    let norm = 0;
    for (let r = 0; r < rows; r++) norm += q[c][r] * q[c][r];
    const inv = 1 / Math.sqrt(norm);
    for (let r = 0; r < rows; r++) q[c][r] *= inv;
  }
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = q[c][r];
  return out;
}

function signedPermutation(n: number, rng: Random): { perm: Int32Array; sign: Float32Array } {
  const perm = Int32Array.from(rng.shuffle(Array.from({ length: n }, (_, i) => i)));
  const sign = Float32Array.from({ length: n }, () => (rng.bernoulli(0.5) ? -1 : 1));
  return { perm, sign };
}

/** out = M · v for a square L × L row-major M. */
function matVec(m: Float32Array, v: Float32Array, out: Float32Array, L: number): void {
  for (let r = 0; r < L; r++) {
    let s = 0;
    for (let c = 0; c < L; c++) s += m[r * L + c] * v[c];
    out[r] = s;
  }
}

const SHARD_ROWS = 16_384;

export interface StoreReport {
  view: EmbeddingView;
  dir: string;
  rows: number;
  appended: number;
}

/**
 * Refuse, before any work, sizes whose synthetic embeddings cannot be made here: computeEmbeddings holds every row
 * (products, scenes, pairs) in memory at once, and the stores take as much on disk.
 */
export async function checkRoomForEmbeddings(
  workdir: string,
  { scenes, products }: { scenes: number; products: number },
  dim: number,
): Promise<void> {
  const rows = products + scenes * (1 + MEAN_ITEMS_PER_SCENE); // a row per product, per scene and per pair
  const bytes = rows * dim * Float32Array.BYTES_PER_ELEMENT;
  const sizes = `--dim ${dim}: ${scenes} scenes and ${products} products make about ${Math.round(rows)} vectors`;
  // A container's memory limit where there is one (unlimited reads as 2^64), else the machine's.
  const memory = Math.min(process.constrainedMemory?.() || Infinity, totalmem());
  if (bytes > MEMORY_SHARE * memory)
    throw new InputError(
      `${sizes}, about ${formatBytes(bytes)}, held in memory at once (this machine has ${formatBytes(memory)}): lower --dim or the sizes`,
    );
  // Synthetic stores already there are kept (this world's) or replaced (another's): their room counts as free.
  const stores = await Promise.all(
    EMBEDDING_VIEWS.map((view) => folderBytes(workdirPaths(workdir).embeddings(SYNTH_MODEL, view))),
  );
  const free = (await freeBytes(workdir)) ?? Infinity;
  if (bytes > free + stores.reduce((a, b) => a + b, 0))
    throw new InputError(
      `${sizes}, about ${formatBytes(bytes)} on disk, and ${workdir} has ${formatBytes(free)} free: lower --dim or the sizes, or use another --workdir`,
    );
}

/** Pairs per scene on average (a scene holds 1 + a draw from ITEMS_PER_SCENE_WEIGHTS products). */
const MEAN_ITEMS_PER_SCENE = ITEMS_PER_SCENE_WEIGHTS.reduce((sum, w, i) => sum + w * (i + 1), 0);
/** The most of the machine's memory the synthetic embeddings may take (the world and the process need the rest). */
const MEMORY_SHARE = 0.75;

/**
 * Write the three views to workdir/embeddings/synthetic/<view>/. `provenance` (generator version, seed, sizes) goes
 * into meta.json: a store made from other options is replaced, one from the same options is completed (a killed run
 * resumes) or left alone.
 */
export async function writeSyntheticEmbeddings(
  workdir: string,
  world: SynthWorld,
  dim: number,
  provenance: Record<string, unknown>,
): Promise<StoreReport[]> {
  const stores: EmbeddingStore[] = [];
  for (const view of EMBEDDING_VIEWS) {
    const dir = workdirPaths(workdir).embeddings(SYNTH_MODEL, view);
    const meta: StoreMeta = { model: SYNTH_MODEL, dim, view, preprocessing: { synthetic: provenance } };
    if (await isOtherWorld(dir, meta)) {
      log(`${dir}: made from other synth options; replacing it`);
      await rm(dir, { recursive: true, force: true });
    }
    stores.push(await EmbeddingStore.openOrCreate(dir, meta));
  }
  const expected = [world.products.length, world.scenes.length, world.pairOrder.length];
  const complete = stores.every((s, i) => s.size === expected[i]);
  if (!complete) log(`computing synthetic embeddings: ${expected.reduce((a, b) => a + b)} rows of dim ${dim}`);
  const embeddings = complete ? undefined : computeEmbeddings(world, dim);
  const matrices = embeddings && [embeddings.products, embeddings.scenesFull, embeddings.scenesHideProduct];
  const reports: StoreReport[] = [];
  for (const [i, store] of stores.entries()) {
    let appended = 0;
    if (matrices) {
      const { ids, data } = matrices[i];
      const missing = ids.flatMap((id, row) => (store.has(id) ? [] : [row]));
      for (let start = 0; start < missing.length; start += SHARD_ROWS) {
        const rows = missing.slice(start, start + SHARD_ROWS);
        await store.append(
          rows.map((row) => ids[row]),
          gatherRows(data, rows, dim),
          'synth',
        );
        appended += rows.length;
      }
    }
    reports.push({ view: EMBEDDING_VIEWS[i], dir: store.dir, rows: store.size, appended });
  }
  return reports;
}

/**
 * Remove synthetic stores made for another world (other seed or sizes), so a dataset is never paired with
 * vectors of another: for `ctl data synth` without `--dim`. Returns the folders removed.
 */
export async function removeStaleSyntheticStores(
  workdir: string,
  provenance: Record<string, unknown>,
): Promise<string[]> {
  const removed: string[] = [];
  for (const view of EMBEDDING_VIEWS) {
    const dir = workdirPaths(workdir).embeddings(SYNTH_MODEL, view);
    const meta = await EmbeddingStore.readMeta(dir);
    if (meta && JSON.stringify(meta.preprocessing ?? null) !== JSON.stringify({ synthetic: provenance })) {
      log(`${dir}: made from other synth options; removing it`);
      await rm(dir, { recursive: true, force: true });
      removed.push(dir);
    }
  }
  return removed;
}

/** A store is there whose dim or synth provenance differs from `meta`'s. */
async function isOtherWorld(dir: string, meta: StoreMeta): Promise<boolean> {
  const have = await EmbeddingStore.readMeta(dir);
  if (!have) return false;
  return have.dim !== meta.dim || JSON.stringify(have.preprocessing ?? null) !== JSON.stringify(meta.preprocessing);
}
