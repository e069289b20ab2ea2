// The synthetic world behind `ctl data synth` (run.ts writes it): an STL-shaped dataset with planted structure.
//
// The hidden structure: every scene has a latent style; its products are drawn mostly from that style's products
// of the scene's categories (a quarter are off-style); products are reused across scenes with a skewed popularity,
// like the real catalogue (~72K pairs over ~38K products). Everything is a pure function of the options.
import type { Domain, BBox } from '../types.js';
import { ITEMS_PER_SCENE_WEIGHTS, taxonomyOf, type TaxonomyEntry } from './taxonomy.js';
import { Random } from '../../util/random.js';
import { InputError } from '../../util/errors.js';

export interface WorldOptions {
  scenes: number;
  products: number;
  seed: number;
  domain: Domain;
}

export interface SynthProduct {
  sig: string;
  /** Index into the domain's taxonomy (taxonomy.ts), not the dataset's sorted vocabulary. */
  category: number;
  style: number;
}

export interface SynthItem {
  /** Index into `SynthWorld.products`. */
  product: number;
  bbox: BBox;
}

export interface SynthScene {
  sig: string;
  style: number;
  items: SynthItem[];
  /** Products that are not the scene's but leave a trace in it (people in the background, a mirror): noise. */
  distractors: number[];
}

export interface SynthWorld {
  options: WorldOptions;
  taxonomy: TaxonomyEntry[];
  styles: number;
  /** Only products that occur in at least one scene (the released files list no others). */
  products: SynthProduct[];
  scenes: SynthScene[];
  /** The pairs file's rows, in file order: [scene index, item index]. */
  pairOrder: [number, number][];
}

/** Share of scene slots filled with a product of another style than the scene's. */
const OFF_STYLE_RATE = 0.25;
/** Share of scenes (of 2+ items) holding two products of one category. */
const REPEAT_CATEGORY_RATE = 0.02;
const DISTRACTORS_PER_SCENE = 2;

/** The dataset's latent styles: about √products, so each style holds ~√products products. */
function styleCount(products: number): number {
  return Math.max(2, Math.round(Math.sqrt(products)));
}

export function generateWorld(options: WorldOptions): SynthWorld {
  const { scenes: sceneCount, products: productCount, seed, domain } = options;
  if (!(sceneCount >= 1) || !(productCount >= 1)) throw new InputError('synth: --scenes and --products must be >= 1');
  const taxonomy = taxonomyOf(domain);
  const root = new Random(`synth/${domain}/${seed}/${sceneCount}/${productCount}`);
  const styles = styleCount(productCount);
  const styleWeights = Array.from({ length: styles }, () => 0);
  const styleRng = root.fork('styles');
  for (let s = 0; s < styles; s++) styleWeights[s] = Math.exp(0.5 * styleRng.normal());
  const drawStyle = styleRng.weightedSampler(styleWeights);

  // Products: real-like category proportions, a style each, a popularity each.
  const productRng = root.fork('products');
  const perCategory = apportion(
    taxonomy.map((t) => t.count),
    productCount,
  );
  const candidates: Candidate[] = [];
  perCategory.forEach((n, category) => {
    for (let i = 0; i < n; i++)
      candidates.push({ category, style: drawStyle(), popularity: Math.exp(0.7 * productRng.normal()) });
  });

  // Scenes: a style, 1..5 distinct categories (one per group), each slot on- or off-style.
  const sceneRng = root.fork('scenes');
  const drawItemCount = sceneRng.weightedSampler(ITEMS_PER_SCENE_WEIGHTS);
  const sceneStyles: number[] = [];
  const slots: Slot[] = [];
  for (let t = 0; t < sceneCount; t++) {
    sceneStyles.push(drawStyle());
    const categories = drawCategories(sceneRng, taxonomy, perCategory, drawItemCount() + 1);
    for (const category of categories) slots.push({ scene: t, category, onStyle: !sceneRng.bernoulli(OFF_STYLE_RATE) });
  }

  const slotProduct = fillSlots(root.fork('assign'), taxonomy, candidates, slots, sceneStyles);

  // Keep the candidates some slot took, in candidate order, and give everything a signature. productIndexOf[c] is
  // candidate c's index in `products` (-1: no slot took it).
  const productIndexOf = new Int32Array(candidates.length).fill(-1);
  const taken = new Uint8Array(candidates.length);
  for (const p of slotProduct) if (p >= 0) taken[p] = 1;
  const products: SynthProduct[] = [];
  const sigRng = root.fork('signatures');
  const sigs = new Set<string>();
  const newSig = (): string => {
    for (;;) {
      const sig = sigRng.hex(16);
      if (sigs.has(sig)) continue;
      sigs.add(sig);
      return sig;
    }
  };
  candidates.forEach((c, i) => {
    if (!taken[i]) return;
    productIndexOf[i] = products.length;
    products.push({ sig: newSig(), category: c.category, style: c.style });
  });

  const placeRng = root.fork('placement');
  const scenes: SynthScene[] = sceneStyles.map((style) => ({ sig: newSig(), style, items: [], distractors: [] }));
  const frames = scenes.map(() => sceneFrame(placeRng));
  slots.forEach((slot, i) => {
    const p = slotProduct[i];
    if (p < 0) return;
    const product = productIndexOf[p];
    const bbox = placeItem(placeRng, taxonomy[products[product].category], frames[slot.scene]);
    scenes[slot.scene].items.push({ product, bbox });
  });
  const distractorRng = root.fork('distractors');
  for (const scene of scenes)
    for (let d = 0; d < DISTRACTORS_PER_SCENE && products.length > 0; d++)
      scene.distractors.push(distractorRng.int(products.length));

  // Scenes whose every slot went unfilled (only possible in tiny worlds) are dropped: the pairs file cannot list them.
  const kept = scenes.filter((s) => s.items.length > 0);
  const pairOrder: [number, number][] = [];
  kept.forEach((s, t) => s.items.forEach((_, j) => pairOrder.push([t, j])));
  root.fork('pair-order').shuffle(pairOrder);
  return { options, taxonomy, styles, products, scenes: kept, pairOrder };
}

