// The demo page: a photo (upload or a dataset scene) → POST /api/recommend → a grid of products with scores.
// For a dataset scene the true products' boxes are drawn on the photo, marked in the grid, and their ranks listed.
import { $, api, el, pct } from '/static/dom.js';

const K = 12;
const PAGE = 12;
const MAX_UPLOAD_BYTES = 10 * 1024 * 1024; // the server's limit, checked here to say so before sending
// Where the server has no image to show (a generated dataset's image not on disk): a blank in the placeholders' grey,
// of a scene photo's size (the query photo shows at its own size; thumbnails are sized by the page).
const NO_IMAGE =
  'data:image/svg+xml,' +
  encodeURIComponent(
    '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="400"><rect width="300" height="400" fill="#f1f3f4"/></svg>',
  );

const state = { category: null, query: null, offset: 0, total: 0, health: null };

/** On a narrow screen the results are below the picker: what the user must see is scrolled to. */
const narrow = () => matchMedia('(max-width: 720px)').matches;

/** The status line: what the grid shows, or what is being done. */
function say(text) {
  $('status').textContent = text;
  $('status').classList.remove('error');
}

/** What went wrong, in words, marked as an error and in view (on a phone the status is below the fold). */
function showError(message) {
  $('status').textContent = `Error: ${message}`;
  $('status').classList.add('error');
  if (narrow()) $('status').scrollIntoView({ block: 'center' });
}

/** k placeholder cards, so the grid keeps its size while results load (no layout shift). */
function placeholders() {
  $('grid').replaceChildren(...Array.from({ length: K }, () => el('li', { className: 'card placeholder' })));
}

async function init() {
  const health = await api('/api/health');
  state.health = health;
  $('run-info').textContent =
    `run ${health.run} (${health.model.arch}, epoch ${health.model.checkpoint.epoch}) · ` +
    `${health.catalog.products.toLocaleString()} products · ${health.data.source} ${health.data.domain} data · ` +
    `embeddings ${health.model.embeddings}`;
  const all = health.catalog.categories.reduce((n, c) => n + c.count, 0);
  const chips = [
    { name: null, label: 'All', count: all },
    ...health.catalog.categories.map((c) => ({ ...c, label: c.name })),
  ];
  $('chips').replaceChildren(
    ...chips.map((c) =>
      el(
        'button',
        {
          type: 'button',
          className: 'chip',
          'aria-pressed': String(c.name === state.category),
          dataset: { category: c.name ?? '' },
          onclick: () => selectCategory(c.name),
        },
        `${c.label} `,
        el('span', { className: 'count' }, c.count.toLocaleString()),
      ),
    ),
  );
  if (!health.uploads.enabled) {
    $('upload').disabled = true;
    $('upload-area').classList.add('disabled');
    $('upload-off').hidden = false;
    $('upload-off').textContent = `Uploads are off: ${health.uploads.reason}.`;
  }
  await showScenes(0);
}

function selectCategory(name) {
  state.category = name;
  for (const chip of $('chips').children)
    chip.setAttribute('aria-pressed', String((chip.dataset.category || null) === name));
  if (state.query) recommend();
}

async function showScenes(offset) {
  const page = await api(`/api/scenes?offset=${offset}&limit=${PAGE}`);
  state.offset = offset;
  state.total = page.total;
  $('scenes').replaceChildren(
    ...page.scenes.map((s) =>
      el(
        'li',
        {},
        el(
          'button',
          {
            type: 'button',
            className: 'scene',
            title: `scene ${s.sig} (${s.items} products)`,
            'aria-pressed': String(state.query?.sig === s.sig),
            dataset: { sig: s.sig },
            onclick: () => pickScene(s),
          },
          el('img', {
            src: s.image ?? NO_IMAGE,
            alt: `scene ${s.sig.slice(0, 8)}`,
            loading: 'lazy',
            width: 96,
            height: 128,
          }),
        ),
      ),
    ),
  );
  const pages = Math.max(1, Math.ceil(page.total / PAGE));
  $('page-info').textContent = `page ${Math.floor(offset / PAGE) + 1} of ${pages} (${page.total} scenes)`;
  $('prev').disabled = offset === 0;
  $('next').disabled = offset + PAGE >= page.total;
}

function pickScene(scene) {
  state.query = { kind: 'scene', sig: scene.sig };
  showQueryImage(scene.image ?? NO_IMAGE, `dataset scene ${scene.sig}`);
  recommend();
}

function pickUpload(file) {
  $('upload').value = ''; // so that choosing the same file again is a change too
  if (!file) return;
  if (file.size > MAX_UPLOAD_BYTES) {
    showError(`${file.name} is over the 10 MB upload limit.`);
    return;
  }
  state.query = { kind: 'upload', file };
  showQueryImage(URL.createObjectURL(file), `your photo: ${file.name}`);
  recommend();
}

