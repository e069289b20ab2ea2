// Loaders of the released STL files: layouts, each bad-row reason, the skip report and strict messages.
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCategoryFile, readPairsFile } from '../src/data/stl/raw-files.js';
import { buildVocabulary } from '../src/data/stl/categories.js';
import { modelSlug } from '../src/data/workdir.js';
import { InputError } from '../src/util/errors.js';
import { makeRaw, pairsText, removeTempDirs, rejectionOf, tempDir } from './data-fixtures.js';

afterAll(removeTempDirs);

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const C = 'c'.repeat(32);
const S1 = 'e1'.repeat(16);
const S2 = '2'.repeat(32);
const NO_CAT = 'd'.repeat(32);

const row = (product: unknown, scene: unknown, bbox: unknown) => JSON.stringify({ product, scene, bbox });

/** One good row, then one row per bad reason, each on a known line. */
const MIXED = [
  row(A, S1, [0.1, 0.2, 0.5, 0.9]), // 1 ok
  '{"product": "' + A + '", "scene": ', // 2 malformed JSON
  row('ABC', S1, [0.1, 0.2, 0.5, 0.9]), // 3 bad product signature
  row(B, S1.toUpperCase(), [0.1, 0.2, 0.5, 0.9]), // 4 bad scene signature (upper case)
  row(B, S1, [0.1, 0.2, 0.5]), // 5 bbox not 4 numbers
  row(B, S1, [0.1, 0.2, 1.5, 0.9]), // 6 bbox outside 0..1
  row(B, S1, [0.5, 0.2, 0.5, 0.9]), // 7 left >= right
  row(B, S1, [0.1, 0.9, 0.5, 0.2]), // 8 top >= bottom
  row(NO_CAT, S1, [0.1, 0.2, 0.5, 0.9]), // 9 product without category
  row(A, S1, [0.2, 0.2, 0.6, 0.9]), // 10 duplicate (scene, product)
  '', // 11 blank: not a row
  row(B, S2, [0, 0, 1, 1]), // 12 ok (bounds inclusive)
  '[1, 2]', // 13 valid JSON, not an object
  row(C, S2, ['0.1', 0.2, 0.5, 0.9]), // 14 bbox with a string
].join('\n');

const EXPECTED_STRICT: [number, RegExp][] = [
  [2, /:2: row: a JSON object/],
  [3, /:3: product: 32 lower-case hex characters \(got "ABC"\)/],
  [4, /:4: scene: 32 lower-case hex characters/],
  [5, /:5: bbox: 4 numbers \[left, top, right, bottom\]/],
  [6, /:6: bbox: coordinates within 0\.\.1/],
  [7, /:7: bbox: left < right/],
  [8, /:8: bbox: top < bottom/],
  [9, /:9: product: a product listed in the category file/],
  [10, /:10: pair: each \(scene, product\) once \(first at line 1\)/],
  [13, /:13: row: a JSON object/],
  [14, /:14: bbox: 4 numbers/],
];

let dir: string;
const hasCategory = (sig: string) => sig !== NO_CAT;

beforeAll(async () => {
  dir = await tempDir();
});