interface Candidate {
  category: number;
  style: number;
  popularity: number;
}

interface Slot {
  scene: number;
  category: number;
  onStyle: boolean;
}

/**
 * The candidate product in each slot (-1: none), category by category: first every product gets one scene of its
 * own style, then the open slots draw by popularity (on-style slots from the style's products, off-style slots from
 * the whole category), never a product twice in a scene; products still without a scene take an empty slot, or one
 * from a product that has several, preferring their own style.
 */
function fillSlots(
  rng: Random,
  taxonomy: TaxonomyEntry[],
  candidates: Candidate[],
  slots: Slot[],
  sceneStyles: number[],
): Int32Array {
  const sceneProducts: Set<number>[] = sceneStyles.map(() => new Set());
  const slotProduct = new Int32Array(slots.length).fill(-1);
  const uses = new Int32Array(candidates.length);
  const take = (slot: number, product: number) => {
    slotProduct[slot] = product;
    uses[product]++;
    sceneProducts[slots[slot].scene].add(product);
  };

  taxonomy.forEach((_, category) => {
    const members = candidates.flatMap((p, i) => (p.category === category ? [i] : []));
    if (members.length === 0) return;
    const mySlots = slots.flatMap((s, i) => (s.category === category ? [i] : []));

    // One scene of its own style for every product that can have one.
    const openOnStyle = groupBy(
      rng.shuffle(mySlots.filter((i) => slots[i].onStyle)),
      (i) => sceneStyles[slots[i].scene],
    );
    const uncovered: number[] = [];
    for (const p of rng.shuffle([...members])) {
      const slot = openOnStyle.get(candidates[p].style)?.pop();
      if (slot === undefined) uncovered.push(p);
      else take(slot, p);
    }

    // The open slots: a product still without a scene where one fits, else a draw by popularity.
    const drawFromCategory = samplerOver(rng, members, candidates);
    const byStyle = groupBy(members, (i) => candidates[i].style);
    const drawFromStyle = new Map([...byStyle].map(([style, ps]) => [style, samplerOver(rng, ps, candidates)]));
    for (const slot of mySlots) {
      if (slotProduct[slot] >= 0) continue;
      const scene = sceneProducts[slots[slot].scene];
      const own = slots[slot].onStyle ? drawFromStyle.get(sceneStyles[slots[slot].scene]) : undefined;
      const leftover = own ? undefined : uncovered.findIndex((p) => !scene.has(p));
      const pick =
        leftover !== undefined && leftover >= 0
          ? uncovered.splice(leftover, 1)[0]
          : (drawDistinct(own ?? drawFromCategory, scene) ?? drawDistinct(drawFromCategory, scene));
      if (pick !== undefined) take(slot, pick);
    }

    // The products still uncovered displace a product that has other scenes.
    for (const p of uncovered) {
      const fits = (slot: number) =>
        (slotProduct[slot] < 0 || uses[slotProduct[slot]] > 1) && !sceneProducts[slots[slot].scene].has(p);
      const slot =
        mySlots.find((i) => fits(i) && sceneStyles[slots[i].scene] === candidates[p].style) ?? mySlots.find(fits);
      if (slot === undefined) continue;
      const previous = slotProduct[slot];
      if (previous >= 0) {
        uses[previous]--;
        sceneProducts[slots[slot].scene].delete(previous);
      }
      take(slot, p);
    }
  });
  return slotProduct;
}