/** A new query: its photo, and nothing left of the previous one's results. */
function showQueryImage(src, caption) {
  $('query-view').hidden = false;
  $('query-image').src = src;
  $('query-caption').textContent = caption;
  $('boxes').replaceChildren();
  $('truth').hidden = true;
  $('truth').replaceChildren();
  for (const button of document.querySelectorAll('.scene'))
    button.setAttribute('aria-pressed', String(button.dataset.sig === state.query.sig));
  // On a narrow screen the results are below the picker: bring the photo into view.
  if (narrow()) $('query-view').scrollIntoView({ block: 'start' });
}

async function recommend() {
  const query = state.query;
  const category = state.category;
  const stale = () => query !== state.query || category !== state.category; // a newer request is on its way
  placeholders();
  say('Ranking…');
  try {
    let body;
    if (query.kind === 'scene') {
      body = await api('/api/recommend', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ scene: query.sig, k: K, ...(category ? { categories: [category] } : {}) }),
      });
    } else {
      const form = new FormData();
      form.append('k', String(K));
      if (category) form.append('categories', category);
      form.append('image', query.file);
      body = await api('/api/recommend', { method: 'POST', body: form });
    }
    if (!stale()) showResults(body);
  } catch (err) {
    if (stale()) return;
    showError(query.kind === 'upload' ? `${query.file.name}: ${err.message}` : err.message);
    $('grid').replaceChildren();
  }
}

function showResults(body) {
  const filter = body.categories ? body.categories.join(', ') : 'all categories';
  say(`Top ${body.results.length} of ${body.candidates.toLocaleString()} products (${filter}) in ${body.ms} ms.`);
  $('grid').replaceChildren(
    ...body.results.map((r) =>
      el(
        'li',
        { className: r.isTrue ? 'card true' : 'card', dataset: { product: r.product } },
        el('img', { src: r.image ?? NO_IMAGE, alt: `${r.category} ${r.product.slice(0, 8)}`, width: 160, height: 200 }),
        el(
          'div',
          { className: 'meta' },
          el('span', { className: 'pos' }, `#${r.position}`),
          el('span', { className: 'cat' }, r.category),
          el('span', { className: 'score' }, r.score.toFixed(3)),
        ),
        r.isTrue ? el('span', { className: 'badge' }, 'in the photo') : '',
      ),
    ),
  );
  if (body.scene) showTruth(body.truth);
}

function showTruth(truth) {
  $('boxes').replaceChildren(
    ...truth.map((t, i) => {
      const [l, top, r, b] = t.bbox;
      const box = el(
        'div',
        { className: 'box', title: `${t.category}: rank ${t.rank ?? 'n/a'}` },
        el('span', {}, String(i + 1)),
      );
      Object.assign(box.style, { left: pct(l), top: pct(top), width: pct(r - l), height: pct(b - top) });
      return box;
    }),
  );
  $('truth').hidden = false;
  $('truth').replaceChildren(
    el('h3', {}, 'The products in this photo, and where the model ranks each among the whole catalog'),
    el(
      'p',
      { className: 'muted' },
      "As ctl eval ranks them: each against the catalog without the photo's other products, so a rank can be " +
        'smaller than the position in the grid.',
    ),
    el(
      'ol',
      {},
      ...truth.map((t, i) =>
        el(
          'li',
          { className: 'truth-item' },
          el('span', { className: 'number' }, String(i + 1)),
          el('img', { src: t.image ?? NO_IMAGE, alt: `${t.category} ${t.product.slice(0, 8)}`, width: 48, height: 60 }),
          ` ${t.category}: rank `,
          el('strong', { className: 'rank' }, t.rank === null ? 'n/a' : t.rank.toLocaleString()),
        ),
      ),
    ),
  );
}

$('upload').addEventListener('change', (e) => pickUpload(e.target.files[0]));
const drop = $('upload-area');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  if (!$('upload').disabled) pickUpload(e.dataTransfer.files[0]);
});
$('query-image').addEventListener('error', () => {
  $('query-view').hidden = true; // a file the browser cannot show either; the status says what the server found
});
const pageError = (err) => showError(err.message);
$('prev').addEventListener('click', () => showScenes(Math.max(0, state.offset - PAGE)).catch(pageError));
$('next').addEventListener('click', () => showScenes(state.offset + PAGE).catch(pageError));

init().catch((err) => {
  // Without the run nothing on the page works: say so where it said it was loading.
  $('run-info').textContent = `Could not load the run: ${err.message}. Is ctl serve running? Reload to try again.`;
  showError(err.message);
});
