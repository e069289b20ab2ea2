// The HTTP side of `ctl serve` (fastify): the demo page and the runs dashboard (static files, no build step), the
// JSON API, and the workdir's images. Every route validates its input by schema or by hand and answers a bad one
// with a 4xx JSON `{ error }`; a failure inside is logged and answered 500 without its details.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyMultipart from '@fastify/multipart';
import fastifyStatic from '@fastify/static';
import { IMAGE_KINDS, type ImageKind } from '../data/types.js';
import { RUN_NAME, workdirPaths } from '../data/workdir.js';
import { log } from '../util/log.js';
import { QueueFullError, type InferenceQueue } from './queue.js';
import { IMAGE_HOST } from '../data/image-host.js';
import { RequestError, type Recommender } from './recommender.js';
import { listRuns, readRun } from './runs.js';
import type { UploadSupport } from './upload.js';
import { MAX_CATEGORIES, readUploadForm, UPLOAD_LIMITS } from './upload-form.js';

/** The page's files, served from the source tree (plain HTML, CSS and JS modules). */
const PUBLIC_DIR = fileURLToPath(new URL('../../src/serve/public/', import.meta.url));
const UPLOT_DIR = dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.esm.js'));

const MAX_K = 100;
const DEFAULT_K = 12;
const SCENES_PAGE = 24;
const MAX_SCENES_PAGE = 100;

const SECURITY_HEADERS = {
  'content-security-policy':
    `default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data: https://${IMAGE_HOST}; ` +
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};

export interface ServerOptions {
  workdir: string;
  recommender: Recommender;
  uploads: UploadSupport;
  /** Where inference requests wait their turn (bounded: a full queue answers 429). */
  queue: InferenceQueue;
}

const SIG = '^[0-9a-f]{32}$';
const SEND_THIS =
  'send JSON {"scene": SIG, "k": N, "categories": [...]} (content-type: application/json) or a multipart form ' +
  "with the photo in 'image'";

const recommendJson = {
  type: 'object',
  required: ['scene'],
  additionalProperties: false,
  properties: {
    scene: { type: 'string', pattern: SIG },
    k: { type: 'integer', minimum: 1, maximum: MAX_K },
    categories: { type: 'array', maxItems: MAX_CATEGORIES, items: { type: 'string', minLength: 1, maxLength: 200 } },
  },
} as const;

/** The server: the pages and their files, and the JSON API, over one loaded run (see the top of the file). */
export async function buildServer(options: ServerOptions): Promise<FastifyInstance> {
  const app = await createApp();
  const methods = routeMethods(app);
  await registerPages(app, options);
  registerApi(app, options);
  refuseOtherMethods(app, methods);
  return app;
}

/** The methods each route answers, as routes are added. */
function routeMethods(app: FastifyInstance): Map<string, string[]> {
  const methods = new Map<string, string[]>();
  app.addHook('onRoute', (route) => {
    methods.set(route.url, [...(methods.get(route.url) ?? []), ...[route.method].flat()]);
  });
  return methods;
}

/** A path we serve asked with another method is a 405 naming the ones it takes, not a 404 as if it did not exist. */
function refuseOtherMethods(app: FastifyInstance, methods: Map<string, string[]>): void {
  const every = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
  for (const [url, taken] of [...methods]) {
    const others = every.filter((m) => !taken.includes(m));
    const allow = every.filter((m) => taken.includes(m)).join(', ');
    app.route({
      method: others,
      url,
      handler: (request, reply) =>
        reply
          .code(405)
          .header('allow', allow)
          .send({ error: `${request.method} is not allowed on ${url} (it takes ${allow})` }),
    });
  }
}

/**
 * Fastify with what every answer shares: security headers, errors as `{ error }` with the right status, and bodies
 * of JSON or a multipart form only.
 */
