// JSON syntax errors name the file, and the line and column of the error; the paths where two values differ.
import { describe, expect, it } from 'vitest';
import { differingPaths, parseJsonFile, valueAt } from '../src/util/json.js';

const errorOf = (text: string) => {
  try {
    parseJsonFile(text, 'f.json');
  } catch (err) {
    return (err as Error).message;
  }
  return 'parsed';
};

describe('parseJsonFile', () => {
  it('gives the line and column where JSON.parse gives a place', () => {
    expect(errorOf('{\n  "epochs": 5\n  "batchSize": 64\n}\n')).toMatch(/^f\.json:3:3: not valid JSON \(Expected ','/);
    expect(errorOf('{"a":1}\n{"x"')).toBe(
      'f.json:2:1: not valid JSON (Unexpected non-whitespace character after JSON)',
    );
    expect(errorOf('{\n  "epoch": ')).toBe('f.json:2:12: not valid JSON (Unexpected end of JSON input)');
  });

  it('finds the place where JSON.parse gives none, and leaves out the quoted input', () => {
    expect(errorOf('{"a": 1,\n "b": }\n')).toBe("f.json:2:7: not valid JSON (Unexpected token '}')");
    expect(errorOf('[1,]')).toBe("f.json:1:4: not valid JSON (Unexpected token ']')");
    const long = '{\n  "optimizer": {\n    "lr": NaN,\n    "weightDecay": 0.05\n  }\n}\n';
    expect(errorOf(long)).toBe("f.json:3:11: not valid JSON (Unexpected token 'NaN')");
    expect(errorOf('{"flag": tru}')).toBe("f.json:1:10: not valid JSON (Unexpected token 'tru')");
  });

  it('reads a file that starts with a byte-order mark (as some editors save)', () => {
    expect(parseJsonFile('\uFEFF{"epochs": 5}', 'f.json')).toEqual({ epochs: 5 });
  });

  it('differingPaths names every differing field by its dotted path; valueAt reads it', () => {
    const before = { lr: 1e-3, model: { hidden: 384, blocks: 2 }, betas: [0.9, 0.999], name: 'v2' };
    const after = { name: 'v2', model: { blocks: 2, hidden: 512 }, betas: [0.9, 0.99], lr: 1e-3, extra: true };
    expect(differingPaths(before, after)).toEqual(['betas', 'extra', 'model.hidden']);
    expect(differingPaths(before, { ...before })).toEqual([]);
    expect(differingPaths(1, 'one')).toEqual(['']);
    expect([valueAt(after, 'model.hidden'), valueAt(after, 'model.nope'), valueAt(after, '')]).toEqual([
      512,
      undefined,
      after,
    ]);
  });
});
