// `ctl data stats`: what is in a normalised dataset, and whether it looks sane: counts, the category histogram,
// products per scene, bbox geometry, what loading skipped, and the size of every split part.
import type { Dataset } from '../dataset.js';
import type { Split } from '../types.js';

interface Summary {
  min: number;
  median: number;
  mean: number;
  max: number;
}

interface PartStats {
  pairs: number;
  scenes: number;
  /** Scenes of this part that also appear in the train part (0 for a scene-disjoint split). */
  scenesAlsoInTrain?: number;
}

export interface DatasetStats {
  domain: string;
  source: string;
  counts: { rows: number; pairs: number; scenes: number; products: number; categories: number };
  categories: { index: number; name: string; path: string; products: number; pairs: number }[];
  productsPerScene: Summary & { histogram: Record<string, number> };
  scenesPerProduct: Summary;
  bbox: {
    area: Summary;
    /** Boxes under 1% of the image, and over 90% of it. */
    tiny: number;
    nearlyWhole: number;
    /** Mean vertical centre (0 top .. 1 bottom) per category: shoes low, tops high. */
    centreYByCategory: Record<string, number>;
  };
  skipped: Record<string, number>;
  splits: Record<string, { seed: number; parts: Record<string, PartStats> }>;
}

export function computeStats(dataset: Dataset): DatasetStats {
  const categoryOf = new Map(dataset.products.map((p) => [p.sig, p.category]));
  const productsPerCategory = new Array<number>(dataset.categories.length).fill(0);
  for (const p of dataset.products) productsPerCategory[p.category]!++;
  const pairsPerCategory = new Array<number>(dataset.categories.length).fill(0);
  const centreYSum = new Array<number>(dataset.categories.length).fill(0);
  const areas: number[] = [];
  const scenesPerProduct = new Map<string, number>();
  for (const { product, bbox } of dataset.pairs) {
    const c = categoryOf.get(product)!;
    pairsPerCategory[c]!++;
    centreYSum[c]! += (bbox[1] + bbox[3]) / 2;
    areas.push((bbox[2] - bbox[0]) * (bbox[3] - bbox[1]));
    scenesPerProduct.set(product, (scenesPerProduct.get(product) ?? 0) + 1);
  }
  const perScene = dataset.scenes.map((s) => s.items.length);
  const histogram: Record<string, number> = {};
  for (const n of perScene) histogram[n] = (histogram[n] ?? 0) + 1;
  const skippedPairRows = Object.entries(dataset.skipped)
    .filter(([reason]) => reason.startsWith('pairs.'))
    .reduce((sum, [, n]) => sum + n, 0);

  return {
    domain: dataset.domain,
    source: dataset.source,
    counts: {
      rows: dataset.pairs.length + skippedPairRows,
      pairs: dataset.pairs.length,
      scenes: dataset.scenes.length,
      products: dataset.products.length,
      categories: dataset.categories.length,
    },
    categories: dataset.categories.map((c) => ({
      ...c,
      products: productsPerCategory[c.index]!,
      pairs: pairsPerCategory[c.index]!,
    })),
    productsPerScene: { ...summarise(perScene), histogram },
    scenesPerProduct: summarise([...scenesPerProduct.values()]),
    bbox: {
      area: summarise(areas),
      tiny: areas.filter((a) => a < 0.01).length,
      nearlyWhole: areas.filter((a) => a > 0.9).length,
      centreYByCategory: Object.fromEntries(
        dataset.categories
          .filter((c) => pairsPerCategory[c.index]! > 0)
          .map((c) => [c.name, round(centreYSum[c.index]! / pairsPerCategory[c.index]!)]),
      ),
    },
    skipped: dataset.skipped,
    splits: {
      scene: splitStats(dataset, dataset.splits.scene),
      seed: splitStats(dataset, dataset.splits.seed),
    },
  };
}

function splitStats(dataset: Dataset, split: Split): { seed: number; parts: Record<string, PartStats> } {
  const scenesOf = (indices: number[]) => new Set(indices.map((i) => dataset.pairs[i]!.scene));
  const trainScenes = scenesOf(split.parts.train ?? []);
  const parts: Record<string, PartStats> = {};
  for (const [part, indices] of Object.entries(split.parts)) {
    const scenes = scenesOf(indices);
    parts[part] = { pairs: indices.length, scenes: scenes.size };
    if (part !== 'train') parts[part]!.scenesAlsoInTrain = [...scenes].filter((s) => trainScenes.has(s)).length;
  }
  return { seed: split.seed, parts };
}

function summarise(values: number[]): Summary {
  if (values.length === 0) return { min: 0, median: 0, mean: 0, max: 0 };
  const sorted = Float64Array.from(values).sort();
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return {
    min: round(sorted[0]!),
    median: round(sorted[sorted.length >> 1]!),
    mean: round(mean),
    max: round(sorted[sorted.length - 1]!),
  };
}

function round(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}

/** The human report (stderr). */
export function formatStats(s: DatasetStats): string[] {
  const pct = (n: number, of: number) => `${((100 * n) / Math.max(of, 1)).toFixed(1)}%`;
  const lines = [
    `${s.domain} (${s.source}): ${s.counts.pairs} pairs (${s.counts.rows} rows read), ${s.counts.scenes} scenes, ` +
      `${s.counts.products} products, ${s.counts.categories} categories`,
    'categories (index, leaf, products, pairs):',
  ];
  const width = Math.max(...s.categories.map((c) => c.name.length));
  for (const c of s.categories)
    lines.push(
      `  ${String(c.index).padStart(3)}  ${c.name.padEnd(width)}  ${String(c.products).padStart(7)}  ${String(c.pairs).padStart(7)}  ${c.path}`,
    );
  const h = Object.entries(s.productsPerScene.histogram)
    .map(([k, n]) => `${k}:${n}`)
    .join(' ');
  lines.push(
    `products per scene: mean ${s.productsPerScene.mean}, median ${s.productsPerScene.median}, max ${s.productsPerScene.max} (${h})`,
  );
  lines.push(`scenes per product: mean ${s.scenesPerProduct.mean}, max ${s.scenesPerProduct.max}`);
  const a = s.bbox.area;
  lines.push(
    `bbox area: min ${a.min}, median ${a.median}, mean ${a.mean}, max ${a.max}; ` +
      `tiny (<1%) ${s.bbox.tiny}, nearly whole (>90%) ${s.bbox.nearlyWhole}`,
  );
  lines.push(
    `bbox centre y by category: ${Object.entries(s.bbox.centreYByCategory)
      .map(([k, y]) => `${k} ${y}`)
      .join(', ')}`,
  );
  const skipped = Object.entries(s.skipped);
  lines.push(`skipped rows: ${skipped.length ? skipped.map(([k, n]) => `${k} ${n}`).join(', ') : 'none'}`);
  for (const [scheme, split] of Object.entries(s.splits)) {
    const parts = Object.entries(split.parts).map(
      ([part, p]) =>
        `${part} ${p.pairs} pairs (${pct(p.pairs, s.counts.pairs)}) / ${p.scenes} scenes` +
        (p.scenesAlsoInTrain !== undefined ? `, ${p.scenesAlsoInTrain} scenes also in train` : ''),
    );
    lines.push(`split ${scheme} (seed ${split.seed}): ${parts.join('; ')}`);
  }
  return lines;
}
