// What the bench scripts share: the repository root (they import the built code from dist/), progress lines on
// stderr, the median of the rounds, the load average, what a NumPy/PyTorch baseline needs (its inputs as raw
// files, an environment that pins its BLAS threads, what it lacks), and a run with AVX-512 hidden (--isa avx2).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

// As ctl itself (src/cli.ts): no onnxruntime telemetry, and no /tmp/mat-debug-<pid>.log from each bench process.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

/** The repository root. */
export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** One progress line on stderr (stdout is the result). */
export const say = (text) => process.stderr.write(text + '\n');

/**
 * The bench's flags (node:util parseArgs `options`), checked before any work: `counts` are whole numbers of at least
 * their minimum (returned as numbers), `choices` one of their values, `lists` comma lists of their values (`'count'`:
 * of whole numbers >= 1; empty only when named in `mayBeEmpty`). A bad flag ends the bench with one line naming it
 * (exit 2), not a NaN result or a hang.
 */
export function benchArgs(options, { counts = {}, choices = {}, lists = {}, mayBeEmpty = [] } = {}) {
  const fail = (message) => {
    say(`${basename(process.argv[1])}: ${message}`);
    process.exit(2);
  };
  let values;
  try {
    ({ values } = parseArgs({ options }));
  } catch (err) {
    fail(err.message);
  }
  const isCount = (text, min) => /^\d+$/.test(text) && Number(text) >= min;
  for (const [flag, min] of Object.entries(counts)) {
    if (values[flag] === undefined) continue;
    if (!isCount(values[flag], min)) fail(`--${flag}: expected a whole number >= ${min}, got '${values[flag]}'`);
    values[flag] = Number(values[flag]);
  }
  for (const [flag, allowed] of Object.entries(choices))
    if (!allowed.includes(values[flag]))
      fail(`--${flag}: expected one of ${allowed.join(', ')}, got '${values[flag]}'`);
  for (const [flag, allowed] of Object.entries(lists)) {
    if (values[flag] === '' && mayBeEmpty.includes(flag)) continue;
    const fits = (item) => (allowed === 'count' ? isCount(item, 1) : allowed.includes(item));
    const bad = values[flag].split(',').find((item) => !fits(item));
    if (bad !== undefined)
      fail(
        `--${flag}: '${bad}' is not ${allowed === 'count' ? 'a whole number >= 1' : `one of ${allowed.join(', ')}`}`,
      );
  }
  return values;
}

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

/**
 * The BLAS a PyTorch baseline's matrix products ran on, from the `blas` and `blas_kind` its script reports
 * (bench/train/torch_bench.py finds them) and the OpenBLAS kernel OPENBLAS_VERBOSE printed (`kernel`).
 */
export function torchBlasName({ blas, blas_kind: kind, kernel }) {
  if (kind === 'cuda') return 'cuBLAS';
  if (kind === 'mkl') return 'MKL';
  if (kind === 'openblas') return `OpenBLAS ${kernel}`;
  return `${blas ?? 'an unknown BLAS'} (not OpenBLAS or MKL)`;
}

/** Debian's packages of the Python modules the baselines import. */
const DEBIAN_PACKAGES = { numpy: 'python3-numpy', torch: 'python3-torch', PIL: 'python3-pil' };

/**
 * Why `python` cannot run a baseline that imports `modules` (what to install), or null when it can: checked before
 * a bench does any work, so a missing module does not end a long run in a traceback.
 */
export function pythonMissing(python, modules) {
  const p = spawnSync(python, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8' });
  if (p.error) return `${python} does not run (${p.error.code}): pass --python PATH`;
  if (p.status === 0) return null;
  const module = p.stderr.match(/No module named '([^'.]+)/)?.[1];
  const debian = module && DEBIAN_PACKAGES[module];
  return debian
    ? `${python} has no ${module} module: on Debian, apt-get install --no-install-recommends ${debian}`
    : `${python} cannot import ${modules.join(', ')}: ${p.stderr.trim().split('\n').pop()}`;
}

