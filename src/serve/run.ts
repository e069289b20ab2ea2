// `ctl serve` as functions (the command and `ctl demo --serve` call them): one process holding a trained run's
// towers, its catalog's vectors and the image model, behind the demo page, the runs dashboard and the JSON API
// (server.ts); it serves until SIGINT or SIGTERM, then closes cleanly.
import { BackendUnavailableError, type TowerBackendChoice } from '../model/backend.js';
import { firstLineOf, InputError } from '../util/errors.js';
import { log } from '../util/log.js';
import type { Device } from '../embed/device.js';
import { InferenceQueue } from './queue.js';
import { Recommender } from './recommender.js';
import { listRuns, pickDefaultRun } from './runs.js';
import { existingRunDir, listRunNames, workdirPaths } from '../data/workdir.js';
import { buildServer } from './server.js';
import { openUploadEmbedder } from './upload.js';
import { ctlCommand } from '../util/shell.js';

export interface ServeOptions {
  workdir: string;
  /** Default: the run with the best catalog R@10. */
  run?: string;
  port: number;
  host: string;
  queue: number;
  backend: TowerBackendChoice;
  device: Device;
}

export interface RunningServer {
  url: string;
  run: string;
  close(): Promise<void>;
}

/** How long closing waits for requests in flight before it cuts their connections. */
export const CLOSE_GRACE_MS = 3_000;

/** Load the run and start listening; resolves once the server accepts requests. */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  if (options.run) await existingRunDir(options.workdir, options.run);
  const started = performance.now();
  const { run, recommender } = options.run
    ? { run: options.run, recommender: await Recommender.open(options.workdir, options.run, options.backend) }
    : await openDefaultRun(options.workdir, options.backend);
  const uploads = await openUploadEmbedder(
    options.workdir,
    recommender.model.state.embeddings.model,
    options.device,
  ).catch(async (err: unknown) => {
    await recommender.close();
    throw err;
  });
  const queue = new InferenceQueue(options.queue);
  const app = await buildServer({ workdir: options.workdir, recommender, uploads, queue });
  const close = async () => {
    // Requests in flight get a grace period, then their connections are cut: a client that never finishes sending
    // its request would otherwise hold the close forever.
    const cut = setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS);
    await app.close();
    clearTimeout(cut);
    // Requests whose clients left are still queued: let them finish before the models go.
    await queue.drained();
    await recommender.close();
    if (uploads.enabled) await uploads.embedder.dispose();
  };
  try {
    await app.listen({ port: options.port, host: options.host });
  } catch (err) {
    await close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE')
      throw new InputError(`--port ${options.port}: the port is in use on ${options.host}; pick another with --port`);
    if (code === 'ENOTFOUND' || code === 'EADDRNOTAVAIL' || code === 'EAI_AGAIN')
      throw new InputError(
        `--host ${options.host}: not an address of this machine (${code}); 127.0.0.1 keeps other machines out, 0.0.0.0 lets them in`,
      );
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  log(
    `serve: run '${run}' (epoch ${recommender.model.state.epoch}, ${recommender.model.backend}), ${recommender.catalogSize.toLocaleString('en-US')} products, ` +
      `loaded in ${((performance.now() - started) / 1000).toFixed(1)} s; uploads ${uploads.enabled ? `on (${uploads.embedder.model}, ${uploads.embedder.device})` : `off: ${uploads.reason}`}`,
  );
  return {
    url: `http://${host}:${port}/`,
    run,
    close,
  };
}

/**
 * The best of the workdir's runs (runs.ts pickDefaultRun) that loads: a run whose checkpoint does not read is left
 * out, said in one line, and the next best is taken.
 */
async function openDefaultRun(
  workdir: string,
  backend: TowerBackendChoice,
): Promise<{ run: string; recommender: Recommender }> {
  const runs = await listRuns(workdir);
  let candidates = runs;
  for (let best = pickDefaultRun(candidates); best; best = pickDefaultRun(candidates)) {
    try {
      const recommender = await Recommender.open(workdir, best.name, backend);
      log(
        best.catalogRecall10 !== null
          ? `serve: run '${best.name}', the best catalog R@10 (${(best.catalogRecall10 * 100).toFixed(1)}%) of ${runs.length} run(s)` +
              (best.catalogLeaks
                ? ' (on scenes it may have trained on: no run that loads has a catalog report on unseen scenes)'
                : '')
          : `serve: run '${best.name}', the latest trained run (no run that loads has a catalog eval report of its best checkpoint as it is now: \`ctl eval\`)`,
      );
      return { run: best.name, recommender };
    } catch (err) {
      // A backend this machine cannot run is no run's fault: trying the next run would only blame that one too.
      if (!(err instanceof InputError) || err instanceof BackendUnavailableError) throw err;
      log(`serve: run '${best.name}' left out: ${firstLineOf(err)}`);
      candidates = candidates.filter((r) => r !== best);
    }
  }
  const demo = workdirPaths(workdir).demo;
  const leftOut = runs.length > candidates.length ? ' that loads (the lines above say why the others do not)' : '';
  throw new InputError(
    `no trained run${leftOut} in ${workdir}/runs: train one first (\`ctl train\`)` +
      ((await listRunNames(demo)).length > 0
        ? `, or serve the demo's, which lives in its own workdir: \`${ctlCommand(['serve', '--workdir', demo])}\``
        : `, or run \`${ctlCommand(['demo', '--serve'])}\``),
  );
}

/** Serve until SIGINT or SIGTERM, then close cleanly. */
export async function serveUntilSignal(server: RunningServer): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      log(`serve: ${signal}: closing`);
      void server.close().then(resolve, resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    // Said once Ctrl-C is handled: a signal sent on reading this line closes cleanly.
    log(`serve: open ${server.url} (runs dashboard: ${server.url}runs); Ctrl-C stops`);
  });
}
