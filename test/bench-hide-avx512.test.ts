// bench/cpu/hide-avx512.c, which `node bench/train/run.mjs --isa avx2` preloads to measure the kernels of an
// AVX2-only machine: built with cc, it must take AVX-512 out of what CPUID answers (and nothing else), in a
// program and in Node (which installs its own SIGSEGV handler: ours must chain to it, WebAssembly included).
// Runs where the processor has AVX-512 and Linux can trap CPUID (the cpuid_fault flag); skips elsewhere.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, onTestFinished, test } from 'vitest';

const flags = existsSync('/proc/cpuinfo')
  ? (readFileSync('/proc/cpuinfo', 'utf8')
      .match(/^flags\s*:(.*)$/m)?.[1]
      .split(' ') ?? [])
  : [];
const hasCc = spawnSync('cc', ['--version']).status === 0;
const canHide = process.arch === 'x64' && flags.includes('cpuid_fault') && flags.includes('avx512f') && hasCc;

// Prints leaf 7's feature words as the program sees them.
const PROBE = `#include <cpuid.h>
#include <stdio.h>
int main(void) { unsigned a, b, c, d; __cpuid_count(7, 0, a, b, c, d); printf("%u %u %u\\n", b, c, d); return 0; }
`;

// A WebAssembly module with one page of memory whose export `load` reads an i32 at 128 KiB, past its end.
// prettier-ignore
const LOAD_OUT_OF_BOUNDS = [
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // types: () -> i32
  0x03, 0x02, 0x01, 0x00, // functions: one of type 0
  0x05, 0x03, 0x01, 0x00, 0x01, // memory: min 1 page
  0x07, 0x08, 0x01, 0x04, 0x6c, 0x6f, 0x61, 0x64, 0x00, 0x00, // export "load" = function 0
  0x0a, 0x0b, 0x01, 0x09, 0x00, 0x41, 0x80, 0x80, 0x08, 0x28, 0x02, 0x00, 0x0b, // i32.load (i32.const 0x20000)
];

function build(args: string[]) {
  const r = spawnSync('cc', args, { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}

test.runIf(canHide)('hides the AVX-512 feature bits and keeps the rest, in C and in Node', () => {
  // Made here, not at load: a skipped file runs no hooks, so a folder made at load would stay behind.
  const dir = mkdtempSync(join(tmpdir(), 'ctl-hide-avx512-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const library = join(dir, 'hide-avx512.so');
  build(['-O2', '-shared', '-fPIC', '-o', library, join(import.meta.dirname, '..', 'bench/cpu/hide-avx512.c'), '-ldl']);
  writeFileSync(join(dir, 'probe.c'), PROBE);
  build(['-o', join(dir, 'probe'), join(dir, 'probe.c')]);

  const leaf7 = (env: NodeJS.ProcessEnv) => {
    const r = spawnSync(join(dir, 'probe'), { encoding: 'utf8', env });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout.trim().split(' ').map(Number);
  };
  const [ebx, ecx, edx] = leaf7(process.env);
  const [hiddenEbx, hiddenEcx, hiddenEdx] = leaf7({ ...process.env, LD_PRELOAD: library });
  const AVX2 = 1 << 5;
  const AVX512F = 1 << 16;
  expect(ebx & AVX512F).not.toBe(0);
  expect(hiddenEbx & AVX512F).toBe(0);
  expect(hiddenEbx & AVX2).toBe(AVX2);
  // Only AVX-512 bits go: the hidden words are the real ones with some bits cleared, none set.
  for (const [real, hidden] of [
    [ebx, hiddenEbx],
    [ecx, hiddenEcx],
    [edx, hiddenEdx],
  ])
    expect((hidden & ~real) >>> 0).toBe(0);

  // Node resets signal handlers and installs its own SIGSEGV handler, through which V8 turns a WebAssembly
  // out-of-bounds access into a RuntimeError; onnxruntime reads CPUID when it loads. The preload must keep both
  // working and say so in the environment.
  const node = spawnSync(
    process.execPath,
    [
      '-e',
      `require('onnxruntime-node');
       const { load } = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(${JSON.stringify(LOAD_OUT_OF_BOUNDS)}))).exports;
       try { load(); } catch (e) { console.log(e.constructor.name, process.env.CTL_BENCH_HIDDEN_ISA); }`,
    ],
    { cwd: join(import.meta.dirname, '..'), encoding: 'utf8', env: { ...process.env, LD_PRELOAD: library } },
  );
  expect(node.status, node.stderr).toBe(0);
  expect(node.stdout.trim()).toBe('RuntimeError avx512');
});
