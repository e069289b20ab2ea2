// Layers only look down: util → data → model → train / eval → orchestration → cli. Every import between the
// top-level folders of src/ must go to a folder of the same or a lower layer; a new folder must be given a layer.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(new URL('../src', import.meta.url).pathname);

const LAYER: Record<string, number> = {
  util: 0,
  onnx: 1, // the ONNX writer: a format, like data's .npy
  data: 1,
  model: 2,
  download: 2,
  embed: 3,
  train: 4,
  eval: 4,
  export: 5,
  interop: 5,
  merge: 5,
  serve: 5,
  demo: 6,
  reproduce: 6,
  'cli.ts': 7,
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : name.endsWith('.ts') ? [path] : [];
  });
}

const topOf = (path: string) => relative(SRC, path).split('/')[0];

describe('layers', () => {
  it('every top-level folder of src has a layer', () => {
    expect(readdirSync(SRC).filter((name) => !(name in LAYER))).toEqual([]);
  });

  it('no import looks up a layer', () => {
    const upward: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const text = readFileSync(file, 'utf8');
      for (const [, spec] of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
        const from = topOf(file);
        const to = topOf(resolve(dirname(file), spec));
        if (LAYER[to] > LAYER[from]) upward.push(`${relative(SRC, file)} imports ${spec} (${from} → ${to})`);
      }
    }
    expect(upward).toEqual([]);
  });
});
