#!/usr/bin/env node
// Build step: compile every WebAssembly text file under src/ (`name.wat`) with wabt into a TypeScript module beside
// it (`name.wasm.ts`, git-ignored) that exports the binary, so tsc carries it into dist/ and the runtime needs no
// toolchain. Run by `npm run build` and `npm run typecheck`.
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '../src');
const wabt = await wabtInit();
const files = (await readdir(src, { recursive: true })).filter((f) => f.endsWith('.wat')).sort();
for (const file of files) {
  const path = join(src, file);
  const module = wabt.parseWat(relative(process.cwd(), path), await readFile(path, 'utf8'), { simd: true });
  try {
    module.validate();
    const { buffer } = module.toBinary({});
    const ts =
      `// Generated from ${basename(file)} by scripts/compile-wat.mjs (npm run build): do not edit.\n` +
      `export const wasmBinary = Buffer.from('${Buffer.from(buffer).toString('base64')}', 'base64');\n`;
    const out = path.replace(/\.wat$/, '.wasm.ts');
    // Rewrite only on change, so watch-mode tools see no spurious edit.
    if ((await readFile(out, 'utf8').catch(() => '')) !== ts) await writeFile(out, ts);
  } finally {
    module.destroy();
  }
}