/** /proc/cpuinfo (Linux; empty elsewhere), read once. */
let cpuinfoText;

/** A field of the first processor in /proc/cpuinfo, or undefined. */
function cpuinfo(field) {
  cpuinfoText ??= existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  return cpuinfoText.match(new RegExp(`^${field}\\s*:\\s?(.*)$`, 'm'))?.[1];
}

/**
 * The processor's name, its family and model (a VM's name often hides which generation it is), and the widest
 * vector instructions the bench's kernels may use (with --isa avx2, the kernels of an AVX2-only machine).
 */
export function describeCpu() {
  const flags = cpuinfo('flags')?.split(' ') ?? [];
  const widest = ['avx512f', 'avx2', 'avx'].find((flag) => flags.includes(flag));
  const names = { avx512f: 'AVX-512', avx2: 'AVX2', avx: 'AVX' };
  const isa =
    process.env.CTL_BENCH_HIDDEN_ISA === 'avx512'
      ? 'AVX-512 hidden: AVX2 kernels'
      : `native kernels${widest ? `: ${names[widest]}` : ''}`;
  const cpuFamily = cpuinfo('cpu family');
  const family = cpuFamily ? ` (family ${cpuFamily} model ${cpuinfo('model')})` : '';
  return `${cpus()[0]?.model ?? 'unknown CPU'}${family}, ${cpus().length} cores (${isa})`;
}

/**
 * `--isa avx2`: runs this bench again in a child process with AVX-512 hidden from it and from its children
 * (bench/cpu/hide-avx512.c, built here with cc and preloaded), so onnxruntime's MLAS, OpenBLAS and PyTorch run the
 * kernels they run on an AVX2-only machine, on this machine's cores; the parent exits with the child's status.
 * Returns in the child, and at once for `native` or a processor without AVX-512. Needs Linux on x86-64 with CPUID
 * faulting (cpuid_fault).
 */
export function runWithIsa(isa) {
  if (isa === 'native') return;
  if (isa !== 'avx2') {
    say(`--isa: expected native or avx2, got ${isa}`);
    process.exit(2);
  }
  if (process.env.CTL_BENCH_ISA_CHILD) {
    // The library's constructor sets this; without it the preload did not take.
    if (process.env.CTL_BENCH_HIDDEN_ISA === 'avx512') return;
    say("--isa avx2: the preloaded bench/cpu/hide-avx512 library did not load (see the loader's message above)");
    process.exit(3);
  }
  const flags = cpuinfo('flags')?.split(' ') ?? [];
  if (flags.includes('avx2') && !flags.includes('avx512f')) {
    say('--isa avx2: this processor has no AVX-512, so its native kernels are the AVX2 ones: nothing to hide');
    return;
  }
  if (!flags.includes('cpuid_fault')) {
    say('--isa avx2: this machine cannot hide AVX-512 (no CPUID faulting: cpuid_fault is not in /proc/cpuinfo)');
    process.exit(3);
  }
  if (!flags.includes('avx2')) {
    say('--isa avx2: this processor has no AVX2');
    process.exit(3);
  }
  const dir = mkdtempSync(join(tmpdir(), 'ctl-bench-isa-'));
  const library = join(dir, 'hide-avx512.so');
  const source = join(repo, 'bench/cpu/hide-avx512.c');
  const cc = spawnSync('cc', ['-O2', '-shared', '-fPIC', '-o', library, source, '-ldl'], { stdio: 'inherit' });
  if (cc.status !== 0 || !existsSync(library)) {
    say(`--isa avx2: could not build ${source} with cc (${cc.error?.message ?? `exit ${cc.status}`})`);
    rmSync(dir, { recursive: true, force: true });
    process.exit(3);
  }
  const preload = [library, process.env.LD_PRELOAD].filter(Boolean).join(' ');
  const child = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, LD_PRELOAD: preload, CTL_BENCH_ISA_CHILD: '1' },
  });
  rmSync(dir, { recursive: true, force: true });
  process.exit(child.status ?? 1);
}