async function createApp(): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: 64 * 1024,
    // A run name in a path is a folder's name: up to 255 bytes.
    routerOptions: { maxParamLength: 255 },
    // A client that stops sending midway is cut off rather than holding its connection for ever.
    requestTimeout: 120_000,
    // An unknown field is a 400 naming it (Fastify's default drops it silently: `kk` would mean the default k), and
    // a value of the wrong type is refused, not converted ("5" for k, "Shoes" for ["Shoes"]).
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
    // Schema errors say where, then what, as the routes' own checks do: `body.k: must be <= 100`, `body.kk: unknown
    // field` (AJV's own message names neither the unknown field nor, in Fastify's form, the place as a path).
    schemaErrorFormatter: ([first], context) => {
      const place = `${context}${(first.instancePath ?? '').replaceAll('/', '.')}`;
      const unknown = (first.params as { additionalProperty?: string }).additionalProperty;
      return new Error(unknown === undefined ? `${place}: ${first.message}` : `${place}.${unknown}: unknown field`);
    },
    // A malformed or overlong URL is answered in the same `{ error }` shape as everything else.
    frameworkErrors: (error, _request, reply) =>
      (reply as FastifyReply)
        .code(error.statusCode ?? 400)
        .headers(SECURITY_HEADERS) // these replies skip the onSend hook
        .send({ error: error.message }),
  });
  // JSON or a multipart form only: a body sent as text/plain is a 415 rather than a body with no fields.
  app.removeContentTypeParser('text/plain');
  await app.register(fastifyMultipart, { limits: UPLOAD_LIMITS });

  app.addHook('onSend', async (_request, reply, payload) => {
    reply.headers(SECURITY_HEADERS);
    return payload;
  });
  app.setErrorHandler((error: Error & { statusCode?: number }, request, reply) => {
    if (error instanceof QueueFullError) {
      reply.header('retry-after', String(error.retryAfterSeconds));
      return reply.code(429).send({ error: error.message });
    }
    const status = error.statusCode ?? 500;
    if ((error as { code?: string }).code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return reply.code(415).send({ error: `${SEND_THIS} (not ${request.headers['content-type']})` });
    if (status >= 500) {
      log(`serve: ${error.stack ?? error.message}`);
      return reply.code(500).send({ error: 'internal error (see the server log)' });
    }
    return reply.code(status).send({ error: error.message });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: `not found: ${request.method} ${request.url}` }),
  );
  return app;
}

/** The page, the dashboard, their static files and the dataset's images (by signature only). */
async function registerPages(app: FastifyInstance, { workdir, recommender }: ServerOptions): Promise<void> {
  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/static/', index: false, dotfiles: 'deny' });
  await app.register(fastifyStatic, {
    root: UPLOT_DIR,
    prefix: '/vendor/uplot/',
    decorateReply: false,
    index: false,
    allowedPath: (path) => path === '/uPlot.esm.js' || path === '/uPlot.min.css',
  });

  app.get('/', (_request, reply) => reply.sendFile('index.html'));
  app.get('/runs', (_request, reply) => reply.sendFile('runs.html'));

  // Images by signature only: the pattern leaves nothing to traverse with.
  const images = workdirPaths(workdir);
  app.get<{ Params: { kind: ImageKind; file: string } }>(
    '/images/:kind/:file',
    {
      schema: {
        params: {
          type: 'object',
          properties: {
            kind: { type: 'string', enum: IMAGE_KINDS },
            file: { type: 'string', pattern: '^[0-9a-f]{32}\\.jpg$' },
          },
        },
      },
    },
    (request, reply) => {
      const { kind, file } = request.params;
      const sig = file.slice(0, 32);
      if (!recommender.hasLocalImage(kind, sig))
        return reply.code(404).send({ error: `no ${kind.slice(0, -1)} image ${sig} in the workdir` });
      return reply.sendFile(join(kind, file), images.imagesDir, { maxAge: 3600_000 });
    },
  );
}

