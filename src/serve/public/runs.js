// The runs dashboard: every run of the workdir, its curves from metrics.jsonl (uPlot, runs overlaid, the
// zero-shot line dashed) and its eval reports. Polls, often while a run is training, so its curves grow without a
// reload, and now and then otherwise, so that a run started later shows up.
import uPlot from '/vendor/uplot/uPlot.esm.js';
import { $, api, el, pct } from '/static/dom.js';

const POLL_MS = 5000;
const IDLE_POLL_MS = 30_000;
const COLORS = ['#0b57d0', '#d93025', '#188038', '#f29900', '#9334e6', '#12b5cb', '#e52592', '#5f6368'];
let plots = [];

const num = (x, digits = 3) => (typeof x === 'number' ? x.toFixed(digits) : '–');

/** The value of a selection metric ("recall@10", "mrr") in a metrics object. */
function metricValue(metrics, name) {
  if (!metrics) return null;
  if (name.startsWith('recall@')) return metrics.recall?.[name.slice('recall@'.length)] ?? null;
  return metrics[name] ?? null;
}

function statusText(run) {
  if (run.status === 'stopped') return `stopped at epoch ${run.epoch}`;
  if (run.status === 'running') return `running (epoch ${run.epoch}${run.epochs ? `/${run.epochs}` : ''})`;
  if (run.status === 'damaged') return 'damaged checkpoint (the server log says why)';
  return run.status;
}

/** "recall@10" → "R@10", "mrr" → "MRR": as the eval tables name them. */
const metricLabel = (name) => (name.startsWith('recall@') ? `R@${name.slice('recall@'.length)}` : name.toUpperCase());
/** A metric's value as the eval tables show it: recalls in percent, MRR as a fraction. */
const metricText = (name, value) => (name.startsWith('recall@') ? pct(value) : num(value));

/** The best epoch and its validation score, named: "17: catalog R@10 10.4%". */
function bestText(run) {
  if (!run.best) return '–';
  if (!run.selection) return `${run.best.epoch}: ${num(run.best.metric)}`;
  const [protocol, metric] = run.selection.split(' ');
  return `${run.best.epoch}: ${protocol} ${metricLabel(metric)} ${metricText(metric, run.best.metric)}`;
}

/** The catalog R@10 the run is picked by, with the split it ranks, and a warning when it counts training scenes. */
function evalText(run) {
  if (run.catalogRecall10 === null) return '–';
  const leak = run.catalogLeaks ? ', counts training scenes' : '';
  return `${pct(run.catalogRecall10)} (${run.catalogSplit}${leak})`;
}

/** The runs, one row each, results before config (a phone shows the first columns); `unread` maps a run's name to
 * why its detail did not come. */
function runsTable(runs, current, unread) {
  const head = [
    'run',
    'status',
    'catalog R@10 (eval split)',
    'best epoch: val score',
    'arch',
    'embeddings',
    'view',
    'split',
    'batch',
    'lr',
  ];
  $('runs-table').replaceChildren(
    el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { scope: 'col' }, h)))),
    el(
      'tbody',
      {},
      ...runs.map((r) =>
        el(
          'tr',
          {},
          el('td', {}, r.name + (r.name === current ? ' (served)' : '')),
          el(
            'td',
            { className: r.status === 'running' ? 'status-running' : '' },
            unread.has(r.name) ? `details unavailable: ${unread.get(r.name)}` : statusText(r),
          ),
          el('td', { className: r.catalogLeaks ? 'leaks' : '' }, evalText(r)),
          el('td', {}, bestText(r)),
          el('td', {}, r.config?.arch ?? '–'),
          el('td', {}, r.config?.embeddings ?? '–'),
          el('td', {}, r.config?.sceneView ?? '–'),
          el('td', {}, r.config?.split ?? '–'),
          el('td', {}, String(r.config?.batchSize ?? '–')),
          el('td', {}, r.config ? r.config.lr.toExponential(1) : '–'),
        ),
      ),
    ),
  );
}

