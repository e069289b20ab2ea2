// The ort engine's dropout masks (src/train/ort/masks.ts), built (run `npm run build` first), drawn on real worker
// threads and inline: every step's masks are the keyed draws dropoutMask makes, drawn ahead or when asked.
import { describe, expect, test } from 'vitest';
import { Dropout, dropoutMask, Scope } from '../src/model/layers.js';
import type { MaskInput } from '../src/train/ort/step-graph.js';

// The built module (its workers load dist/), typed by its source; a path in a variable keeps tsc out of dist/.
const built = '../dist/train/ort/masks.js';
const { MaskDrawer }: typeof import('../src/train/ort/masks.js') = await import(built);

const SEED = 11;
/** A dropout layer at a module path. */
const site = (path: string, rate: number) =>
  new Dropout(
    path.split('.').reduce((scope, name) => scope.child(name), Scope.root()),
    rate,
  );

const inputs: MaskInput[] = [
  { input: 'mask:scene', site: site('scene_tower.net.2', 0.1), rows: 6, cols: 40, bytes: false },
  { input: 'mask:product', site: site('product_tower.net.2', 0.3), rows: 12, cols: 24, bytes: true },
];

/** What the wasm engine draws for a step: the masks every engine must feed. */
function expected(step: number, mask: MaskInput): number[] {
  const rowIds = Int32Array.from({ length: mask.rows }, (_, i) => i);
  const drawn = dropoutMask([SEED, step, mask.site.name], rowIds, mask.cols, mask.site.rate);
  return Array.from(drawn, (v) => (mask.bytes ? (v === 0 ? 0 : 1) : v));
}

describe('MaskDrawer', () => {
  test.each([2, 0])(
    'with %i worker threads: steps in order, a jump, another layout, and back: the keyed masks each time',
    async (workers) => {
      const drawer = MaskDrawer.start(SEED, workers);
      const other = inputs.map((m) => ({ ...m, rows: m.rows / 2 })); // a last, smaller batch
      try {
        for (const [step, layout] of [
          [0, inputs],
          [1, inputs],
          [2, inputs],
          [7, inputs], // not the step drawn ahead: drawn when asked
          [8, other],
          [8, inputs],
          [9, inputs],
        ] as const) {
          const set = await drawer.masks(step, layout);
          for (const mask of layout) {
            const values = set.get(mask.input)!;
            expect(values).toBeInstanceOf(mask.bytes ? Uint8Array : Float32Array);
            expect(Array.from(values), `step ${step}, ${mask.input}`).toEqual(expected(step, mask));
          }
        }
      } finally {
        await drawer.close();
      }
    },
  );
});