describe('readPairsFile', () => {
  it('reads released JSON lines in file order', async () => {
    const { pairs } = makeRaw(50, 40);
    const file = join(dir, 'good.json');
    await writeFile(file, pairsText(pairs));
    const result = await readPairsFile(file, () => true);
    expect(result.pairs).toEqual(pairs);
    expect(result.rowOfPair).toEqual(pairs.map((_, i) => i));
    expect(result.report).toMatchObject({ rows: pairs.length, kept: pairs.length, skipped: {}, examples: [] });
  });

  it('accepts a JSON array, compact or one element per line, and CRLF line ends', async () => {
    const { pairs } = makeRaw(20, 10);
    const compact = join(dir, 'array.json');
    await writeFile(compact, JSON.stringify(pairs));
    expect((await readPairsFile(compact, () => true)).pairs).toEqual(pairs);
    const pretty = join(dir, 'pretty.json');
    await writeFile(pretty, JSON.stringify(pairs, null, 2).replace(/\n/g, '\r\n'));
    expect((await readPairsFile(pretty, () => true)).pairs).toEqual(pairs);
    const crlf = join(dir, 'crlf.json');
    await writeFile(crlf, pairsText(pairs).replace(/\n/g, '\r\n'));
    expect((await readPairsFile(crlf, () => true)).pairs).toEqual(pairs);
  });

  it('skips each kind of bad row, counts it by reason and keeps the first locations', async () => {
    const file = join(dir, 'mixed.json');
    await writeFile(file, MIXED);
    const { pairs, rowOfPair, report } = await readPairsFile(file, hasCategory, { maxExamples: 3 });
    expect(pairs.map((p) => [p.product, p.scene])).toEqual([
      [A, S1],
      [B, S2],
    ]);
    expect(rowOfPair).toEqual([0, 10]); // the blank line is not a row
    expect(report.rows).toBe(13);
    expect(report.kept).toBe(2);
    expect(report.skipped).toEqual({
      'malformed-json': 2,
      'bad-signature': 2,
      'bad-bbox': 5,
      'no-category': 1,
      'duplicate-pair': 1,
    });
    expect(report.examples).toHaveLength(3);
    expect(report.examples[0]).toMatch(new RegExp(`^${file}:2: row: `));
    expect(report.examples[1]).toMatch(new RegExp(`^${file}:3: product: `));
  });

  it('strict mode stops at the first bad row with file:line: field: expected', async () => {
    const good = row(A, S1, [0.1, 0.2, 0.5, 0.9]);
    for (const [line, pattern] of EXPECTED_STRICT) {
      const lines = MIXED.split('\n');
      // Keep only the good first row and the bad row at its own line (blank lines in between keep numbering).
      const only = lines.map((text, i) => (i === 0 ? good : i === line - 1 ? text : ''));
      const file = join(dir, `strict-${line}.json`);
      await writeFile(file, only.join('\n'));
      const err = await rejectionOf(readPairsFile(file, hasCategory, { strict: true }));
      expect(err, `line ${line}`).toBeInstanceOf(InputError);
      expect(err.message.startsWith(`${file}:${line}: `), err.message).toBe(true);
      expect(err.message).toMatch(pattern);
    }
  });

  it('names the file as told (e.g. the URL it came from)', async () => {
    const file = join(dir, 'named.json');
    await writeFile(file, 'not json\n');
    await expect(readPairsFile(file, () => true, { strict: true, name: 'http://x/fashion.json' })).rejects.toThrow(
      /^http:\/\/x\/fashion\.json:1: row: /,
    );
  });

  it('locates bad elements of a multi-line JSON array, and rejects a truncated array even when lenient', async () => {
    const { pairs } = makeRaw(3, 5);
    const text = JSON.stringify([...pairs, { product: 'zz', scene: S1, bbox: [0, 0, 1, 1] }], null, 2);
    const file = join(dir, 'array-bad.json');
    await writeFile(file, text);
    const badLine = text.split('\n').findIndex((l) => l.includes('"zz"')) + 1 - 1; // the element starts a line above
    const err = await rejectionOf(readPairsFile(file, () => true, { strict: true }));
    expect(err.message).toMatch(new RegExp(`:${badLine}: product: 32 lower-case hex`));
    const truncated = join(dir, 'array-truncated.json');
    await writeFile(truncated, text.slice(0, text.length - 40));
    await expect(readPairsFile(truncated, () => true)).rejects.toThrow(
      /the file to end with "\]" \(is it truncated\?\)/,
    );
  });

  it('rejects JSON lines cut off inside the last line (a dropped connection) even when lenient', async () => {
    const { pairs } = makeRaw(3, 5);
    const text = pairs.map((p) => JSON.stringify(p)).join('\n');
    const cut = join(dir, 'lines-cut.json');
    await writeFile(cut, text.slice(0, text.length - 20));
    await expect(readPairsFile(cut, () => true)).rejects.toThrow(
      new RegExp(`:${pairs.length}: file: the last line to be whole JSON \\(is it truncated\\?\\)`),
    );
    // Whole, the same last line without its newline is a row like the others.
    const whole = join(dir, 'lines-whole.json');
    await writeFile(whole, text);
    expect((await readPairsFile(whole, () => true)).pairs).toHaveLength(pairs.length);
  });

  it('says so when the file is missing', async () => {
    await expect(readPairsFile(join(dir, 'nope.json'), () => true)).rejects.toThrow(/pairs file not found/);
  });
});

