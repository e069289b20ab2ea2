// The demo page and the runs dashboard in a real browser: playwright-core driving Debian's chromium (headless,
// installed by .ci/run) against `ctl serve` on 127.0.0.1. Upload a generated outfit photo and see product cards,
// filter by a category chip, pick a dataset scene by keyboard and see its true products marked, check the phone
// width, open /runs and see the curves drawn, and no console errors anywhere. Screenshots go to
// test-results/serve-browser/; with CTL_UPDATE_SCREENSHOTS=1 the README's are rewritten in docs/screenshots/.
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workdirPaths } from '../src/data/workdir.js';
import { startServer, type RunningServer } from '../src/serve/run.js';
import { acquireLock } from '../src/util/lock.js';
import { patternImage } from './embed-fixtures.js';
import { RUN, SYNTH_RUN, trainedWorkdir, type ServeFixture } from './serve-fixtures.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const OUT = resolve(__dirname, '../test-results/serve-browser');
const DOCS = resolve(__dirname, '../docs/screenshots');
// CI installs chromium (.ci/run); elsewhere the browser tests need it too, or they are skipped, said out loud.
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && !process.env.CI) console.warn(`serve-browser: ${CHROMIUM} not found; skipping the browser tests`);

let fixture: ServeFixture;
let server: RunningServer;
let synthServer: RunningServer;
let context: BrowserContext;
let profile: string;
const consoleErrors: string[] = [];