/** The JSON API: health, the scene picker, recommendations (by scene or upload, queued), the runs. */
function registerApi(app: FastifyInstance, options: ServerOptions): void {
  const { recommender, uploads, workdir, queue } = options;
  app.get('/api/health', async () => ({
    status: 'ok',
    run: recommender.run,
    model: {
      arch: recommender.model.config.model.arch,
      embeddings: recommender.model.state.embeddings.model,
      checkpoint: { epoch: recommender.model.state.epoch, metric: recommender.model.state.metric },
    },
    catalog: { products: recommender.catalogSize, categories: recommender.categoryCounts() },
    scenes: recommender.pickerScenes.length,
    data: { source: recommender.dataset.source, domain: recommender.dataset.domain },
    uploads: uploads.enabled ? { enabled: true, model: uploads.embedder.model } : uploads,
    device: { backend: recommender.model.backend, imageModel: uploads.enabled ? uploads.embedder.device : null },
    queue: { depth: queue.depth, capacity: queue.capacity },
  }));

  app.get<{ Querystring: { offset?: string; limit?: string } }>(
    '/api/scenes',
    {
      schema: {
        querystring: {
          type: 'object', // other parameters (a cache-buster) are ignored
          properties: {
            // Query values are text: digits only, checked as numbers below (types are not converted).
            offset: { type: 'string', pattern: '^[0-9]{1,9}$' },
            limit: { type: 'string', pattern: '^[0-9]{1,9}$' },
          },
        },
      },
    },
    async (request) => {
      const offset = Number(request.query.offset ?? 0);
      const limit = Number(request.query.limit ?? SCENES_PAGE);
      if (limit < 1 || limit > MAX_SCENES_PAGE)
        throw new RequestError(400, `querystring.limit: must be from 1 to ${MAX_SCENES_PAGE}, got ${limit}`);
      const page = recommender.pickerScenes.slice(offset, offset + limit);
      return {
        total: recommender.pickerScenes.length,
        offset,
        limit,
        scenes: page.map((s) => ({ sig: s.sig, image: recommender.imageOf('scenes', s.sig), items: s.items.length })),
      };
    },
  );

  app.post(
    '/api/recommend',
    { schema: { body: { content: { 'application/json': { schema: recommendJson } } } } },
    async (request, reply) => {
      const started = performance.now();
      const result = request.isMultipart()
        ? await recommendUpload(request)
        : await recommendScene(
            request,
            request.body as { scene: string; k?: number; categories?: string[] } | undefined,
          );
      return reply.send({ run: recommender.run, ms: Math.round((performance.now() - started) * 100) / 100, ...result });
    },
  );

  /** Queue the work, skipping it when the client has gone by the time its turn comes. */
  function inference<T>(request: FastifyRequest, work: () => Promise<T>): Promise<T> {
    return queue.run(async () => {
      if (request.raw.socket.destroyed) throw new RequestError(400, 'the client closed the connection');
      return work();
    });
  }

  async function recommendScene(
    request: FastifyRequest,
    body: { scene: string; k?: number; categories?: string[] } | undefined,
  ) {
    if (!body) throw new RequestError(400, SEND_THIS);
    const categories = recommender.checkCategories(body.categories);
    return inference(request, () => recommender.recommendScene(body.scene, body.k ?? DEFAULT_K, categories));
  }

  async function recommendUpload(request: FastifyRequest) {
    const form = await readUploadForm(request);
    if (!uploads.enabled) throw new RequestError(400, `uploads are off: ${uploads.reason}`);
    const k = form.k === undefined ? DEFAULT_K : /^[0-9]{1,3}$/.test(form.k) ? Number(form.k) : NaN;
    if (!(k >= 1 && k <= MAX_K))
      throw new RequestError(
        400,
        `multipart field 'k': must be an integer from 1 to ${MAX_K}, got ${JSON.stringify(form.k)}`,
      );
    const categories = recommender.checkCategories(form.categories.length ? form.categories : undefined);
    return inference(request, async () => {
      const started = performance.now();
      const embedding = await uploads.embedder.embed(form.image);
      const imageModelMs = Math.round((performance.now() - started) * 100) / 100;
      return { imageModelMs, ...(await recommender.recommendVector(embedding, k, categories)) };
    });
  }

  app.get('/api/runs', async () => ({ current: recommender.run, runs: await listRuns(workdir) }));

  app.get<{ Params: { name: string } }>(
    '/api/runs/:name',
    {
      schema: {
        params: { type: 'object', properties: { name: { type: 'string', pattern: RUN_NAME.source } } },
      },
    },
    async (request, reply: FastifyReply) => {
      const run = await readRun(workdir, request.params.name);
      if (!run)
        return reply.code(404).send({ error: `no run '${request.params.name}' in ${workdirPaths(workdir).runsDir}` });
      return run;
    },
  );
}