/** Split `total` into integer parts proportional to `weights` (largest remainder), every part >= 1 when possible. */
export function apportion(weights: number[], total: number): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((w) => (w / sum) * total);
  const parts = exact.map(Math.floor);
  const order = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  const remainder = total - parts.reduce((a, b) => a + b, 0);
  for (let k = 0; k < remainder; k++) parts[order[k % order.length][1]]++;
  if (total >= weights.length) {
    for (let i = 0; i < parts.length; i++) {
      if (parts[i] > 0) continue;
      const largest = parts.indexOf(Math.max(...parts));
      parts[largest]--;
      parts[i]++;
    }
  }
  return parts;
}

/** `count` categories for one scene, by share, without replacement, one per group; rarely a repeated category. */
function drawCategories(rng: Random, taxonomy: TaxonomyEntry[], share: number[], count: number): number[] {
  const weights = [...share];
  const chosen: number[] = [];
  while (chosen.length < count && weights.some((w) => w > 0)) {
    const c = rng.weighted(weights);
    chosen.push(c);
    weights[c] = 0;
    const group = taxonomy[c].group;
    if (group) taxonomy.forEach((t, i) => t.group === group && (weights[i] = 0));
  }
  if (chosen.length >= 2 && rng.bernoulli(REPEAT_CATEGORY_RATE)) {
    const repeatable = chosen.filter((c) => !taxonomy[c].group);
    if (repeatable.length > 0) chosen[chosen.length - 1] = rng.pick(repeatable);
  }
  return chosen;
}

function groupBy<K>(items: number[], key: (i: number) => K): Map<K, number[]> {
  const groups = new Map<K, number[]>();
  for (const i of items) {
    const k = key(i);
    const list = groups.get(k);
    if (list) list.push(i);
    else groups.set(k, [i]);
  }
  return groups;
}

/** Draw among `members` by popularity. */
function samplerOver(rng: Random, members: number[], candidates: { popularity: number }[]): () => number {
  const draw = rng.weightedSampler(members.map((i) => candidates[i].popularity));
  return () => members[draw()];
}

/** A draw not already in the scene (a scene never lists one product twice), or undefined after a few tries. */
function drawDistinct(draw: () => number, scene: Set<number>): number | undefined {
  for (let attempt = 0; attempt < 20; attempt++) {
    const p = draw();
    if (!scene.has(p)) return p;
  }
  return undefined;
}

interface Frame {
  zoom: number;
  dx: number;
  dy: number;
}

/** How the photographer framed the scene: all its items move and scale together. */
function sceneFrame(rng: Random): Frame {
  return { zoom: rng.range(0.9, 1.1), dx: rng.range(-0.05, 0.05), dy: rng.range(-0.03, 0.03) };
}

/** A category-plausible box, inside 0..1 with left < right and top < bottom, rounded like the released files. */
function placeItem(rng: Random, entry: TaxonomyEntry, frame: Frame): BBox {
  const { place } = entry;
  let cx = rng.range(...place.cx);
  if (place.mirror && rng.bernoulli(0.5)) cx = 1 - cx;
  const cy = rng.range(...place.cy);
  const w = rng.range(...place.w) * frame.zoom;
  const h = rng.range(...place.h) * frame.zoom;
  const x = 0.5 + (cx - 0.5) * frame.zoom + frame.dx;
  const y = 0.5 + (cy - 0.5) * frame.zoom + frame.dy;
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  let left = clamp(x - w / 2);
  let right = clamp(x + w / 2);
  let top = clamp(y - h / 2);
  let bottom = clamp(y + h / 2);
  // Keep at least 1% of the frame after clamping at an edge.
  if (right - left < 0.01) [left, right] = left > 0.5 ? [0.99, 1] : [0, 0.01];
  if (bottom - top < 0.01) [top, bottom] = top > 0.5 ? [0.99, 1] : [0, 0.01];
  const round = (v: number) => Math.round(v * 1e4) / 1e4;
  return [round(left), round(top), round(right), round(bottom)];
}
