// The http provider against a local embedding service on 127.0.0.1: bytes (with their content type) and URL
// requests, retries on 500, a persistently failing image, a service not there, a wrong dimension, and a vector
// float32 cannot hold.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { EmbeddingStore } from '../src/data/store/embeddings.js';
import { runEmbed, type EmbedOptions } from '../src/embed/run.js';
import { workdirPaths } from '../src/data/workdir.js';
import { embedOptions, makeFixture, removeFixtures, writeImage } from './embed-fixtures.js';
import { rejectionOf } from './data-fixtures.js';

const DIM = 8;

/** A deterministic "embedding" of a request body: bytes of its SHA-256, centred. */
function vectorOf(body: Buffer, dim = DIM): number[] {
  const h = createHash('sha256').update(body).digest();
  return Array.from({ length: dim }, (_, i) => h[i] - 127.5);
}

interface Service {
  url: string;
  bodies: Buffer[];
  maxInFlight: number;
  close(): Promise<void>;
}

/**
 * `answer` decides per request, given the body and how often this body was seen: a status, a JSON body and extra
 * headers, or 'cut' (the answer's headers and the start of its body, then the connection drops).
 */
async function startService(
  answer: (body: Buffer, seen: number, req: IncomingMessage) => [number, unknown, Record<string, string>?] | 'cut',
): Promise<Service> {
  const seen = new Map<string, number>();
  const bodies: Buffer[] = [];
  let inFlight = 0;
  const service = { bodies, maxInFlight: 0 } as Service;
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    service.maxInFlight = Math.max(service.maxInFlight, inFlight);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    bodies.push(body);
    const key = createHash('sha256').update(body).digest('hex');
    seen.set(key, (seen.get(key) ?? 0) + 1);
    await new Promise((r) => setTimeout(r, 5));
    const answered = answer(body, seen.get(key)!, req);
    inFlight--;
    if (answered === 'cut') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '4096' }).write('{"embedding": [');
      setTimeout(() => res.destroy(), 5);
      return;
    }
    const [status, json, headers] = answered;
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(json));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  service.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/embed`;
  service.close = () => new Promise((resolve) => server.close(() => resolve()));
  closers.push(service.close);
  return service;
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

const options = (
  workdir: string,
  apiUrl: string,
  over: Partial<EmbedOptions> = {},
  http: Partial<NonNullable<EmbedOptions['http']>> = {},
): EmbedOptions => ({
  ...embedOptions(workdir, { model: 'remote-siglip', provider: 'http', ...over }),
  http: {
    apiUrl,
    send: 'bytes',
    imageBaseUrl: 'http://images.example',
    concurrency: 3,
    retries: 2,
    timeoutMs: 5000,
    retryDelayMs: 1,
    ...http,
  },
  ...over,
});

describe('ctl embed --provider http', () => {
  afterAll(removeFixtures);

  test('POSTs image bytes, stores the normalised answers, keeps to the concurrency', async () => {
    const { workdir, dataset } = await makeFixture(3);
    const service = await startService((body) => [200, { embedding: vectorOf(body) }]);
    const summary = await runEmbed(options(workdir, service.url, { batch: 9 }));
    expect(summary.embedded).toBe(9);
    expect(summary.device).toMatch(/^http http:\/\/127\.0\.0\.1/);
    expect(service.maxInFlight).toBeLessThanOrEqual(3);
    const store = await EmbeddingStore.open(workdirPaths(workdir).embeddings('remote-siglip', 'products'));
    expect(store.meta).toMatchObject({
      model: 'remote-siglip',
      dim: DIM,
      preprocessing: { provider: 'http', send: 'bytes' },
    });
    const sig = dataset.products[0].sig;
    const file = await readFile(workdirPaths(workdir).imageFile('products', sig));
    const want = vectorOf(file);
    const norm = Math.hypot(...want);
    const { data } = await store.read([sig]);
    want.forEach((v, i) => expect(data[i]).toBeCloseTo(v / norm, 5));
  });

  test('sends each image with its own content type: the download keeps PNG and WebP under .jpg names too', async () => {
    const { workdir, dataset } = await makeFixture(1); // a JPEG scene, PNG products
    const paths = workdirPaths(workdir);
    const webp = paths.imageFile('products', dataset.products[1].sig);
    await writeImage(
      webp,
      await sharp(await readFile(webp))
        .webp()
        .toBuffer(),
    );
    const sent = new Map<string, string | undefined>(); // body → its content-type
    const service = await startService((body, _seen, req) => {
      sent.set(body.toString('base64'), req.headers['content-type']);
      return [200, { embedding: vectorOf(body) }];
    });
    await runEmbed(options(workdir, service.url));
    const typeOf = async (file: string) => sent.get((await readFile(file)).toString('base64'));
    expect(await typeOf(paths.imageFile('scenes', dataset.scenes[0].sig))).toBe('image/jpeg');
    expect(await typeOf(paths.imageFile('products', dataset.products[0].sig))).toBe('image/png');
    expect(await typeOf(webp)).toBe('image/webp');
  });

  test('does not extend a store the local provider wrote, and says which provider wrote it', async () => {
    const { workdir } = await makeFixture(1);
    await runEmbed(embedOptions(workdir, { kind: 'products' }));
    const service = await startService((body) => [200, { embedding: vectorOf(body) }]);
    await expect(runEmbed(options(workdir, service.url, { model: 'tiny', kind: 'products' }))).rejects.toThrow(
      /preprocessing\.provider: the store was written with "local", this run uses "http"/,
    );
  });

  test('a 500 is retried; an image the service always fails is skipped and listed', async () => {
    const { workdir, dataset } = await makeFixture(2);
    const paths = workdirPaths(workdir);
    const bad = await readFile(paths.imageFile('products', dataset.products[2].sig));
    const service = await startService((body, seen) => {
      if (body.equals(bad)) return [500, { error: 'model crashed' }];
      return seen === 1 ? [500, { error: 'warming up' }] : [200, { embedding: vectorOf(body) }];
    });
    const summary = await runEmbed(options(workdir, service.url, { kind: 'products' }));
    const view = summary.views[0];
    expect(view.embedded).toBe(3);
    expect(view.failed).toEqual([
      expect.objectContaining({
        id: dataset.products[2].sig,
        reason: 'service',
        message: expect.stringMatching(/HTTP 500 .*model crashed.*after 3 attempts/),
      }),
    ]);
    // 3 good images × (one 500 + one success) + the bad one × 3 attempts.
    expect(service.bodies.length).toBe(3 * 2 + 3);
  });

  test('an answer cut midway is retried', async () => {
    const { workdir, dataset } = await makeFixture(1);
    const service = await startService((body, seen) => (seen === 1 ? 'cut' : [200, { embedding: vectorOf(body) }]));
    const summary = await runEmbed(options(workdir, service.url, { kind: 'products' }));
    const products = dataset.products.length;
    expect(summary.views[0]).toMatchObject({ embedded: products, failed: [] });
    expect(service.bodies.length).toBe(products * 2);
  });

  test('a service that cannot be reached: each image says why and names the URL', async () => {
    const { workdir, dataset } = await makeFixture(1);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve)); // nothing listens there now
    const apiUrl = `http://127.0.0.1:${port}/embed`;
    const summary = await runEmbed(options(workdir, apiUrl, { kind: 'products' }, { retries: 1 }));
    expect(summary.views[0].failed).toHaveLength(dataset.products.length);
    for (const f of summary.views[0].failed)
      expect(f).toMatchObject({
        reason: 'service',
        message: `network error reaching ${apiUrl}: fetch failed: connect ECONNREFUSED 127.0.0.1:${port} (after 2 attempts)`,
      });
  });

  test('a service that does not answer in time: each image names the URL and --timeout', async () => {
    const { workdir, dataset } = await makeFixture(1);
    const silent = createServer(() => {}); // takes requests, answers none
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const apiUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/embed`;
      const summary = await runEmbed(options(workdir, apiUrl, { kind: 'products' }, { retries: 0, timeoutMs: 300 }));
      expect(summary.views[0].failed).toHaveLength(dataset.products.length);
      for (const f of summary.views[0].failed)
        expect(f).toMatchObject({
          reason: 'service',
          message: `no complete answer from ${apiUrl} within 0.3 s (--timeout) (after 1 attempt)`,
        });
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  test('20 refusals in a row stop the run, keeping what is stored and saying what to check', async () => {
    const { workdir } = await makeFixture(12); // 24 products
    let asked = 0;
    const service = await startService((body) =>
      ++asked <= 2 ? [200, { embedding: vectorOf(body) }] : [401, { error: 'no key' }],
    );
    const err = await rejectionOf(runEmbed(options(workdir, service.url, { kind: 'products' }, { concurrency: 1 })));
    // Counted per model call: the call that reaches 20 counts its own refusals to the end.
    expect(err.message).toMatch(
      /^the embedding service failed 2\d images in a row \(last: HTTP 401 \{"error":"no key"\}\); stored rows are kept: check --api-url/,
    );
    const store = await EmbeddingStore.open(workdirPaths(workdir).embeddings('remote-siglip', 'products'));
    expect(store.size).toBe(2);
  });

  test('a 429 is retried after its Retry-After, not the (shorter) backoff', async () => {
    const { workdir, dataset } = await makeFixture(1);
    const asked = new Map<string, number[]>(); // per image: when each request for it came
    const service = await startService((body, seen) => {
      const key = body.toString('base64');
      asked.set(key, [...(asked.get(key) ?? []), Date.now()]);
      return seen === 1 ? [429, { error: 'slow down' }, { 'retry-after': '1' }] : [200, { embedding: vectorOf(body) }];
    });
    const summary = await runEmbed(options(workdir, service.url, { kind: 'products' }, { retryDelayMs: 1 }));
    expect(summary.views[0]).toMatchObject({ embedded: dataset.products.length, failed: [] });
    expect(asked.size).toBe(dataset.products.length);
    for (const [first, second] of asked.values()) expect(second - first).toBeGreaterThanOrEqual(950); // timers may round a few ms early
  });

  test('a wrong dimension stops the run with a clear error', async () => {
    const { workdir, dataset } = await makeFixture(2);
    const odd = await readFile(workdirPaths(workdir).imageFile('products', dataset.products[3].sig));
    const service = await startService((body) => [200, { embedding: vectorOf(body, body.equals(odd) ? 5 : DIM) }]);
    await expect(runEmbed(options(workdir, service.url, { kind: 'products', batch: 1 }))).rejects.toThrow(
      new RegExp(`a 5-d embedding for ${dataset.products[3].sig}, but the others .* are 8-d`),
    );
    // The rows before it were committed.
    const store = await EmbeddingStore.open(workdirPaths(workdir).embeddings('remote-siglip', 'products'));
    expect(store.size).toBe(3);
    // --api-dim checks the very first answer too.
    const other = await makeFixture(1);
    await expect(runEmbed(options(other.workdir, service.url, { kind: 'products' }, { dim: 16 }))).rejects.toThrow(
      /8-d embedding .* are 16-d/,
    );
  });

  test('an answer float32 cannot hold, or of norm 0, stops the run naming it; no such row is stored', async () => {
    const { workdir, dataset } = await makeFixture(2);
    const paths = workdirPaths(workdir);
    const odd = await readFile(paths.imageFile('products', dataset.products[3].sig));
    const service = await startService((body) => [
      200,
      { embedding: body.equals(odd) ? [1e200, 1, 2, 3] : [4, 1, 2, 3] },
    ]);
    await expect(runEmbed(options(workdir, service.url, { kind: 'products', batch: 1 }))).rejects.toThrow(
      `${service.url}: embedding[0] = 1e+200 for ${dataset.products[3].sig} is not representable as float32`,
    );
    const store = await EmbeddingStore.open(paths.embeddings('remote-siglip', 'products'));
    expect(await store.verify()).toMatchObject({ ok: true, count: 3 });

    const zero = await makeFixture(1);
    const zeros = await startService(() => [200, { embedding: [0, 0, 0, 0] }]);
    await expect(runEmbed(options(zero.workdir, zeros.url, { kind: 'products' }))).rejects.toThrow(
      /: an embedding of norm 0 \(as float32\) for b0+\w+: it has no direction/,
    );
  });

  test('an answer without an embedding array is an error naming the service', async () => {
    const { workdir } = await makeFixture(1);
    const service = await startService(() => [200, { vector: [1, 2] }]);
    await expect(runEmbed(options(workdir, service.url, { kind: 'products' }))).rejects.toThrow(
      /expected JSON \{"embedding": \[numbers\]\}/,
    );
  });

  test('--api-send url posts the image URL; hide-product sends the cropped scene as JPEG', async () => {
    const { workdir, dataset } = await makeFixture(1);
    const service = await startService((body) => [200, { embedding: vectorOf(body) }]);
    await runEmbed(options(workdir, service.url, { kind: 'products' }, { send: 'url' }));
    const sig = dataset.products[0].sig;
    expect(service.bodies.map((b) => JSON.parse(b.toString()).url)).toContain(
      `http://images.example/400x/${sig.slice(0, 2)}/${sig.slice(2, 4)}/${sig.slice(4, 6)}/${sig}.jpg`,
    );

    service.bodies.length = 0;
    await runEmbed(options(workdir, service.url, { kind: 'scenes', sceneView: 'hide-product' }));
    const sizes = await Promise.all(
      service.bodies.map(async (b) => (await sharp(b).metadata()) as { format: string; width: number; height: number }),
    );
    // 96×64 scene; box 1 covers columns 4..43 → keep 44..95; box 2 [0.55,0.2,0.95,0.8] covers 52..91 → keep 0..51.
    expect(sizes.map((m) => [m.format, m.width, m.height]).sort()).toEqual([
      ['jpeg', 52, 64],
      ['jpeg', 52, 64],
    ]);
  });
});
