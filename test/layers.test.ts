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
    const upward = folderImports()
      .filter(({ from, to }) => LAYER[to] > LAYER[from])
      .map(({ file, spec, from, to }) => `${file} imports ${spec} (${from} → ${to})`);
    expect(upward).toEqual([]);
  });

  it('no two folders import each other, directly or around a loop', () => {
    const edges = new Map<string, Set<string>>();
    for (const { from, to } of folderImports())
      if (from !== to) edges.set(from, (edges.get(from) ?? new Set()).add(to));
    const loops: string[] = [];
    const visit = (folder: string, path: string[]) => {
      for (const next of edges.get(folder) ?? []) {
        if (next === path[0]) loops.push([...path, next].join(' → '));
        else if (!path.includes(next) && next > path[0]) visit(next, [...path, next]);
      }
    };
    for (const folder of edges.keys()) visit(folder, [folder]);
    expect(loops).toEqual([]);
  });
});

/** Every relative import in src/, with the top-level folders it goes from and to. */
function folderImports(): { file: string; spec: string; from: string; to: string }[] {
  return sourceFiles(SRC).flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map(([, spec]) => ({
      file: relative(SRC, file),
      spec,
      from: topOf(file),
      to: topOf(resolve(dirname(file), spec)),
    })),
  );
}