describe('readCategoryFile', () => {
  it('reads the released object, compact or pretty, with line numbers of bad members', async () => {
    const { categories } = makeRaw(5, 30);
    const compact = join(dir, 'cat.json');
    await writeFile(compact, JSON.stringify(categories));
    expect(Object.fromEntries((await readCategoryFile(compact)).categories)).toEqual(categories);

    const entries = [
      `"${A}": "Apparel & Accessories|Shoes"`, // 2
      `"${A.toUpperCase()}": "Apparel & Accessories|Shoes"`, // 3 bad signature
      `"${B}": ""`, // 4 no leaf
      `"${C}": 12`, // 5 not a string
      `"${A}": "Apparel & Accessories|Clothing|Pants"`, // 6 listed twice
      `"${S1}": "Apparel & Accessories|Clothing|Pants" "x"`, // 7 malformed
      `"${S2}": "Apparel & Accessories|Jewelry|Necklaces"`, // 8
    ];
    const pretty = join(dir, 'cat-pretty.json');
    await writeFile(pretty, `{\n  ${entries.join(',\n  ')}\n}\n`);
    const result = await readCategoryFile(pretty);
    expect([...result.categories]).toEqual([
      [A, 'Apparel & Accessories|Shoes'],
      [S2, 'Apparel & Accessories|Jewelry|Necklaces'],
    ]);
    expect(result.report.skipped).toEqual({
      'bad-signature': 1,
      'bad-category': 2,
      'duplicate-product': 1,
      'malformed-json': 1,
    });
    expect(result.report.examples.map((e) => e.split(': ')[0]!.split(':').pop())).toEqual(['3', '4', '5', '6', '7']);
    await expect(readCategoryFile(pretty, { strict: true })).rejects.toThrow(
      new RegExp(`^${pretty}:3: key "${A.toUpperCase()}": 32 lower-case hex characters$`),
    );
  });

  it('reads a file that starts with a byte-order mark', async () => {
    const { categories } = makeRaw(2, 6);
    const file = join(dir, 'cat-bom.json');
    await writeFile(file, '\ufeff' + JSON.stringify(categories));
    expect(Object.fromEntries((await readCategoryFile(file)).categories)).toEqual(categories);
  });

  it('rejects a file that is not one well-formed object', async () => {
    const truncated = join(dir, 'cat-truncated.json');
    await writeFile(truncated, `{"${A}": "Apparel & Accessories|Shoes", "${B}": "App`);
    await expect(readCategoryFile(truncated)).rejects.toThrow(/:1: file: the file to end with "\}"/);
    const html = join(dir, 'cat-html.json');
    await writeFile(html, '<html>404</html>');
    await expect(readCategoryFile(html)).rejects.toThrow(/:1: file: a JSON object, found "<"/);
    const trailing = join(dir, 'cat-trailing.json');
    await writeFile(trailing, `{"${A}": "A|Shoes"}\n{"${B}": "A|Shoes"}\n`);
    await expect(readCategoryFile(trailing)).rejects.toThrow(/:2: file: nothing after the closing bracket/);
  });

  it('reads files larger than one read chunk, records cut anywhere (inside strings too)', async () => {
    const { categories } = makeRaw(5, 25_000, 7); // ~1.5 MB compact, ~1.7 MB pretty: records cut by 1 MB chunks
    for (const [name, text] of [
      ['cat-big.json', JSON.stringify(categories)],
      ['cat-big-pretty.json', JSON.stringify(categories, null, 3)],
    ]) {
      const file = join(dir, name!);
      await writeFile(file, text!);
      const result = await readCategoryFile(file, { strict: true });
      expect(result.categories.size).toBe(25_000);
      // Compared as text: a deep toEqual over 40K keys is slow, and insertion order must match anyway.
      expect(JSON.stringify(Object.fromEntries(result.categories))).toBe(JSON.stringify(categories));
    }
    const { pairs } = makeRaw(6_000, 500, 8); // ~2 MB as a pretty array
    const file = join(dir, 'pairs-big-array.json');
    await writeFile(file, JSON.stringify(pairs, null, 1));
    expect(JSON.stringify((await readPairsFile(file, () => true, { strict: true })).pairs)).toBe(JSON.stringify(pairs));
  });

  // The released files, when a copy sits in shared/stl/ (never committed): checks the loader on real data.
  const real = (domain: string) => resolve(__dirname, `../../shared/stl/${domain}-cat.json`);
  it.skipIf(!existsSync(real('fashion')))(
    'reads the real fashion category file: 38,111 products, 10 leaves',
    async () => {
      const { categories, report } = await readCategoryFile(real('fashion'), { strict: true });
      expect(report.skipped).toEqual({});
      expect(categories.size).toBe(38_111);
      const vocabulary = buildVocabulary(categories.values());
      expect(vocabulary.map((c) => c.name)).toEqual([
        'Sunglasses',
        'Coats & Jackets',
        'Pants',
        'Shirts & Tops',
        'Shorts',
        'Skirts',
        'Handbags, Wallets & Cases',
        'Earrings',
        'Necklaces',
        'Shoes',
      ]);
    },
  );

  it.skipIf(!existsSync(real('home')))('reads the real home category file', async () => {
    const { categories, report } = await readCategoryFile(real('home'), { strict: true });
    expect(report.skipped).toEqual({});
    expect(categories.size).toBe(41_306);
    expect(buildVocabulary(categories.values()).length).toBeGreaterThan(10);
  });
});

