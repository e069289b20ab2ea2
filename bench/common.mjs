// What the bench scripts share: the repository root (they import the built code from dist/), progress lines on
// stderr, the median of the rounds, the load average, and what a NumPy/PyTorch baseline needs (its inputs as raw
// files, an environment that pins its BLAS threads).
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** One progress line on stderr (stdout is the result). */
export const say = (text) => process.stderr.write(text + '\n');

/** The median of a list of numbers (the mean of the middle two for an even count). */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The 1, 5 and 15 minute load averages, as /proc/loadavg prints them. */
export const loadAverage = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/** A typed array's bytes as the file `dir/name`, for a Python baseline to read with numpy.fromfile. */
export function writeRaw(dir, name, array) {
  writeFileSync(join(dir, name), new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
}

/**
 * The environment of a Python baseline on `threads` threads, the OpenBLAS kernel it picks printed
 * (OPENBLAS_VERBOSE=2), and OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset: some environments set them for another
 * processor, which slows a current OpenBLAS.
 */
export function blasEnv(threads) {
  const env = {
    ...process.env,
    OPENBLAS_NUM_THREADS: String(threads),
    OMP_NUM_THREADS: String(threads),
    OPENBLAS_VERBOSE: '2',
  };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return env;
}