/**
 * One chart: each run's series over a shared x (uPlot.join aligns them), optional dashed constant lines, and how to
 * write a y value (its axis and its legend: a recall in percent, as the tables write it).
 */
function chart(title, xLabel, series, dashed = [], yText = null) {
  const box = el('figure', { className: 'chart' }, el('h3', {}, title));
  $('charts').append(box);
  const usable = series.filter((s) => s.x.length > 0);
  if (usable.length === 0) {
    box.append(el('p', { className: 'muted' }, 'no data yet'));
    return;
  }
  const data = uPlot.join(usable.map((s) => [s.x, s.y]));
  const xs = data[0];
  const extra = dashed.map((d) => xs.map(() => d.value));
  const width = Math.max(280, Math.min(560, box.clientWidth || 400));
  const legendValue = yText ? { value: (_, y) => (y === null ? '--' : yText(y)) } : {};
  const plot = new uPlot(
    {
      width,
      height: 220,
      scales: { x: { time: false } },
      axes: [{ label: xLabel }, yText ? { values: (_, ticks) => ticks.map(yText), size: 60 } : {}],
      series: [
        { label: xLabel },
        ...usable.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.dash ? 1.5 : 2,
          dash: s.dash,
          ...legendValue,
          spanGaps: true,
          points: { show: xs.length < 60 },
        })),
        ...dashed.map((d) => ({
          label: d.label,
          stroke: d.color ?? '#5f6368',
          dash: [6, 4],
          width: 1.5,
          points: { show: false }, // a constant: its points would read as measurements
          ...legendValue,
        })),
      ],
    },
    [...data, ...extra],
    box,
  );
  plots.push(plot);
}

function drawCharts(details, runs) {
  for (const p of plots) p.destroy();
  plots = [];
  $('charts').replaceChildren();
  // A run keeps its colour (by its row) on every chart, its zero-shot line included.
  const colorOf = (name) => COLORS[runs.findIndex((r) => r.name === name) % COLORS.length];
  const epochSeries = (key) =>
    details.map((d) => ({
      label: d.name,
      color: colorOf(d.name),
      x: d.history.map((r) => r.epoch),
      y: d.history.map((r) => (typeof r[key] === 'number' ? r[key] : null)),
    }));
  const stepSeries = (key, label = (d) => d.name, dash = undefined) =>
    details.map((d) => ({
      label: label(d),
      color: colorOf(d.name),
      dash,
      x: d.steps.map((r) => r.step),
      y: d.steps.map((r) => (typeof r[key] === 'number' ? r[key] : null)),
    }));
  // One validation chart per selection (protocol and metric): a run selecting on MRR is not drawn on a recall axis.
  const selectionOf = (d) => d.selection ?? 'catalog recall@10';
  for (const selection of new Set(details.map(selectionOf))) {
    const metric = selection.split(' ')[1];
    const runs = new Set(details.filter((d) => selectionOf(d) === selection).map((d) => d.name));
    const series = epochSeries('metric').filter((s) => runs.has(s.label));
    const zeroShots = details
      .filter((d) => runs.has(d.name) && d.zeroShot)
      .map((d) => ({
        label: `zero-shot (${d.name})`,
        value: metricValue(d.zeroShot.metrics, metric),
        color: colorOf(d.name),
      }))
      .filter((z) => z.value !== null);
    chart(`Validation: ${selection}`, 'epoch', series, zeroShots, (y) => metricText(metric, y));
  }
  chart('Train loss per epoch', 'epoch', epochSeries('loss'));
  chart('Train loss per step (solid: total; dotted: InfoNCE; dash-dot: triplet)', 'step', [
    ...stepSeries('loss', (d) => `${d.name} loss`),
    ...stepSeries('infonce', (d) => `${d.name} infonce`, [1, 3]),
    ...stepSeries('triplet', (d) => `${d.name} triplet`, [8, 3, 1, 3]),
  ]);
  chart('Learning rate', 'step', stepSeries('lr'));
  chart('Temperature', 'step', stepSeries('temperature'));
}

