// Test fixtures of the download stage: a fault-injecting image host on 127.0.0.1 serving real JPEGs made with
// sharp, and a small STL-shaped dataset written as raw files and normalised by the data layer.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import sharp from 'sharp';
import { normaliseWorkdir } from '../src/data/stl/dataset-io.js';
import type { Dataset } from '../src/data/dataset.js';
import type { ManifestRecord } from '../src/download/manifest.js';
import { workdirPaths } from '../src/data/workdir.js';

/** How the host answers one signature. */
export type Behaviour =
  | 'ok'
  | '404'
  | '410'
  | '403'
  | '429-once' // 429 with Retry-After: 1, then the image
  | '500-once' // 500, then the image
  | '500' // always 500
  | 'redirect' // 302 to the same path with a query, which serves the image
  | 'in-parts' // 200, the image in two writes 20 ms apart: the client joins the chunks
  | 'redirect-loop' // 302 to itself, always
  | 'redirect-bad' // 302 to a Location that is no URL
  | 'redirect-ftp' // 302 to an ftp:// URL
  | 'stall' // headers and a few bytes, then nothing
  | 'truncated' // Content-Length of the whole image, half of it, then the connection drops
  | 'html' // 200 text/html error page
  | 'html-as-jpeg' // 200 image/jpeg whose body is an HTML page
  | 'corrupt' // 200 image/jpeg, JPEG header, scrambled data
  | 'cut' // 200 image/jpeg, the first half of a JPEG as a whole response (Content-Length agrees)
  | 'drip' // 200, a byte every 100 ms: never idle long enough for the body timeout
  | 'huge' // 200 with a Content-Length over the cap
  | 'huge-chunked' // 200, no Content-Length, streams past the cap
  | 'empty' // 200 image/jpeg, no bytes
  | 'held'; // the image, once the test calls release()

export function sigOf(name: string): string {
  return createHash('md5').update(name).digest('hex');
}

/** A real, noisy JPEG (a few KB), different per seed. */
export async function makeJpeg(seed: number, width = 96, height = 128): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < raw.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    raw[i] = (i % 251) + ((x >>> 24) & 63);
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 85 })
    .toBuffer();
}

export interface ImageServerOptions {
  /** Behaviour of signatures not in `behaviours`. */
  fallback?: Behaviour;
  /** Wait before answering every request, ms. */
  delayMs?: number;
  /** Answer the first N requests with 429 and this Retry-After (seconds). */
  throttleFirst?: number;
  throttleRetryAfter?: string;
}

export interface ImageServer {
  url: string;
  behaviours: Map<string, Behaviour>;
  /** performance.now() of every request, per signature. */
  requests: Map<string, number[]>;
  count(sig: string): number;
  total(): number;
  /** The most requests the host was answering at once. */
  peak(): number;
  /** The image served for a signature (same bytes every time). */
  image(sig: string): Promise<Buffer>;
  /** Answer the requests for 'held' images, those waiting and those to come. */
  release(): void;
  options: ImageServerOptions;
  close(): Promise<void>;
}

const URL_LAYOUT = /^\/400x\/([0-9a-f]{2})\/([0-9a-f]{2})\/([0-9a-f]{2})\/([0-9a-f]{32})\.jpg$/;