describe('buildVocabulary', () => {
  it('sorts by full path with stable indices, whatever the input order, keeping the order of first appearance', () => {
    const shuffled = ['B|Zed', 'A|Shoes', 'A|Clothing|Pants', 'A|Shoes', 'A|Clothing|Tops'];
    const v = buildVocabulary(shuffled);
    expect(v).toEqual([
      { index: 0, name: 'Pants', path: 'A|Clothing|Pants', firstSeen: 2 },
      { index: 1, name: 'Tops', path: 'A|Clothing|Tops', firstSeen: 3 },
      { index: 2, name: 'Shoes', path: 'A|Shoes', firstSeen: 1 },
      { index: 3, name: 'Zed', path: 'B|Zed', firstSeen: 0 },
    ]);
    const reversed = buildVocabulary([...shuffled].reverse());
    expect(reversed.map(({ index, name, path }) => ({ index, name, path }))).toEqual(
      v.map(({ index, name, path }) => ({ index, name, path })),
    );
    expect(reversed.map((c) => c.firstSeen)).toEqual([2, 0, 1, 3]);
  });
});

describe('modelSlug', () => {
  it('makes a folder name of a model id, and refuses a name that reads as a path', () => {
    expect(modelSlug('Marqo/marqo-fashionSigLIP')).toBe('Marqo--marqo-fashionSigLIP');
    expect(modelSlug('my model')).toBe('my_model');
    for (const name of ['..', '.', '../x', 'a/../b', '/abs', 'owner/', ' ', '~'])
      expect(() => modelSlug(name), name).toThrow(InputError);
    expect(() => modelSlug('..')).toThrow(`model name "..": expected a name such as 'synthetic' or owner/name`);
  });
});