function drawReports(details) {
  const blocks = [];
  for (const d of details) {
    const names = Object.keys(d.reports);
    if (names.length === 0) continue;
    blocks.push(el('h3', {}, d.name));
    const head = ['report', 'checkpoint', 'queries', 'R@1', 'R@5', 'R@10', 'R@50', 'MRR', 'median rank', 'AUC'];
    blocks.push(
      el(
        'div',
        { className: 'table-wrap' },
        el(
          'table',
          { className: 'report' },
          el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { scope: 'col' }, h)))),
          el(
            'tbody',
            {},
            ...names.map((n) => {
              const m = d.reports[n].metrics ?? {};
              const { checkpoint, backend } = d.reports[n];
              return el(
                'tr',
                {},
                el('td', {}, n),
                el(
                  'td',
                  {},
                  checkpoint
                    ? `${checkpoint.which}, epoch ${checkpoint.epoch}` + (backend ? `, towers on ${backend}` : '')
                    : '–',
                ),
                el('td', {}, String(m.queries ?? '–')),
                ...['1', '5', '10', '50'].map((k) => el('td', {}, pct(m.recall?.[k]))),
                el('td', {}, num(m.mrr)),
                el('td', {}, String(m.medianRank ?? '–')),
                el('td', {}, m.auc === undefined ? '–' : num(m.auc)),
              );
            }),
          ),
        ),
      ),
    );
    const catalog = ['catalog-test', 'catalog-val'].find((n) => d.reports[n]?.metrics?.perCategory);
    if (catalog) {
      const perCategory = d.reports[catalog].metrics.perCategory;
      blocks.push(el('p', { className: 'muted' }, `${catalog}: R@10 per category (its queries)`));
      blocks.push(
        el(
          'div',
          { className: 'bars' },
          ...Object.entries(perCategory).flatMap(([name, c]) => {
            const bar = el('div', { className: 'bar', title: `${name}: ${pct(c.recall['10'])}` });
            bar.style.width = pct(c.recall['10']);
            return [el('span', {}, `${name} (${c.queries})`), el('div', {}, bar), el('span', {}, pct(c.recall['10']))];
          }),
        ),
      );
    }
  }
  $('reports').replaceChildren(
    ...(blocks.length ? blocks : [el('p', { className: 'muted' }, 'no eval report yet: run `ctl eval`')]),
  );
}

let shown = '';

/** Redraw what changed since the last look (a redraw resets the charts' zoom); says whether a run is training. */
async function refresh() {
  const { runs, current } = await api('/api/runs');
  // A run whose detail does not come (removed since the list was made) keeps its row, with why; the others draw.
  const answers = await Promise.allSettled(runs.map((r) => api(`/api/runs/${encodeURIComponent(r.name)}`)));
  const details = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
  const unread = new Map(
    answers.flatMap((a, i) => (a.status === 'rejected' ? [[runs[i].name, a.reason.message]] : [])),
  );
  const now = JSON.stringify([runs, current, details, [...unread]]);
  if (now !== shown) {
    runsTable(runs, current, unread);
    drawCharts(details, runs);
    drawReports(details);
    shown = now;
  }
  const running = runs.some((r) => r.status === 'running');
  $('updated').classList.remove('error');
  $('updated').textContent =
    `${runs.length} run(s), updated ${new Date().toLocaleTimeString()}${running ? ' · refreshing while training' : ''}`;
  return running;
}

/** Refresh now and again, on through errors (a restarting server): the page never needs a reload. */
async function poll() {
  let running = false;
  try {
    running = await refresh();
  } catch (err) {
    $('updated').textContent = `Error: ${err.message} (trying again)`;
    $('updated').classList.add('error');
  }
  setTimeout(poll, running ? POLL_MS : IDLE_POLL_MS);
}

poll();