export async function startImageServer(options: ImageServerOptions = {}): Promise<ImageServer> {
  const behaviours = new Map<string, Behaviour>();
  const requests = new Map<string, number[]>();
  const images = new Map<string, Promise<Buffer>>();
  let total = 0;
  let active = 0;
  let peak = 0;
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const image = (sig: string) => {
    if (!images.has(sig)) images.set(sig, makeJpeg(parseInt(sig.slice(0, 6), 16)));
    return images.get(sig)!;
  };

  const server = http.createServer(async (req, res) => {
    const [path, query] = (req.url ?? '').split('?');
    const m = URL_LAYOUT.exec(path);
    if (!m || m[4].slice(0, 6) !== m[1] + m[2] + m[3]) {
      res.writeHead(400).end('bad path');
      return;
    }
    const sig = m[4];
    peak = Math.max(peak, ++active);
    res.on('close', () => active--);
    const times = requests.get(sig) ?? [];
    times.push(performance.now());
    requests.set(sig, times);
    const n = ++total;
    if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
    if (options.throttleFirst && n <= options.throttleFirst) {
      res.writeHead(429, { 'retry-after': options.throttleRetryAfter ?? '0' }).end('slow down');
      return;
    }
    const jpeg = await image(sig);
    const sendJpeg = () =>
      res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': jpeg.length }).end(jpeg);
    const behaviour = behaviours.get(sig) ?? options.fallback ?? 'ok';
    switch (behaviour) {
      case 'ok':
        return sendJpeg();
      case '404':
      case '410':
      case '403':
      case '500':
        res.writeHead(Number(behaviour)).end('no');
        return;
      case 'in-parts':
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': jpeg.length });
        res.write(jpeg.subarray(0, jpeg.length >> 1));
        setTimeout(() => res.end(jpeg.subarray(jpeg.length >> 1)), 20);
        return;
      case 'redirect':
        if (query) sendJpeg();
        else res.writeHead(302, { location: `${path}?moved` }).end();
        return;
      case 'redirect-loop':
        res.writeHead(302, { location: path }).end();
        return;
      case 'redirect-bad':
        res.writeHead(302, { location: `http://[bad${path}` }).end();
        return;
      case 'redirect-ftp':
        res.writeHead(302, { location: `ftp://127.0.0.1${path}` }).end();
        return;
      case '429-once':
        if (times.length === 1) res.writeHead(429, { 'retry-after': '1' }).end('slow down');
        else sendJpeg();
        return;
      case '500-once':
        if (times.length === 1) res.writeHead(500).end('oops');
        else sendJpeg();
        return;
      case 'stall':
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': jpeg.length });
        res.write(jpeg.subarray(0, 64));
        return; // never ends; the client's body timeout must fire
      case 'truncated':
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': jpeg.length });
        res.write(jpeg.subarray(0, jpeg.length >> 1), () => res.socket?.destroy());
        return;
      case 'html':
        res
          .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
          .end('<!DOCTYPE html><html><body>Oops</body></html>');
        return;
      case 'html-as-jpeg':
        res
          .writeHead(200, { 'content-type': 'image/jpeg' })
          .end('<!DOCTYPE html><html><body>Please log in</body></html>');
        return;
      case 'corrupt': {
        const bad = Buffer.from(jpeg);
        for (let i = Math.floor(bad.length * 0.4); i < bad.length * 0.9; i++) bad[i] = (i * 31) & 255;
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': bad.length }).end(bad);
        return;
      }
      case 'cut': {
        const half = jpeg.subarray(0, jpeg.length >> 1);
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': half.length }).end(half);
        return;
      }
      case 'drip': {
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': jpeg.length });
        let i = 0;
        const timer = setInterval(() => (res.destroyed ? clearInterval(timer) : res.write(jpeg.subarray(i, ++i))), 100);
        res.on('close', () => clearInterval(timer));
        return;
      }
      case 'huge': {
        const big = Buffer.concat([jpeg.subarray(0, 4), Buffer.alloc(300_000)]);
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': big.length }).end(big);
        return;
      }
      case 'huge-chunked': {
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        res.write(jpeg.subarray(0, 16));
        for (let i = 0; i < 20 && !res.destroyed; i++) res.write(Buffer.alloc(16_384));
        res.end();
        return;
      }
      case 'empty':
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': 0 }).end();
        return;
      case 'held':
        await released;
        return sendJpeg();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    behaviours,
    requests,
    count: (sig) => requests.get(sig)?.length ?? 0,
    total: () => total,
    peak: () => peak,
    image,
    release,
    options,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Write raw STL files (pairs JSON lines + category JSON) for `scenes` scenes with `perScene` products each,
 * and normalise them into workdir/dataset/fashion.json through the data layer.
 */
export async function writeDataset(workdir: string, scenes: number, perScene = 2): Promise<Dataset> {
  const paths = workdirPaths(workdir);
  const lines: string[] = [];
  const categories: Record<string, string> = {};
  for (let s = 0; s < scenes; s++) {
    const scene = sigOf(`scene-${s}`);
    for (let p = 0; p < perScene; p++) {
      const product = sigOf(`product-${s}-${p}`);
      categories[product] = `Apparel & Accessories|${p % 2 ? 'Shoes' : 'Pants'}`;
      lines.push(JSON.stringify({ product, scene, bbox: [0.1, 0.1, 0.5, 0.6] }));
    }
  }
  await mkdir(dirname(paths.rawPairs('fashion')), { recursive: true });
  await writeFile(paths.rawPairs('fashion'), lines.join('\n') + '\n');
  await writeFile(paths.rawCategories('fashion'), JSON.stringify(categories));
  const { dataset } = await normaliseWorkdir(workdir, 'fashion', { source: 'synthetic' });
  return dataset;
}

/** Every manifest line, parsed (throws on a torn or corrupt line). */
export async function manifestLines(workdir: string): Promise<ManifestRecord[]> {
  const text = await readFile(workdirPaths(workdir).imageManifest, 'utf8').catch(() => '');
  if (text && !text.endsWith('\n')) throw new Error('manifest does not end with a newline');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as ManifestRecord);
}

/** The last manifest record per signature. */
export async function finalRecords(workdir: string): Promise<Map<string, ManifestRecord>> {
  return new Map((await manifestLines(workdir)).map((r) => [r.sig, r]));
}

/** Names of temp files left in the image folders. */
export async function tempFiles(workdir: string): Promise<string[]> {
  const paths = workdirPaths(workdir);
  const names: string[] = [];
  for (const kind of ['scenes', 'products'] as const) {
    for (const name of await readdir(paths.images(kind)).catch(() => [] as string[]))
      if (name.startsWith('.tmp-')) names.push(name);
  }
  return names;
}
