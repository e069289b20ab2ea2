// `ctl serve`'s JSON API over a small trained run (generated images, the 'tiny' image model), on 127.0.0.1:
// every route with good and bad input, ranks equal to `ctl eval --protocol catalog`, path traversal, the upload
// limits, the bounded queue, and 64 parallel uploads all answered.
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { cp, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { summariseRanks } from '../src/eval/metrics.js';
import { loadDataset } from '../src/data/stl/dataset-io.js';
import { workdirPaths } from '../src/data/workdir.js';
import type { Dataset } from '../src/data/dataset.js';
import { CLOSE_GRACE_MS, startServer, type RunningServer } from '../src/serve/run.js';
import { listRuns, pickDefaultRun, readRun, type RunSummary } from '../src/serve/runs.js';
import { acquireLock } from '../src/util/lock.js';
import { RUN, SYNTH_RUN, trainedWorkdir, type ServeFixture } from './serve-fixtures.js';
import { patternImage } from './embed-fixtures.js';

let fixture: ServeFixture;
let server: RunningServer;
let dataset: Dataset;

const options = (over: Record<string, unknown> = {}) => ({
  workdir: fixture.workdir,
  port: 0,
  host: '127.0.0.1',
  run: RUN,
  queue: 128,
  backend: 'wasm' as const,
  device: 'cpu' as const,
  ...over,
});

beforeAll(async () => {
  fixture = await trainedWorkdir();
  dataset = await loadDataset(fixture.workdir, 'fashion');
  // One product image not downloaded: its thumbnail comes from the image host instead.
  await rm(workdirPaths(fixture.workdir).imageFile('products', dataset.products[0].sig));
  server = await startServer(options());
}, 120_000);

afterAll(async () => {
  await server?.close();
  await fixture?.remove();
});

const url = (path: string) => new URL(path, server.url).toString();
const postJson = (body: unknown) =>
  fetch(url('/api/recommend'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
const upload = (bytes: Uint8Array, fields: Record<string, string> = {}, type = 'image/jpeg', base = server.url) => {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append('image', new Blob([new Uint8Array(bytes)], { type }), 'photo.jpg');
  return fetch(new URL('/api/recommend', base), { method: 'POST', body: form });
};

/** A raw GET that sends the path exactly as written (fetch would normalise `..` away). */
function rawGet(path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

function testScenes(): string[] {
  const pairs = dataset.splits.scene.parts.test!;
  return [...new Set(pairs.map((p) => dataset.pairs[p].scene))];
}

describe('ctl serve: JSON API', () => {
  it('GET /api/health names the run, model, catalog and device, with security headers', async () => {
    const res = await fetch(url('/api/health'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    expect(res.headers.get('content-security-policy')).not.toMatch(/unsafe-inline/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const health = await res.json();
    expect(health.run).toBe(RUN);
    expect(health.model.embeddings).toBe('tiny');
    expect(health.catalog.products).toBe(dataset.products.length);
    expect(health.catalog.categories.reduce((n: number, c: any) => n + c.count, 0)).toBe(dataset.products.length);
    expect(health.uploads).toEqual({ enabled: true, model: 'tiny' });
    expect(health.device.backend).toMatch(/wasm/);
  });

  it('POST /api/recommend by scene ranks each true product exactly as `ctl eval --protocol catalog` does', async () => {
    const rankOf = new Map<string, number>();
    for (const scene of testScenes()) {
      const res = await postJson({ scene, k: 5 });
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(body.results).toHaveLength(5);
      for (const t of body.truth) rankOf.set(`${scene}/${t.product}`, t.rank);
      // Results are best first, and a true product in the list is marked.
      const scores = body.results.map((r: any) => r.score);
      expect([...scores].sort((a, b) => b - a)).toEqual(scores);
      for (const r of body.results) expect(r.isTrue).toBe(body.truth.some((t: any) => t.product === r.product));
    }
    const ranks = dataset.splits.scene.parts.test!.map((p) =>
      rankOf.get(`${dataset.pairs[p].scene}/${dataset.pairs[p].product}`)!,
    );
    const summary = summariseRanks(ranks);
    const report = fixture.catalogReport.metrics;
    expect(summary.queries).toBe(report.queries);
    expect(summary.recall).toEqual(report.recall);
    expect(summary.mrr).toBeCloseTo(report.mrr, 12);
    expect(summary.medianRank).toBe(report.medianRank);
  });

  it('filters by category, and a true product ranked first in the catalog is first in the grid', async () => {
    const scene = testScenes()[0];
    const name = dataset.categories[dataset.products[0].category].name;
    const body = await (await postJson({ scene, k: 100, categories: [name] })).json();
    expect(body.categories).toEqual([name]);
    expect(body.results.length).toBe(Math.min(100, body.candidates));
    expect(body.results.every((r: any) => r.category === name)).toBe(true);
    // Categories come back sorted and once each: the same filter however it is written.
    const [a, b] = dataset.categories.map((c) => c.name).sort();
    const twice = await (await postJson({ scene, k: 5, categories: [b, a, b] })).json();
    expect(twice.categories).toEqual([a, b]);
    const all = await (await postJson({ scene, k: 1 })).json();
    const best = all.truth.find((t: any) => t.rank === 1);
    if (best) expect(all.results[0].product).toBe(best.product);
  });

  it("shows thumbnails from the workdir, else from the image host's URL layout for real STL images", async () => {
    const missing = dataset.products[0].sig;
    const images = async (base: string) => {
      const res = await fetch(new URL('/api/recommend', base), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ scene: testScenes()[0], k: 100 }),
      });
      const { results } = await res.json();
      expect(results).toHaveLength(dataset.products.length);
      return new Map<string, string | null>(results.map((r: any) => [r.product, r.image]));
    };
    // A generated dataset's signatures are made up: the image host has none of them.
    const generated = await images(server.url);
    for (const [product, image] of generated)
      expect(image).toBe(product === missing ? null : `/images/products/${product}.jpg`);
    expect((await fetch(url(`/images/products/${missing}.jpg`))).status).toBe(404);

    const copy = await mkdtemp(join(tmpdir(), 'ctl-serve-stl-'));
    await cp(fixture.workdir, copy, { recursive: true });
    const file = workdirPaths(copy).dataset('fashion');
    await writeFile(file, JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), source: 'stl' }));
    const stl = await startServer(options({ workdir: copy }));
    try {
      const fromHost = `https://i.pinimg.com/400x/${missing.slice(0, 2)}/${missing.slice(2, 4)}/${missing.slice(4, 6)}/${missing}.jpg`;
      expect(await images(stl.url)).toEqual(new Map([...generated].map(([p, i]) => [p, p === missing ? fromHost : i])));
    } finally {
      await stl.close();
      await rm(copy, { recursive: true, force: true });
    }
  });

  it('answers bad JSON input with 4xx JSON errors and no stack', async () => {
    const scene = testScenes()[0];
    const cases: [unknown, number, RegExp][] = [
      [{ scene: 'f'.repeat(32) }, 404, /unknown scene/],
      [{ scene: 'not-a-signature' }, 400, /scene/],
      [{ scene, k: 0 }, 400, /k/],
      [{ scene, k: 1000 }, 400, /k/],
      [{ scene, k: 'many' }, 400, /k/],
      [{ scene, k: '5' }, 400, /^body\.k: must be integer$/], // the wrong type is refused, not converted
      [{ scene, k: true }, 400, /^body\.k: must be integer$/],
      [{ scene, categories: 'Shoes' }, 400, /^body\.categories: must be array$/],
      [{ scene, categories: [''] }, 400, /^body\.categories\.0: must NOT have fewer than 1 characters$/],
      [{ scene, categories: ['Spacesuits'] }, 400, /unknown category 'Spacesuits'/],
      [{ k: 3 }, 400, /scene/],
      [{ scene, kk: 3 }, 400, /^body\.kk: unknown field$/],
      ['{"scene": ', 400, /JSON/i],
    ];
    for (const [body, status, message] of cases) {
      const res = await postJson(body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      const json = await res.json();
      expect(json.error).toMatch(message);
      expect(JSON.stringify(json)).not.toMatch(/at .*\.(ts|js):\d+/);
    }
    const asText = await fetch(url('/api/recommend'), {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: JSON.stringify({ scene }),
    });
    expect(asText.status).toBe(415);
    expect((await asText.json()).error).toMatch(/content-type: application\/json.*\(not text\/plain\)/);
  });

  it('answers a method a path does not take with 405 and the ones it does, an unknown path with 404', async () => {
    for (const [method, path, allow] of [
      ['GET', '/api/recommend', 'POST'],
      ['POST', '/api/health', 'GET, HEAD'],
      ['DELETE', `/api/runs/${RUN}`, 'GET, HEAD'],
      ['PUT', '/static/app.js', 'GET, HEAD'],
    ]) {
      const res = await fetch(url(path), { method });
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(res.headers.get('allow'), `${method} ${path}`).toBe(allow);
      expect((await res.json()).error).toBe(
        `${method} is not allowed on ${path.replace(RUN, ':name').replace('app.js', '*')} (it takes ${allow})`,
      );
    }
    const unknown = await fetch(url('/api/nothing'), { method: 'POST' });
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).error).toBe('not found: POST /api/nothing');
  });

  it('POST /api/recommend with an uploaded photo embeds it with the run image model', async () => {
    const scenePath = workdirPaths(fixture.workdir).imageFile('scenes', testScenes()[0]);
    const res = await upload(await readFile(scenePath), { k: '4' });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.scene).toBeNull();
    expect(body.results).toHaveLength(4);
    // The same photo as the dataset scene gives the dataset scene's list (same model, same preprocessing).
    const byScene = await (await postJson({ scene: testScenes()[0], k: 4 })).json();
    expect(body.results.map((r: any) => r.product)).toEqual(byScene.results.map((r: any) => r.product));
    // A photo of a few MB (noise does not compress) is well within the 10 MB cap.
    const noise = randomBytes(1200 * 900 * 3);
    const large = await sharp(noise, { raw: { width: 1200, height: 900, channels: 3 } })
      .png()
      .toBuffer();
    expect(large.length).toBeGreaterThan(1 << 20);
    expect((await upload(large, { k: '2' }, 'image/png')).status).toBe(200);
    const png = await patternImage(3, 80, 120, 'png');
    const filtered = await (await upload(png, { k: '3', categories: byScene.results[0].category }, 'image/png')).json();
    expect(filtered.results.every((r: any) => r.category === byScene.results[0].category)).toBe(true);
    // Categories repeat the field, one each, so a name with a comma in it is one category.
    const withComma = dataset.categories.find((c) => c.name.includes(','))!.name;
    const form = new FormData();
    for (const category of [withComma, byScene.results[0].category]) form.append('categories', category);
    form.append('image', new Blob([new Uint8Array(png)], { type: 'image/png' }), 'photo.png');
    const both = await fetch(url('/api/recommend'), { method: 'POST', body: form });
    expect(both.status).toBe(200);
    expect((await both.json()).categories).toEqual([withComma, byScene.results[0].category]);
  });

  it('turns an uploaded photo upright by its EXIF orientation, as the browser shows it', async () => {
    const scene = await readFile(workdirPaths(fixture.workdir).imageFile('scenes', testScenes()[1]));
    // Stored sideways, tagged "rotate 90° clockwise to show" (6), as phones store portrait photos.
    const sideways = await sharp(scene).rotate(-90).withMetadata({ orientation: 6 }).jpeg().toBuffer();
    expect((await sharp(sideways).metadata()).orientation).toBe(6);
    const shown = await sharp(sideways).rotate().png().toBuffer(); // the pixels as shown, without the tag
    const asShown = await (await upload(shown, { k: '6' }, 'image/png')).json();
    expect((await (await upload(sideways, { k: '6' })).json()).results).toEqual(asShown.results);
  });

  it('refuses bad uploads: 415 by magic bytes and by decode, 413 over 10 MB or 50 megapixels, 400 for a bad k', async () => {
    const text = await upload(new TextEncoder().encode('hello, not an image'));
    expect(text.status).toBe(415);
    expect((await text.json()).error).toMatch(/not a JPEG, PNG or WebP/);
    const fake = new Uint8Array(2000).fill(7);
    fake.set([0xff, 0xd8, 0xff, 0xe0]);
    const broken = await upload(fake);
    expect(broken.status).toBe(415);
    expect((await broken.json()).error).toMatch(/could not be decoded/);
    const big = new Uint8Array(10 * 1024 * 1024 + 10);
    big.set([0xff, 0xd8, 0xff, 0xe0]);
    const tooBig = await upload(big);
    expect(tooBig.status).toBe(413);
    expect((await tooBig.json()).error).toBe('the image is over the 10 MB upload limit');
    // A small file that declares a huge canvas is refused by its header, before it is decoded.
    const canvas = await sharp({ create: { width: 10_000, height: 5_001, channels: 3, background: '#000' } })
      .png()
      .toBuffer();
    const huge = await upload(canvas);
    expect([huge.status, (await huge.json()).error]).toEqual([
      413,
      'the image is 10000×5001 pixels, over the 50 megapixel upload limit',
    ]);
    // Past sharp's own decoding limit too (a PNG header alone, 40000×40000): the same 413, not a decode failure.
    const header = await upload(pngHeader(40_000, 40_000));
    expect([header.status, (await header.json()).error]).toEqual([
      413,
      'the image is 40000×40000 pixels, over the 50 megapixel upload limit',
    ]);
    const empty = await upload(new Uint8Array(0));
    expect(empty.status).toBe(400);
    expect((await empty.json()).error).toMatch(/'image': the file is empty/);
    const jpeg = await sharp({ create: { width: 40, height: 40, channels: 3, background: '#884422' } })
      .jpeg()
      .toBuffer();
    for (const k of ['0', '1e1', '0x5', ' 5'])
      expect(await (await upload(jpeg, { k })).json(), k).toEqual({
        error: `multipart field 'k': must be an integer from 1 to 100, got "${k}"`,
      });
    const unknown = await upload(jpeg, { kk: '3' });
    expect(unknown.status).toBe(400);
    expect((await unknown.json()).error).toMatch(/multipart field 'kk': unknown \(known: image, k, categories\)/);
    expect((await upload(jpeg, { categories: 'Nope' })).status).toBe(400);
    // A form that is not the one it should be is a 400 (the size limits are the 413s), as the same request in JSON.
    const form = (fill: (form: FormData) => void) => {
      const body = new FormData();
      body.append('image', new Blob([new Uint8Array(jpeg)], { type: 'image/jpeg' }), 'photo.jpg');
      fill(body);
      return fetch(url('/api/recommend'), { method: 'POST', body });
    };
    for (const [fill, error] of [
      [(f) => f.append('image', new Blob([new Uint8Array(jpeg)]), 'two.jpg'), "send one image, in field 'image'"],
      [(f) => ['3', '4'].forEach((k) => f.append('k', k)), "multipart field 'k': sent twice"],
      [
        (f) => Array.from({ length: 66 }, (_, i) => f.append('categories', `c${i}`)),
        'too many fields: at most 64 categories',
      ],
    ] as [(form: FormData) => void, string][]) {
      const res = await form(fill);
      expect([res.status, (await res.json()).error]).toEqual([400, error]);
    }
    const garbled = await fetch(url('/api/recommend'), {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=xyz' },
      body: '--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\nabc',
    });
    expect(garbled.status).toBeGreaterThanOrEqual(400);
    expect(garbled.status).toBeLessThan(500);
    expect((await garbled.json()).error).toBeTruthy();
  });

  it('GET /api/scenes pages the test scenes and checks offset and limit', async () => {
    const all = testScenes();
    const page = await (await fetch(url('/api/scenes?offset=2&limit=3'))).json();
    expect(page.total).toBe(all.length);
    expect(page.scenes.map((s: any) => s.sig)).toEqual(all.slice(2, 5));
    expect(page.scenes[0].image).toBe(`/images/scenes/${all[2]}.jpg`);
    for (const [q, error] of [
      ['limit=0', 'querystring.limit: must be from 1 to 100, got 0'],
      ['limit=1000', 'querystring.limit: must be from 1 to 100, got 1000'],
      ['offset=-1', 'querystring.offset: must match pattern "^[0-9]{1,9}$"'],
      ['offset=x', 'querystring.offset: must match pattern "^[0-9]{1,9}$"'],
    ]) {
      const res = await fetch(url(`/api/scenes?${q}`));
      expect([res.status, (await res.json()).error], q).toEqual([400, error]);
    }
    expect((await fetch(url('/api/scenes?limit=2&_=1733500000'))).status).toBe(200); // a cache-buster is ignored
  });

  it('GET /api/runs and /api/runs/:name give status, curves and reports; unknown runs are 404', async () => {
    const { runs, current } = await (await fetch(url('/api/runs'))).json();
    expect(current).toBe(RUN);
    expect(runs.map((r: any) => r.name)).toEqual([SYNTH_RUN, RUN]);
    expect(runs[1]).toMatchObject({ name: RUN, status: 'finished', epoch: 3, epochs: 3 });
    expect(runs[1].catalogRecall10).toBe(fixture.catalogReport.metrics.recall['10']);
    expect(runs[1].catalogSplit).toBe('test'); // the dashboard says which scenes that R@10 ranks
    expect(runs[0].catalogRecall10).toBe(fixture.synthCatalogReport.metrics.recall['10']);
    const run = await (await fetch(url(`/api/runs/${RUN}`))).json();
    expect(run.history.map((r: any) => r.epoch)).toEqual([1, 2, 3]);
    expect(run.steps.length).toBeGreaterThan(3);
    expect(run.zeroShot.type).toBe('zero-shot');
    expect(run.reports['catalog-test'].metrics.recall).toEqual(fixture.catalogReport.metrics.recall);
    expect((await fetch(url('/api/runs/nope'))).status).toBe(404);
    // Malformed and overlong names get the same { error } shape as every other answer.
    for (const [path, status] of [
      ['/api/runs/%', 400],
      [`/api/runs/${'a'.repeat(256)}`, 414],
    ] as const) {
      const res = await rawGet(path);
      expect(res.status, path).toBe(status);
      expect(Object.keys(JSON.parse(res.body)), path).toEqual(['error']);
    }
    // Any name a run folder can have is answered, the longest too.
    const longest = join(fixture.workdir, 'runs', 'r'.repeat(255));
    await cp(join(fixture.workdir, 'runs', RUN), longest, { recursive: true });
    try {
      const res = await fetch(url(`/api/runs/${basename(longest)}`));
      expect(res.status).toBe(200);
      expect((await res.json()).history.map((r: any) => r.epoch)).toEqual([1, 2, 3]);
    } finally {
      await rm(longest, { recursive: true, force: true });
    }
  });

  it('serves images by signature only: traversal attempts, encoded or not, never leave the workdir', async () => {
    const sig = testScenes()[0];
    const ok = await fetch(url(`/images/scenes/${sig}.jpg`));
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe('image/jpeg');
    for (const path of [
      '/images/..%2F..%2Fetc%2Fpasswd',
      '/images/%2e%2e/%2e%2e/etc/passwd',
      '/images/scenes/..%2F..%2F..%2Fetc%2Fpasswd',
      '/images/scenes/../../dataset/fashion.json',
      '/images/products/%2e%2e%2fdataset%2ffashion.json',
      `/api/runs/..%2F..%2Fdataset`,
      '/api/runs/%2e%2e',
      '/static/..%2F..%2F..%2Fpackage.json',
      '/static/%2e%2e/%2e%2e/%2e%2e/package.json',
      '/vendor/uplot/..%2Fpackage.json',
    ]) {
      const res = await rawGet(path);
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      expect(res.status, path).toBeLessThan(500);
      expect(res.body, path).not.toMatch(/root:|"products"|"name": "ctl"|"version"/);
    }
    expect((await fetch(url(`/images/scenes/${'0'.repeat(32)}.jpg`))).status).toBe(404);
  });

  it('serves the page, the dashboard and uPlot', async () => {
    for (const [path, type] of [
      ['/', 'text/html'],
      ['/runs', 'text/html'],
      ['/static/app.js', 'javascript'],
      ['/vendor/uplot/uPlot.esm.js', 'javascript'],
    ]) {
      const res = await fetch(url(path));
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type'), path).toContain(type);
    }
    expect((await fetch(url('/vendor/uplot/uPlot.d.ts'))).status).toBe(404);
  });

  it('answers 64 parallel uploads, none lost', async () => {
    const photos = await Promise.all(Array.from({ length: 8 }, (_, i) => patternImage(i, 64, 96, 'jpeg')));
    const responses = await Promise.all(Array.from({ length: 64 }, (_, i) => upload(photos[i % 8], { k: '3' })));
    const bodies = await Promise.all(responses.map((r) => r.json()));
    expect(responses.map((r) => r.status)).toEqual(Array(64).fill(200));
    // The same photo gets the same answer, whatever else was in flight.
    for (let i = 8; i < 64; i++) expect(bodies[i].results).toEqual(bodies[i % 8].results);
  });

  it('a full queue answers 429 with Retry-After, and the server keeps answering', async () => {
    const small = await startServer(options({ run: RUN, queue: 2 }));
    try {
      const photo = await patternImage(1, 64, 96, 'jpeg');
      const responses = await Promise.all(Array.from({ length: 24 }, () => upload(photo, {}, 'image/jpeg', small.url)));
      const statuses = responses.map((r) => r.status);
      expect(statuses).toContain(429);
      expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
      const refused = responses.find((r) => r.status === 429)!;
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect((await refused.json()).error).toMatch(/busy/);
      expect((await upload(photo, {}, 'image/jpeg', small.url)).status).toBe(200);
    } finally {
      await small.close();
    }
  });

  it('--device cuda: an image model that cannot be opened is an error naming it, not uploads off', async () => {
    const copy = await mkdtemp(join(tmpdir(), 'ctl-serve-no-model-'));
    try {
      await cp(fixture.workdir, copy, { recursive: true });
      // The models folder is a file: the generated model can be neither found nor written.
      const models = workdirPaths(copy).modelsDir;
      await rm(models, { recursive: true, force: true });
      await writeFile(models, 'not a folder');
      await expect(startServer(options({ workdir: copy, device: 'cuda' }))).rejects.toThrow(
        new RegExp(`^--device cuda: the image model 'tiny' for uploads could not be opened offline \\(.*${models}`),
      );
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });

  it('refuses to start on a products store without a product of the dataset', async () => {
    const copy = await mkdtemp(join(tmpdir(), 'ctl-serve-empty-store-'));
    try {
      await cp(fixture.workdir, copy, { recursive: true });
      const products = workdirPaths(copy).embeddings('tiny', 'products');
      await rm(join(products, 'shards'), { recursive: true });
      await expect(startServer(options({ workdir: copy }))).rejects.toThrow(
        `${products}: no product of the dataset has an embedding (every answer would be empty)`,
      );
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });

  it('closes within its grace period while a client leaves a request half-sent', async () => {
    const other = await startServer(options());
    const socket = connect(Number(new URL(other.url).port), '127.0.0.1');
    await new Promise((resolve) => socket.on('connect', resolve));
    socket.on('error', () => {}); // the server cuts it
    socket.write('POST /api/recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n');
    socket.write('Content-Length: 1000\r\n\r\n{"scene":');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = performance.now();
    await other.close();
    expect(performance.now() - started).toBeLessThan(CLOSE_GRACE_MS + 2_000);
    socket.destroy();
  });

  it('without --run serves the best catalog R@10; a synthetic-embeddings run turns uploads off and says why', async () => {
    const best =
      fixture.synthCatalogReport.metrics.recall['10'] > fixture.catalogReport.metrics.recall['10'] ? SYNTH_RUN : RUN;
    const synth = await startServer(options({ run: SYNTH_RUN }));
    // Uploads on CUDA asked for by name, on a machine without it: an error with the set-up, not uploads off.
    await expect(startServer(options({ device: 'cuda' }))).rejects.toThrow(
      /^--device cuda: the CUDA provider could not load/,
    );
    const auto = await startServer({ ...options(), run: undefined });
    try {
      expect(auto.run).toBe(best);
      const health = await (await fetch(new URL('/api/health', synth.url))).json();
      expect(health.uploads.enabled).toBe(false);
      expect(health.uploads.reason).toMatch(/synthetic embeddings/);
      const photo = await patternImage(1, 64, 96, 'jpeg');
      const refused = await upload(photo, {}, 'image/jpeg', synth.url);
      expect(refused.status).toBe(400);
      expect((await refused.json()).error).toMatch(/uploads are off/);
      const byScene = await fetch(new URL('/api/recommend', synth.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ scene: testScenes()[0], k: 3 }),
      });
      expect(byScene.status).toBe(200);
    } finally {
      await synth.close();
      await auto.close();
    }
  });

  it("tells a running training from a stopped one by its checkpoint and the run's lock", async () => {
    const workdir = await mkdtemp(join(tmpdir(), 'ctl-serve-runs-'));
    try {
      const run = join(workdir, 'runs', 'live');
      await cp(workdirPaths(fixture.workdir).run(RUN), run, { recursive: true });
      const stateFile = join(run, 'checkpoints', 'last', 'state.json');
      const state = JSON.parse(await readFile(stateFile, 'utf8'));
      await writeFile(stateFile, JSON.stringify({ ...state, epoch: 1, epochsWithoutGain: 0 }));
      const trainer = await acquireLock(run, () => 'busy'); // as `ctl train` holds it
      expect((await listRuns(workdir))[0]).toMatchObject({ name: 'live', status: 'running', epoch: 1, epochs: 3 });
      await trainer.release();
      expect((await listRuns(workdir))[0]).toMatchObject({ status: 'stopped', epoch: 1 });
      expect(await readRun(workdir, '..')).toBeNull();

      // A report of an earlier best checkpoint says nothing of the one served: the run has no catalog R@10.
      const reportFile = join(run, 'eval', 'catalog-test.json');
      const report = JSON.parse(await readFile(reportFile, 'utf8'));
      expect((await listRuns(workdir))[0]).toMatchObject({
        catalogRecall10: report.metrics.recall['10'],
        catalogLeaks: false,
      });
      // Without a test report the val one speaks for the run, and the summary says so.
      await rename(reportFile, join(run, 'eval', 'catalog-val.json'));
      expect((await listRuns(workdir))[0]).toMatchObject({
        catalogRecall10: report.metrics.recall['10'],
        catalogSplit: 'val',
      });
      await rename(join(run, 'eval', 'catalog-val.json'), reportFile);
      // A report of a run evaluated on other data than it trained on may count its training scenes.
      await writeFile(reportFile, JSON.stringify({ ...report, trainSceneOverlap: null, trainedOnOtherData: true }));
      expect((await listRuns(workdir))[0].catalogLeaks).toBe(true);
      await writeFile(reportFile, JSON.stringify(report));
      // The best checkpoint's own epoch decides, also when last's record of the best lags (killed between the saves).
      await writeFile(stateFile, JSON.stringify({ ...state, epoch: 1, best: { ...state.best, epoch: 0 } }));
      expect((await listRuns(workdir))[0].catalogRecall10).toBe(report.metrics.recall['10']);
      await writeFile(stateFile, JSON.stringify({ ...state, epoch: 1, epochsWithoutGain: 0 }));
      const earlier = { ...report.checkpoint, epoch: report.checkpoint.epoch - 1 };
      await writeFile(reportFile, JSON.stringify({ ...report, checkpoint: earlier }));
      expect((await listRuns(workdir))[0]).toMatchObject({ catalogRecall10: null, catalogSplit: null });

      // A damaged report is left out: it neither shows on the dashboard nor makes its run the best.
      await writeFile(reportFile, JSON.stringify({ ...report, metrics: { ...report.metrics, recall: { 10: 7.5 } } }));
      expect((await listRuns(workdir))[0].catalogRecall10).toBeNull();
      expect((await readRun(workdir, 'live'))!.reports['catalog-test']).toBeUndefined();
      await writeFile(reportFile, JSON.stringify({ ...report, backend: 7 }));
      expect((await readRun(workdir, 'live'))!.reports['catalog-test']).toBeUndefined();
      // A report of an older ctl, which did not record the towers' backend, is read as before.
      const { backend, ...older } = report;
      expect(backend).toEqual(expect.any(String)); // this ctl records it
      await writeFile(reportFile, JSON.stringify(older));
      expect((await readRun(workdir, 'live'))!.reports['catalog-test']).toEqual(older);

      // A damaged last state.json is left out too: the run says so and shows what its best says.
      await writeFile(stateFile, JSON.stringify({ ...state, config: {}, epoch: 'one' }));
      const bestState = JSON.parse(await readFile(join(run, 'checkpoints', 'best', 'state.json'), 'utf8'));
      expect((await listRuns(workdir))[0]).toMatchObject({ name: 'live', status: 'damaged', epoch: bestState.epoch });
      expect((await listRuns(workdir))[0].config).toMatchObject({ arch: state.config.model.arch });
      // Without its last checkpoint the run is listed by its best (serve would take it), not as never started.
      await rm(join(run, 'checkpoints', 'last'), { recursive: true });
      expect((await listRuns(workdir))[0]).toMatchObject({ status: 'stopped', epoch: bestState.epoch });
      // With no checkpoint and a config.json its schema refuses, it shows no config.
      await rm(join(run, 'checkpoints'), { recursive: true });
      const configFile = join(run, 'config.json');
      const started = JSON.parse(await readFile(configFile, 'utf8'));
      await writeFile(configFile, JSON.stringify({ ...started, config: { ...started.config, batchSize: 'x' } }));
      expect((await listRuns(workdir))[0]).toMatchObject({ status: 'not started', config: null });
    } finally {
      await rm(workdir, { recursive: true, force: true });
    }
  });
});

describe('pickDefaultRun', () => {
  const run = (name: string, catalogRecall10: number | null, catalogLeaks = false) =>
    ({ name, epoch: 3, catalogRecall10, catalogLeaks, updatedAt: null }) as RunSummary;

  it('takes the best catalog R@10 on unseen scenes over a higher one on scenes the run trained on', () => {
    expect(pickDefaultRun([run('seed-split', 0.56, true), run('scene-split', 0.08), run('new', null)])?.name).toBe(
      'scene-split',
    );
    expect(pickDefaultRun([run('a', 0.5, true), run('b', 0.6, true)])?.name).toBe('b'); // only leaky reports
  });
});

/** A PNG declaring `width` × `height` RGB with no pixel data: a header, an empty image-data chunk, the end. */
function pngHeader(width: number, height: number): Uint8Array {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no filter method, no interlace
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type), data]);
    const [length, crc] = [Buffer.alloc(4), Buffer.alloc(4)];
    length.writeUInt32BE(data.length);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([
    signature,
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.alloc(0))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
