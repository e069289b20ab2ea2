// The ort engine's dropout masks (src/train/ort/masks.ts), built (run `npm run build` first), drawn on real worker
// threads and inline: every step's masks are the keyed draws dropoutMask makes, drawn ahead or when asked.
import { describe, expect, test } from 'vitest';
import { dropoutMask } from '../src/model/layers.js';

const { MaskDrawer } = await import('../dist/train/ort/masks.js');

const SEED = 11;
const inputs = [
  { input: 'mask:scene', site: { name: 'scene_tower.net.2', rate: 0.1 }, rows: 6, cols: 40, bytes: false },
  { input: 'mask:product', site: { name: 'product_tower.net.2', rate: 0.3 }, rows: 12, cols: 24, bytes: true },
];

/** What the wasm engine draws for a step: the masks every engine must feed. */
function expected(step: number, mask: (typeof inputs)[number]): number[] {
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
            const values = set.get(mask.input);
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
