// The seed split must match CPython's `random` bit for bit: vectors here are produced by python3 itself.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { PythonRandom } from '../src/data/stl/python-random.js';
import { seedSplit } from '../src/data/stl/splits.js';

const SEEDS = [
  '0',
  '1',
  '42',
  '-7',
  '4294967295',
  '4294967296',
  '4294967301',
  '18446744073709551619',
  '12345678901234567890123',
];

const PYTHON = String.raw`
import json, random, sys
seeds = [int(s) for s in sys.argv[1:]]
out = {"shuffles": {}, "bits": {}, "below": {}, "long": None, "cuts": {}}
for s in seeds:
    out["shuffles"][str(s)] = {}
    for n in (1, 2, 20, 1000):
        random.seed(s); x = list(range(n)); random.shuffle(x); out["shuffles"][str(s)][str(n)] = x
    r = random.Random(s)
    out["bits"][str(s)] = [str(r.getrandbits(k)) for k in (1, 5, 31, 32, 33, 64, 100, 0, 7)]
    r = random.Random(s)
    out["below"][str(s)] = [r._randbelow(n) for n in (1, 2, 3, 1000, 2**31, 2**32 - 1, 2**32 + 1, 2**52 + 7, 2**53 - 1)]
random.seed(42); x = list(range(100000)); random.shuffle(x); out["long"] = x
out["cuts"] = {str(n): int(0.9 * n) for n in list(range(0, 2000)) + [72198, 99999, 100000, 123457]}
print(json.dumps(out))
`;

function runPython():
  | {
      shuffles: Record<string, Record<string, number[]>>;
      bits: Record<string, string[]>;
      below: Record<string, number[]>;
      long: number[];
      cuts: Record<string, number>;
    }
  | undefined {
  const result = spawnSync('python3', ['-c', PYTHON, ...SEEDS], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (result.error || result.status !== 0) return undefined;
  return JSON.parse(result.stdout);
}

const python = runPython();

describe('PythonRandom', () => {
  it('shuffles range(20) with seed 42 as CPython does', () => {
    const x = new PythonRandom(42).shuffle(Array.from({ length: 20 }, (_, i) => i));
    expect(x).toEqual([19, 5, 14, 4, 9, 13, 15, 18, 6, 12, 17, 10, 1, 11, 2, 16, 7, 8, 0, 3]);
  });

  it('reseeding restarts the stream', () => {
    const r = new PythonRandom(42);
    const first = r.getrandbits(64);
    r.seed(42);
    expect(r.getrandbits(64)).toBe(first);
  });

  describe.skipIf(!python)('against python3', () => {
    it('shuffle matches for small and huge seeds (beyond 2^32 and 2^64) and several lengths', () => {
      for (const seed of SEEDS)
        for (const [n, expected] of Object.entries(python!.shuffles[seed]!)) {
          const x = new PythonRandom(BigInt(seed)).shuffle(Array.from({ length: Number(n) }, (_, i) => i));
          expect(x, `seed ${seed}, n ${n}`).toEqual(expected);
        }
    });

    it('getrandbits matches, including k > 32 and k = 0', () => {
      for (const seed of SEEDS) {
        const r = new PythonRandom(BigInt(seed));
        const got = [1, 5, 31, 32, 33, 64, 100, 0, 7].map((k) => r.getrandbits(k).toString());
        expect(got, `seed ${seed}`).toEqual(python!.bits[seed]);
      }
    });

    it('_randbelow matches, including bounds above 2^32', () => {
      for (const seed of SEEDS) {
        const r = new PythonRandom(BigInt(seed));
        const got = [1, 2, 3, 1000, 2 ** 31, 2 ** 32 - 1, 2 ** 32 + 1, 2 ** 52 + 7, 2 ** 53 - 1].map((n) =>
          r.randbelow(n),
        );
        expect(got, `seed ${seed}`).toEqual(python!.below[seed]);
      }
    });

    it('shuffles a 100K list exactly', () => {
      const x = new PythonRandom(42).shuffle(Array.from({ length: 100_000 }, (_, i) => i));
      expect(x).toEqual(python!.long);
    });

    it('the seed split cuts where int(0.9 * n) does and keeps the shuffled order', () => {
      for (const [n, cut] of Object.entries(python!.cuts)) expect(Math.trunc(0.9 * Number(n)), `n ${n}`).toBe(cut);
      const n = 100_000;
      const split = seedSplit(
        Array.from({ length: n }, (_, i) => i),
        n,
        42,
      );
      expect(split.parts.train).toEqual(python!.long.slice(0, python!.cuts['100000']));
      expect(split.parts.val).toEqual(python!.long.slice(python!.cuts['100000']));
    });
  });
});
