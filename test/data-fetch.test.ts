// `ctl data fetch` against a real HTTP server on 127.0.0.1: success and idempotence, then each failure
// (404, truncated body, invalid JSON, a bad row in strict mode, a server that never answers, a redirect loop or
// chain) must give a clear error and leave no partial file; a 500 followed by success must work through the retry,
// and a 503 waits its Retry-After.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fetchDomain } from '../src/data/stl/fetch.js';
import { InputError, RunError } from '../src/util/errors.js';
import { makeRaw, pairsText, removeTempDirs, rejectionOf, tempDir } from './data-fixtures.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const { pairs, categories } = makeRaw(60, 40, 11);
const PAIRS = pairsText(pairs);
const CATEGORIES = JSON.stringify(categories);

let server: Server;
let base: string;
let routes: Map<string, Handler>;
let requests: string[];

const serve =
  (body: string, status = 200): Handler =>
  (_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

const redirect =
  (location: string): Handler =>
  (_req, res) =>
    res.writeHead(302, { location }).end();

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(req.url!);
    const handler = routes.get(req.url!);
    if (handler) handler(req, res);
    else serve('404: Not Found', 404)(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/stl`;
});

afterAll(removeTempDirs);

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  requests = [];
  routes = new Map([
    ['/stl/fashion.json', serve(PAIRS)],
    ['/stl/fashion-cat.json', serve(CATEGORIES)],
  ]);
});

const options = { domain: 'fashion' as const, retries: 2, backoffMs: 10, timeoutS: 5 };

/** Everything in the workdir's stl/ and dataset/ folders (missing folders count as empty). */
async function leftovers(workdir: string): Promise<string[]> {
  const list = async (dir: string) => (await readdir(join(workdir, dir)).catch(() => [])).map((n) => `${dir}/${n}`);
  return [...(await list('stl')), ...(await list('dataset'))].sort();
}

/** What a completed fetch leaves (sorted): the raw files, the fetch manifest and the normalised dataset. */
const FETCHED = ['dataset/fashion.json', 'stl/fashion-cat.json', 'stl/fashion.fetch.json', 'stl/fashion.json'];

describe('fetchDomain', () => {
  it('downloads, validates, normalises; a second run does nothing; --force fetches again', async () => {
    const workdir = await tempDir();
    const first = await fetchDomain(workdir, { ...options, baseUrl: base });
    expect(first.status).toBe('fetched');
    expect(first.dataset.pairs).toEqual(pairs);
    expect(first.dataset.source).toBe('stl');
    expect(await readFile(join(workdir, 'stl', 'fashion.json'), 'utf8')).toBe(PAIRS);
    expect(await readFile(join(workdir, 'stl', 'fashion-cat.json'), 'utf8')).toBe(CATEGORIES);
    expect(await leftovers(workdir)).toEqual(FETCHED);
    expect(requests).toEqual(['/stl/fashion.json', '/stl/fashion-cat.json']);

    const second = await fetchDomain(workdir, { ...options, baseUrl: base });
    expect(second.status).toBe('up-to-date');
    expect(requests).toHaveLength(2);

    const forced = await fetchDomain(workdir, { ...options, baseUrl: base, force: true });
    expect(forced.status).toBe('fetched');
    expect(requests).toHaveLength(4);
  });

  it('resumes from files in place, and fetches again when other files (e.g. synthetic ones) replaced them', async () => {
    const workdir = await tempDir();
    await fetchDomain(workdir, { ...options, baseUrl: base });
    await rm(join(workdir, 'dataset', 'fashion.json'));
    const resumed = await fetchDomain(workdir, { ...options, baseUrl: base });
    expect(resumed.status).toBe('normalised');
    expect(requests).toHaveLength(2);
    // Same size, other bytes: what `ctl data synth` leaves is not the released file.
    await writeFile(join(workdir, 'stl', 'fashion.json'), PAIRS.replace(/"bbox":\[0\./, '"bbox":[1.'));
    const again = await fetchDomain(workdir, { ...options, baseUrl: base });
    expect(again.status).toBe('fetched');
    expect(await readFile(join(workdir, 'stl', 'fashion.json'), 'utf8')).toBe(PAIRS);
  });

  it('a 404 is a clear input error and leaves nothing behind', async () => {
    const workdir = await tempDir();
    routes.delete('/stl/fashion-cat.json');
    const err = await rejectionOf(fetchDomain(workdir, { ...options, baseUrl: base }));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toMatch(
      /HTTP 404 for http:\/\/127\.0\.0\.1:\d+\/stl\/fashion-cat\.json \(check --base-url and --domain\)/,
    );
    expect(requests.filter((r) => r.endsWith('-cat.json'))).toHaveLength(1); // not retried
    expect(await leftovers(workdir)).toEqual([]);
  });

  it('a failed --force keeps the previous good files and dataset', async () => {
    const workdir = await tempDir();
    await fetchDomain(workdir, { ...options, baseUrl: base });
    const before = await readFile(join(workdir, 'dataset', 'fashion.json'), 'utf8');
    routes.set('/stl/fashion.json', serve('{"product": "zz"}\n'));
    await expect(fetchDomain(workdir, { ...options, baseUrl: base, force: true })).rejects.toThrow(/no valid pairs/);
    expect(await readFile(join(workdir, 'dataset', 'fashion.json'), 'utf8')).toBe(before);
    expect(await readFile(join(workdir, 'stl', 'fashion.json'), 'utf8')).toBe(PAIRS);
    expect(await leftovers(workdir)).toEqual(FETCHED);
  });

  it('a truncated body is retried, then fails clearly with no partial file', async () => {
    const workdir = await tempDir();
    routes.set('/stl/fashion.json', (_req, res) => {
      res.writeHead(200, { 'content-length': Buffer.byteLength(PAIRS) });
      res.write(PAIRS.slice(0, 500), () => res.destroy());
    });
    const err = await rejectionOf(fetchDomain(workdir, { ...options, baseUrl: base }));
    expect(err).toBeInstanceOf(RunError);
    expect(err.message).toMatch(/fashion\.json failed after 3 attempt\(s\): body incomplete after \d+ of \d+ bytes/);
    expect(requests.filter((r) => r === '/stl/fashion.json')).toHaveLength(3);
    expect(await leftovers(workdir)).toEqual([]);
  });

  it('follows 5 redirects; a sixth, a loop or a Location that is no URL is a clear input error, not retried', async () => {
    /** `/stl/fashion.json` sent on `count` times (relative Locations), the last time to the pairs. */
    const redirectPairs = (count: number) => {
      for (let hop = 1; hop <= count; hop++)
        routes.set(
          hop === 1 ? '/stl/fashion.json' : `/hop/${hop - 1}`,
          redirect(hop < count ? `/hop/${hop}` : '/pairs'),
        );
      routes.set('/pairs', serve(PAIRS));
    };
    redirectPairs(5);
    const fetched = await fetchDomain(await tempDir(), { ...options, baseUrl: base });
    expect([fetched.status, fetched.dataset.pairs]).toEqual(['fetched', pairs]);

    const refused = async (expected: RegExp, asked: string[]) => {
      requests = [];
      const workdir = await tempDir();
      const err = await rejectionOf(fetchDomain(workdir, { ...options, baseUrl: base }));
      expect(err).toBeInstanceOf(InputError);
      expect(err.message).toMatch(expected);
      expect(requests).toEqual(asked);
      expect(await leftovers(workdir)).toEqual([]);
    };
    redirectPairs(6);
    await refused(/^too many redirects \(more than 5\) from http:\/\/127\.0\.0\.1:\d+\/stl\/fashion\.json$/, [
      '/stl/fashion.json',
      '/hop/1',
      '/hop/2',
      '/hop/3',
      '/hop/4',
      '/hop/5',
    ]);
    routes.set('/stl/fashion.json', redirect('/stl/elsewhere.json'));
    routes.set('/stl/elsewhere.json', redirect(`${base}/fashion.json`));
    await refused(/^redirect loop from (http:\/\/127\.0\.0\.1:\d+\/stl\/fashion\.json): back to \1$/, [
      '/stl/fashion.json',
      '/stl/elsewhere.json',
    ]);
    routes.set('/stl/fashion.json', redirect('http://[oops'));
    await refused(/\/stl\/fashion\.json redirects to http:\/\/\[oops, which is no http\(s\) URL$/, [
      '/stl/fashion.json',
    ]);
    routes.set('/stl/fashion.json', redirect('ftp://example.com/fashion.json'));
    await refused(/\/stl\/fashion\.json redirects to ftp:\/\/example\.com\/fashion\.json, which is no http\(s\) URL$/, [
      '/stl/fashion.json',
    ]);
    // A status after redirects names where it came from, and where it was asked.
    routes.set('/stl/fashion.json', redirect('/stl/moved.json'));
    routes.set('/stl/moved.json', (_req, res) => res.writeHead(404).end());
    await refused(
      /^HTTP 404 for (http:\/\/127\.0\.0\.1:\d+\/stl\/)moved\.json \(redirected from \1fashion\.json\) \(check --base-url/,
      ['/stl/fashion.json', '/stl/moved.json'],
    );
  });

  it('invalid JSON is a clear input error naming the URL and line, with no partial file', async () => {
    const workdir = await tempDir();
    routes.set('/stl/fashion-cat.json', serve(CATEGORIES.slice(0, CATEGORIES.length / 2)));
    const err = await rejectionOf(fetchDomain(workdir, { ...options, baseUrl: base }));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toMatch(
      /^http:\/\/127\.0\.0\.1:\d+\/stl\/fashion-cat\.json:1: file: the file to end with "\}"/,
    );
    expect(await leftovers(workdir)).toEqual([]);
  });

  it('strict mode stops at the first bad row with url:line: field: expected, with no partial file', async () => {
    const workdir = await tempDir();
    const bad = PAIRS + JSON.stringify({ ...pairs[0], bbox: [0.1, 0.2, 0.3] }) + '\n';
    routes.set('/stl/fashion.json', serve(bad));
    const err = await rejectionOf(fetchDomain(workdir, { ...options, baseUrl: base, strict: true }));
    expect(err.message).toMatch(new RegExp(`/stl/fashion\\.json:${pairs.length + 1}: bbox: 4 numbers`));
    expect(await leftovers(workdir)).toEqual([]);
    // Lenient, the same file loads with the row skipped and counted.
    const ok = await fetchDomain(workdir, { ...options, baseUrl: base });
    expect(ok.dataset.skipped).toEqual({ 'pairs.bad-bbox': 1 });
  });

  it('retries after a 500 and succeeds', async () => {
    const workdir = await tempDir();
    let calls = 0;
    routes.set('/stl/fashion.json', (req, res) => (++calls === 1 ? serve('oops', 500) : serve(PAIRS))(req, res));
    const result = await fetchDomain(workdir, { ...options, baseUrl: base });
    expect(result.status).toBe('fetched');
    expect(calls).toBe(2);
    expect(await readFile(join(workdir, 'stl', 'fashion.json'), 'utf8')).toBe(PAIRS);
  });

  it("waits a 503's Retry-After before asking again, not the (shorter) backoff", async () => {
    const workdir = await tempDir();
    const asked: number[] = [];
    routes.set('/stl/fashion.json', (req, res) => {
      asked.push(Date.now());
      if (asked.length > 1) return serve(PAIRS)(req, res);
      res.writeHead(503, { 'retry-after': '1' }).end('busy');
    });
    expect((await fetchDomain(workdir, { ...options, baseUrl: base })).status).toBe('fetched');
    expect(asked).toHaveLength(2);
    expect(asked[1] - asked[0]).toBeGreaterThanOrEqual(950); // timers may round a few ms early
  });

  it('gives up on a server that never answers, after the timeout', async () => {
    const workdir = await tempDir();
    routes.set('/stl/fashion.json', () => undefined);
    const err = await rejectionOf(fetchDomain(workdir, { ...options, baseUrl: base, timeoutS: 0.3, retries: 0 }));
    expect(err).toBeInstanceOf(RunError);
    expect(err.message).toMatch(/failed after 1 attempt\(s\): .*(timeout|Timeout)/);
    expect(await leftovers(workdir)).toEqual([]);
  });
});