/** A page whose console errors fail the run, unless the test makes requests fail on purpose. */
async function newPage(width = 1280, height = 900, { failsRequests = false } = {}): Promise<Page> {
  const page = await context.newPage();
  await page.setViewportSize({ width, height });
  page.on('console', (msg) => {
    const failedRequest = msg.text().startsWith('Failed to load resource');
    if (msg.type() === 'error' && !(failsRequests && failedRequest)) consoleErrors.push(`${page.url()}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => consoleErrors.push(`${page.url()}: ${err.message}`));
  return page;
}

async function screenshot(page: Page, name: string, forReadme = false): Promise<void> {
  const file = join(OUT, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (forReadme && process.env.CTL_UPDATE_SCREENSHOTS) {
    await mkdir(DOCS, { recursive: true });
    // A palette PNG: a third of the size, the same picture to the eye.
    await sharp(file)
      .png({ palette: true, compressionLevel: 9 })
      .toFile(join(DOCS, `${name}.png`));
  }
}

describe.skipIf(!haveChromium && !process.env.CI)('ctl serve in chromium', () => {
  beforeAll(async () => {
    await mkdir(OUT, { recursive: true });
    fixture = await trainedWorkdir();
    const common = { workdir: fixture.workdir, port: 0, host: '127.0.0.1', queue: 64, backend: 'wasm' as const };
    server = await startServer({ ...common, run: RUN, device: 'cpu' });
    synthServer = await startServer({ ...common, run: SYNTH_RUN, device: 'cpu' });
    profile = await mkdtemp(join(tmpdir(), 'ctl-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    // The page may show remote thumbnails (the image host) for images the workdir lacks: never leave 127.0.0.1.
    await context.route(/^https?:\/\/(?!127\.0\.0\.1)/, (route) => route.abort());
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    await server?.close();
    await synthServer?.close();
    await fixture?.remove();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  it('upload a photo → product cards; a category chip filters them', async () => {
    const page = await newPage();
    await page.goto(server.url);
    await expect.poll(() => page.locator('.chip').count()).toBeGreaterThan(1);
    const photo = await patternImage(11, 192, 256, 'jpeg');
    await page.setInputFiles('#upload', { name: 'outfit.jpg', mimeType: 'image/jpeg', buffer: photo });
    const cards = page.locator('#grid .card:not(.placeholder)');
    await expect.poll(() => cards.count()).toBe(12);
    expect(await page.locator('#status').textContent()).toMatch(/Top 12 of \d+ products \(all categories\)/);

    const chip = page.locator('.chip').nth(1);
    const category = await chip.getAttribute('data-category');
    await chip.click();
    expect(await chip.getAttribute('aria-pressed')).toBe('true');
    await expect.poll(() => page.locator('#status').textContent()).toContain(`(${category})`);
    const shown = await page.locator('#grid .card .cat').allTextContents();
    expect(shown.length).toBeGreaterThan(0);
    expect(new Set(shown)).toEqual(new Set([category]));
    await page.close();
  });

  it('pick a dataset scene by keyboard → its boxes drawn, true products ranked and marked', async () => {
    const page = await newPage();
    await page.goto(server.url);
    await expect.poll(() => page.locator('.scene').count()).toBeGreaterThan(0);
    // A scene of the first page with a true product in its top 12, found through the API the page uses.
    const sigs = await page.locator('.scene').evaluateAll((nodes) => nodes.map((n) => (n as HTMLElement).dataset.sig!));
    let chosen: { sig: string; body: any } | null = null;
    for (const sig of sigs) {
      const res = await fetch(new URL('/api/recommend', server.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ scene: sig, k: 12 }),
      });
      const body = await res.json();
      if (body.results.some((r: any) => r.isTrue)) {
        chosen = { sig, body };
        break;
      }
    }
    expect(chosen, 'a scene of the first page with a true product in its top 12').not.toBeNull();
    await page.locator(`.scene[data-sig="${chosen!.sig}"]`).focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#grid .card:not(.placeholder)').count()).toBe(12);
    expect(await page.locator('#boxes .box').count()).toBe(chosen!.body.truth.length);
    const ranks = await page.locator('#truth .rank').allTextContents();
    expect(ranks).toEqual(chosen!.body.truth.map((t: any) => String(t.rank)));
    const marked = await page
      .locator('#grid .card.true')
      .evaluateAll((n) => n.map((e) => (e as HTMLElement).dataset.product));
    expect(marked).toEqual(chosen!.body.results.filter((r: any) => r.isTrue).map((r: any) => r.product));
    // The list under the photo is numbered as the boxes on it are, and the picked scene is marked.
    expect(await page.locator('#truth .number').allTextContents()).toEqual(
      chosen!.body.truth.map((_: unknown, i: number) => String(i + 1)),
    );
    expect(await page.locator('.scene[aria-pressed="true"]').getAttribute('data-sig')).toBe(chosen!.sig);
    await screenshot(page, 'demo', true);

    // Phone widths: one column, nothing wider than the screen.
    for (const width of [390, 320]) {
      await page.setViewportSize({ width, height: 844 });
      expect(await page.evaluate(() => document.documentElement.scrollWidth), `${width} px`).toBeLessThanOrEqual(width);
    }
    await screenshot(page, 'demo-phone');
    await page.close();
  });

  it("a slow answer never overwrites a newer request's, and a failed one leaves nothing of the last scene", async () => {
    const page = await newPage(1280, 900, { failsRequests: true });
    await page.goto(server.url);
    await expect.poll(() => page.locator('.scene').count()).toBeGreaterThan(1);
    // The first request (all categories) answers late; the chip clicked meanwhile sends the second.
    let first = true;
    await page.route('**/api/recommend', async (route) => {
      if (first) {
        first = false;
        await new Promise((resolve) => setTimeout(resolve, 1500));
      }
      await route.continue();
    });
    await page.locator('.scene').first().click();
    const chip = page.locator('.chip').nth(1);
    const category = await chip.getAttribute('data-category');
    await chip.click();
    await expect.poll(() => page.locator('#status').textContent()).toContain(`(${category})`);
    await page.waitForTimeout(2000); // the late answer has come by now
    expect(await page.locator('#status').textContent()).toContain(`(${category})`);
    expect(new Set(await page.locator('#grid .card .cat').allTextContents())).toEqual(new Set([category]));
    expect(await page.locator('#truth').isVisible()).toBe(true);

    await page.unroute('**/api/recommend');
    await page.route('**/api/recommend', (route) => route.abort());
    await page.locator('.scene').nth(1).click();
    await expect.poll(() => page.locator('#status').textContent()).toMatch(/^Error: /);
    expect(await page.locator('#truth').isVisible()).toBe(false);
    expect(await page.locator('#grid .card').count()).toBe(0);
    await page.close();
  });

  it('on a phone, a refused upload says so in words, names the file, and is scrolled into view', async () => {
    const page = await newPage(390, 844, { failsRequests: true }); // the server answers the text file with a 415
    await page.goto(server.url);
    await expect.poll(() => page.locator('.scene').count()).toBeGreaterThan(0);
    const status = page.locator('#status');
    const inView = () => status.evaluate((node) => node.getBoundingClientRect().bottom <= innerHeight);
    expect(await inView()).toBe(false); // below the picker on a phone
    // Refused by the page itself: the status is brought into view rather than the user left looking at nothing.
    const oversize = Buffer.alloc(10 * 1024 * 1024 + 1);
    await page.setInputFiles('#upload', { name: 'big.jpg', mimeType: 'image/jpeg', buffer: oversize });
    await expect.poll(() => status.textContent()).toBe('Error: big.jpg is over the 10 MB upload limit.');
    expect(await status.getAttribute('class')).toContain('error');
    await expect.poll(inView).toBe(true);
    // Refused by the server: its reason, with the file it is about.
    await page.setInputFiles('#upload', {
      name: 'notes.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('not a photo'),
    });
    await expect.poll(() => status.textContent()).toMatch(/^Error: notes\.txt: .*not a JPEG, PNG or WebP/);
    expect(await status.getAttribute('class')).toContain('error');
    // A later answer is not an error any more.
    await page.locator('.scene').first().click();
    await expect.poll(() => status.textContent()).toMatch(/^Top \d+ of/);
    expect(await status.getAttribute('class')).not.toContain('error');
    await page.close();
  });

  it('a page that cannot reach the server says so instead of "loading the run…"', async () => {
    const page = await newPage(1280, 900, { failsRequests: true });
    await page.route('**/api/health', (route) => route.abort());
    await page.goto(server.url);
    await expect.poll(() => page.locator('#run-info').textContent()).toMatch(/^Could not load the run: /);
    expect(await page.locator('#status').getAttribute('class')).toContain('error');
    expect(await page.locator('#prev').isDisabled()).toBe(true);
    expect(await page.locator('#next').isDisabled()).toBe(true);
    await page.close();
  });

  it('a run on synthetic embeddings says uploads are off and offers the dataset scenes', async () => {
    const page = await newPage();
    await page.goto(synthServer.url);
    await expect.poll(() => page.locator('#upload-off').isVisible()).toBe(true);
    expect(await page.locator('#upload-off').textContent()).toMatch(/synthetic embeddings/);
    expect(await page.locator('#upload').isDisabled()).toBe(true);
    await expect.poll(() => page.locator('.scene').count()).toBeGreaterThan(0);
    await page.close();
  });

  it("a generated dataset's image the workdir lacks is a blank, not a request to the image host", async () => {
    const copy = await mkdtemp(join(tmpdir(), 'ctl-serve-blank-'));
    await cp(fixture.workdir, copy, { recursive: true });
    const [first] = (await (await fetch(new URL('/api/scenes?limit=1', server.url))).json()).scenes;
    await rm(workdirPaths(copy).imageFile('scenes', first.sig));
    const blank = await startServer({
      workdir: copy,
      port: 0,
      host: '127.0.0.1',
      queue: 8,
      backend: 'wasm',
      run: RUN,
      device: 'cpu',
    });
    const page = await newPage();
    try {
      await page.goto(blank.url);
      const shown = page.locator(`.scene[data-sig="${first.sig}"] img`);
      await expect.poll(() => shown.count()).toBe(1);
      expect(await shown.getAttribute('src')).toMatch(/^data:image\/svg\+xml,/);
      await shown.click(); // the query photo is the blank too, with the boxes drawn on it
      await expect.poll(() => page.locator('#boxes .box').count()).toBeGreaterThan(0);
      expect(await page.locator('#query-image').getAttribute('src')).toMatch(/^data:image\/svg\+xml,/);
      expect(await page.locator('#query-view').isVisible()).toBe(true);
      expect((await page.locator('#query-image').boundingBox())!.width).toBeGreaterThan(200); // a photo's size
    } finally {
      await page.close();
      await blank.close();
      await rm(copy, { recursive: true, force: true });
    }
  });

  it('/runs: the runs table, curves drawn with data points, eval tables and per-category bars', async () => {
    const page = await newPage();
    await page.goto(new URL('/runs', server.url).toString());
    await expect.poll(() => page.locator('#runs-table tbody tr').count()).toBe(2);
    await expect.poll(() => page.locator('.uplot canvas').count()).toBeGreaterThanOrEqual(5);
    // Every chart's canvas has drawn pixels (its series), not just axes on a blank plot.
    const inked = await page.locator('.uplot canvas').evaluateAll((canvases) =>
      canvases.map((c) => {
        const canvas = c as HTMLCanvasElement;
        const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
        let coloured = 0;
        for (let i = 0; i < data.length; i += 4)
          if (data[i + 3] > 0 && !(data[i] === data[i + 1] && data[i + 1] === data[i + 2])) coloured++;
        return coloured;
      }),
    );
    for (const n of inked) expect(n).toBeGreaterThan(50);
    // Two series on the validation chart (both runs) plus the zero-shot line.
    expect(await page.locator('.chart').first().locator('.u-legend .u-series').count()).toBeGreaterThanOrEqual(4);
    expect(await page.locator('table.report tbody tr').count()).toBe(2);
    // Each report says what computed it: the checkpoint and the backend that ran its towers.
    expect(await page.locator('table.report tbody tr').first().textContent()).toContain(
      `, towers on ${fixture.catalogReport.backend}`,
    );
    expect(await page.locator('.bars .bar').count()).toBeGreaterThan(0);
    expect(await page.locator('#runs-table').textContent()).toContain('finished');
    // Each number says what it is: the best epoch's validation metric by name, the eval's R@10 with its split.
    const served = page.locator('#runs-table tbody tr', { hasText: `${RUN} (served)` });
    const r10 = `${(fixture.catalogReport.metrics.recall['10'] * 100).toFixed(1)}%`;
    expect(await served.textContent()).toContain(`${r10} (test)`);
    expect(await served.textContent()).toMatch(/\d+: catalog R@10 \d+\.\d%/);
    // The validation chart writes a recall as the tables do, in percent (its legend, on hovering an epoch).
    const validation = page.locator('.chart', { hasText: 'Validation: catalog recall@10' });
    await validation.locator('.u-over').hover();
    const values = await validation.locator('.u-legend .u-series .u-value').allTextContents();
    expect(
      values.slice(1).every((v) => /^\d+\.\d%$/.test(v)),
      values.join(' '),
    ).toBe(true);
    // A run has one colour on every chart: the parts of its per-step loss too (told apart by their dashes).
    const markerColours = (chart: string) =>
      page
        .locator('.chart', { hasText: chart })
        .locator('.u-legend .u-series')
        .evaluateAll((rows) =>
          rows.slice(1).map((row): [string, string] => [
            row.querySelector('.u-label')!.textContent!.split(' ')[0], // "tiny-run infonce": the run
            getComputedStyle(row.querySelector('.u-marker')!).borderColor,
          ]),
        );
    const runColour = new Map(await markerColours('Train loss per epoch'));
    const stepColours = await markerColours('Train loss per step');
    expect(stepColours).toHaveLength(6); // two runs × total, InfoNCE, triplet
    for (const [run, colour] of stepColours) expect(colour, run).toBe(runColour.get(run));
    await screenshot(page, 'runs', true);
    await page.close();
  });

  it('/runs shows a run started after the page was opened, and one validation chart per selection metric', async () => {
    const page = await newPage(1280, 900, { failsRequests: true }); // one run's detail fails on purpose
    await page.clock.install();
    await page.goto(new URL('/runs', server.url).toString());
    await expect
      .poll(() => page.locator('.chart h3', { hasText: 'Validation' }).allTextContents())
      .toEqual(['Validation: catalog recall@10']);
    // A poll that finds nothing new leaves the charts as they are (a redraw would reset a user's zoom).
    await page
      .locator('.uplot')
      .first()
      .evaluate((node) => ((node as HTMLElement).dataset.seen = 'yes'));
    const updated = await page.locator('#updated').textContent();
    await page.clock.fastForward(31_000);
    await expect.poll(() => page.locator('#updated').textContent()).not.toBe(updated);
    expect(await page.locator('.uplot[data-seen="yes"]').count()).toBe(1);
    // Named as an Object's own property is: a name is looked up as a key, never on a prototype.
    const later = join(fixture.workdir, 'runs', 'constructor');
    await cp(join(fixture.workdir, 'runs', RUN), later, { recursive: true });
    const stateFile = join(later, 'checkpoints', 'last', 'state.json');
    const state = JSON.parse(await readFile(stateFile, 'utf8'));
    const selection = { ...state.config.selection, metric: 'mrr' };
    await writeFile(stateFile, JSON.stringify({ ...state, config: { ...state.config, selection } }));
    try {
      await page.clock.fastForward(31_000);
      await expect.poll(() => page.locator('#runs-table tbody tr').count()).toBe(3);
      await expect
        .poll(async () => (await page.locator('.chart h3', { hasText: 'Validation' }).allTextContents()).sort())
        .toEqual(['Validation: catalog mrr', 'Validation: catalog recall@10']);
      const laterRow = page.locator('#runs-table tbody tr', { hasText: 'constructor' });
      expect(await laterRow.textContent()).toContain('finished');
      // A run whose detail fails (removed between the list and its detail): its row says why, the others stay drawn.
      await page.route('**/api/runs/constructor', (route) =>
        route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":"no run \'constructor\'"}' }),
      );
      await page.clock.fastForward(31_000);
      await expect.poll(() => laterRow.textContent()).toContain("details unavailable: no run 'constructor'");
      expect(await page.locator('#runs-table tbody tr').count()).toBe(3);
      expect(await page.locator('.chart h3', { hasText: 'Validation' }).allTextContents()).toEqual([
        'Validation: catalog recall@10',
      ]);
    } finally {
      await rm(later, { recursive: true, force: true });
      await page.close();
    }
  });

  it('/runs says in words when the server does not answer, and recovers by itself', async () => {
    const page = await newPage(1280, 900, { failsRequests: true });
    await page.clock.install();
    await page.route('**/api/runs', (route) =>
      route.fulfill({ status: 502, contentType: 'text/html', body: '<h1>Bad Gateway</h1>' }),
    );
    await page.goto(new URL('/runs', server.url).toString());
    const updated = page.locator('#updated');
    await expect.poll(() => updated.textContent()).toBe('Error: HTTP 502 (trying again)');
    expect(await updated.getAttribute('class')).toContain('error');
    await page.unroute('**/api/runs');
    await page.clock.fastForward(31_000);
    await expect.poll(() => updated.textContent()).toMatch(/^2 run\(s\), updated/);
    expect(await updated.getAttribute('class')).not.toContain('error');
    await page.close();
  });

  it('/runs follows a running training without a reload', async () => {
    // A run at epoch 1 of 3 that a trainer holds: the dashboard polls while it runs.
    const live = join(fixture.workdir, 'runs', 'live');
    await cp(join(fixture.workdir, 'runs', RUN), live, { recursive: true });
    const stateFile = join(live, 'checkpoints', 'last', 'state.json');
    const state = JSON.parse(await readFile(stateFile, 'utf8'));
    const lines = (await readFile(join(live, 'metrics.jsonl'), 'utf8')).trim().split('\n');
    const throughEpoch = (epoch: number) =>
      lines.filter((l) => JSON.parse(l).epoch <= epoch || JSON.parse(l).type === 'zero-shot').join('\n') + '\n';
    await writeFile(stateFile, JSON.stringify({ ...state, epoch: 1, epochsWithoutGain: 0 }));
    await writeFile(join(live, 'metrics.jsonl'), throughEpoch(1));
    const trainer = await acquireLock(live, () => 'busy'); // as `ctl train` holds it
    try {
      const page = await newPage();
      await page.goto(new URL('/runs', server.url).toString());
      const liveRow = page.locator('#runs-table tbody tr', { hasText: 'live' });
      await expect.poll(() => liveRow.textContent()).toContain('running (epoch 1/3)');
      // The next epoch lands on disk; the page shows it by itself.
      await writeFile(join(live, 'metrics.jsonl'), throughEpoch(2));
      await writeFile(stateFile, JSON.stringify({ ...state, epoch: 2, epochsWithoutGain: 0 }));
      await expect.poll(() => liveRow.textContent(), { timeout: 15_000 }).toContain('running (epoch 2/3)');
      await page.close();
    } finally {
      await trainer.release();
      await rm(live, { recursive: true, force: true });
    }
  });

  it('logged no console errors on any page', () => {
    expect(consoleErrors).toEqual([]);
  });
});
