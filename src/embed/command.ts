// `ctl embed`: image embeddings of the dataset's products and scenes into the embedding store, resumable.
import { Command, Option } from 'commander';
import { IMAGE_KINDS } from '../data/types.js';
import { SCENE_VIEWS } from '../data/workdir.js';
import { DEFAULT_BASE_URL } from '../data/image-host.js';
import {
  action,
  gracefulStop,
  setStageExitCode,
  type GracefulStop,
  parseHttpUrl,
  parseIntOption,
  parseShard,
  refuseFlags,
  withCommon,
} from '../util/command.js';
import { InputError } from '../util/errors.js';
import { formatDuration, log, printJson } from '../util/log.js';
import { DEVICES } from './device.js';
import { DTYPES } from './dtype.js';
import { PROVIDERS } from './encoder.js';
import { HIDE_MODES } from './hide.js';
import { DEFAULT_MODEL, PINNED_REVISIONS } from './model-source.js';
import { COMMIT_SECONDS, MAX_CONSECUTIVE_SERVICE_FAILURES } from './pipeline-limits.js';
import type { EmbedOptions, EmbedSummary } from './run.js';
import { domainOption } from '../data/options.js';

/** The parsed flags: the run's options as the user gives them, plus the http provider's flags flat. */
type EmbedFlags = Omit<EmbedOptions, 'workdir' | 'http' | 'progress' | 'stop'> & {
  apiUrl?: string;
  apiSend: 'bytes' | 'url';
  apiDim?: number;
  imageBaseUrl: string;
  concurrency: number;
  retries: number;
  timeout: number;
};

const FAILURES_SHOWN = 10;

function describe(summary: EmbedSummary): string[] {
  const rev = summary.revision ? `@${summary.revision.slice(0, 12)}` : '';
  const dtype = summary.dtype ? ` (${summary.dtype})` : '';
  const lines = [`embed: ${summary.model}${rev} on ${summary.device}${dtype}`];
  for (const v of summary.views) {
    const reasons = new Map<string, number>();
    for (const f of v.failed) reasons.set(f.reason, (reasons.get(f.reason) ?? 0) + 1);
    const failed = v.failed.length
      ? `, ${v.failed.length} failed (${[...reasons].map(([r, n]) => `${r} ${n}`).join(', ')})`
      : '';
    const masked = v.maskFallbacks ? `, ${v.maskFallbacks} masked (box covered the scene)` : '';
    lines.push(
      `  ${v.view}: ${v.embedded} embedded, ${v.alreadyStored} already stored${failed}${masked}; ` +
        `store ${v.dir} holds ${v.stored} rows${v.dim ? ` of ${v.dim}-d` : ''}`,
    );
    for (const f of v.failed.slice(0, FAILURES_SHOWN))
      lines.push(`    skipped ${f.id} (${f.reason}: ${f.message}) ${f.file}`);
    if (v.failed.length > FAILURES_SHOWN)
      lines.push(`    ... and ${v.failed.length - FAILURES_SHOWN} more (--json lists all)`);
  }
  lines.push(
    `embedded ${summary.embedded} images in ${formatDuration(summary.seconds)} ` +
      `(${summary.imagesPerSecond.toFixed(1)} images/s after ${summary.loadSeconds.toFixed(1)} s loading)` +
      (summary.stopped ? '; stopped early: re-run to continue' : ''),
  );
  return lines;
}

export function registerEmbedCommand(program: Command): void {
  withCommon(
    program
      .command('embed')
      .description(
        "image embeddings of the dataset's products and scenes (L2-normalised float32) into " +
          'workdir/embeddings/<model>/<view>/, resumable: rows already stored are skipped, a shard is committed every ' +
          'few batches. Missing or undecodable images, and those the http service refuses (a 4xx other than 408, 425, ' +
          '429), are skipped and listed (reasons missing, undecodable, refused; service for those it failed after its ' +
          `retries; --json lists them all); ${MAX_CONSECUTIVE_SERVICE_FAILURES} service failures in a row stop the run. ` +
          'Exit 1 when the http service failed some images after its retries, or images were missing while a ctl ' +
          'download that fetches them ran (re-run to get them), 2 on bad usage ' +
          'or while another ctl embed of the same store and shard runs, 130 when stopped by SIGINT, 143 by SIGTERM ' +
          '(what was embedded is kept).',
      )
      .addOption(domainOption())
      .option(
        '--model <id|path>',
        'hub id, local folder (config.json, preprocessor_config.json, onnx/vision_model*.onnx; the store is named ' +
          'after the folder), or a generated model: ' +
          "'tiny' (32 px, 32-d: tests), 'small' (64 px, 64-d: ctl demo) or 'vit-b16' (ViT-B/16 sizes, for benchmarks), all with random weights",
        DEFAULT_MODEL,
      )
      .option(
        '--revision <rev>',
        `hub revision: branch, tag or commit (default: ${PINNED_REVISIONS[DEFAULT_MODEL]} for ${DEFAULT_MODEL}, else main)`,
      )
      .option('--offline', 'never touch the network; name any model file not on disk (also HF_HUB_OFFLINE=1)', false)
      .addOption(
        new Option('--provider <provider>', 'run the model here, or call an embedding service')
          .choices(PROVIDERS)
          .default('local'),
      )
      .addOption(
        new Option(
          '--device <device>',
          'auto: CUDA if its provider loads, else a hardware WebGPU adapter, else CPU (one line says which and why); ' +
            'cuda and webgpu fail with the set-up steps when they cannot run (webgpu also takes a software adapter)',
        )
          .choices(DEVICES)
          .default('auto'),
      )
      .addOption(
        new Option(
          '--dtype <dtype>',
          'weights: onnx/vision_model.onnx, _fp16.onnx or _quantized.onnx (where the model ships them)',
        )
          .choices(DTYPES)
          .default('fp32'),
      )
      .option('--threads <n>', 'onnxruntime threads (default: one per core)', parseIntOption('--threads', 1))
      .option('--batch <n>', 'images per model call', parseIntOption('--batch', 1), 16)
      .option(
        '--prefetch <n>',
        'batches decoded and preprocessed ahead of the model',
        parseIntOption('--prefetch', 1),
        2,
      )
      .option(
        '--commit-every <n>',
        `commit a store shard every N batches (and at least every ${COMMIT_SECONDS} s)`,
        parseIntOption('--commit-every', 1),
        8,
      )
      .addOption(new Option('--kind <kind>', 'which images').choices([...IMAGE_KINDS, 'all']).default('all'))
      .addOption(
        new Option(
          '--scene-view <view>',
          'full: whole scenes; hide-product: one row per scene and product, that product hidden',
        )
          .choices(SCENE_VIEWS)
          .default('full'),
      )
      .addOption(
        new Option(
          '--hide <mode>',
          'hide-product: crop to the largest region clear of the box, or paint the box with the image mean',
        )
          .choices(HIDE_MODES)
          .default('crop'),
      )
      .option(
        '--shard <I/N>',
        'only shard I of N (hash of the image signature; same rule as ctl download) (default: all)',
        parseShard,
      )
      .option('--limit <n>', 'at most N new rows per view (default: all)', parseIntOption('--limit', 0))
      .option(
        '--api-url <url>',
        'http provider: the service; each image is one POST answered with JSON {"embedding": [...]}',
        parseHttpUrl('--api-url'),
      )
      .addOption(
        new Option(
          '--api-send <what>',
          'http provider: POST the image bytes (content-type by their format: image/jpeg, image/png, ...; a scene with ' +
            'the product hidden as image/jpeg) or JSON {"url": image URL}',
        )
          .choices(['bytes', 'url'])
          .default('bytes'),
      )
      .option(
        '--api-dim <n>',
        "http provider: expected dimension (default: the first answer's)",
        parseIntOption('--api-dim', 1),
      )
      .option(
        '--image-base-url <url>',
        'http provider with --api-send url: image host, as in ctl download',
        parseHttpUrl('--image-base-url'),
        DEFAULT_BASE_URL,
      )
      .option('--concurrency <n>', 'http provider: requests in flight', parseIntOption('--concurrency', 1), 8)
      .option(
        '--retries <n>',
        'http provider: retries of a network error or timeout, 408, 425, 429 or 5xx (exponential backoff)',
        parseIntOption('--retries', 0),
        3,
      )
      .option('--timeout <seconds>', 'http provider: per-request timeout', parseIntOption('--timeout', 1, 86_400), 30),
  ).action(
    action<EmbedFlags>(async (flags, cmd) => {
      refuseIncompatibleFlags(flags, cmd);
      const stop = gracefulStop('committing what is embedded and stopping after this batch');
      try {
        const { runEmbed } = await import('./run.js');
        const summary = await runEmbed({
          ...flags,
          offline: flags.offline || process.env.HF_HUB_OFFLINE === '1',
          http: httpOptions(flags),
          progress: true,
          stop: stop.signal,
        });
        report(summary, flags.json, stop);
      } finally {
        stop.release();
      }
    }),
  );
}

/** Refuse flags that the other flags make meaningless, and the one combination that cannot work. */
function refuseIncompatibleFlags(flags: EmbedFlags, cmd: Command): void {
  if (flags.provider === 'http') {
    if (!flags.apiUrl) throw new InputError('--provider http needs --api-url');
    refuseFlags(cmd, ['offline', 'device', 'dtype', 'threads'], '--provider local');
    if (flags.apiSend !== 'url') refuseFlags(cmd, ['imageBaseUrl'], '--api-send url');
  } else {
    const httpFlags = ['apiUrl', 'apiSend', 'apiDim', 'imageBaseUrl', 'concurrency', 'retries', 'timeout'];
    refuseFlags(cmd, httpFlags, '--provider http');
  }
  if (flags.kind === 'products') refuseFlags(cmd, ['sceneView', 'hide'], '--kind scenes or all');
  if (flags.sceneView !== 'hide-product') refuseFlags(cmd, ['hide'], '--scene-view hide-product');
  if (
    flags.provider === 'http' &&
    flags.apiSend === 'url' &&
    flags.sceneView === 'hide-product' &&
    flags.kind !== 'products'
  )
    throw new InputError(
      '--api-send url cannot hide a product (the service fetches the whole image); use --api-send bytes',
    );
}

/** The http provider's options, from its flags; undefined without --api-url (the local provider). */
function httpOptions(flags: EmbedFlags): EmbedOptions['http'] {
  return flags.apiUrl
    ? {
        apiUrl: flags.apiUrl,
        send: flags.apiSend,
        imageBaseUrl: flags.imageBaseUrl,
        concurrency: flags.concurrency,
        retries: flags.retries,
        timeoutMs: flags.timeout * 1000,
        dim: flags.apiDim,
      }
    : undefined;
}

/** Log the summary (and print it with --json), and set the exit code: stopped by a signal, or images to retry. */
function report(summary: EmbedSummary, json: boolean, stop: GracefulStop): void {
  for (const line of describe(summary)) log(line);
  const failures = summary.views.flatMap((v) => v.failed);
  const missing = failures.filter((f) => f.reason === 'missing').length;
  if (summary.embedded === 0 && failures.length > 0 && missing === failures.length && !summary.downloadRunning)
    log('embed: no image of the selection is on disk: run `ctl download` first');
  if (json) printJson(summary);
  // As ctl download: images a re-run would get (the service failed them after its retries, or a download was
  // fetching them) end in exit 1, so `ctl embed && ctl train` does not train on a store with holes a re-run fills.
  const serviceFailed = failures.filter((f) => f.reason === 'service').length;
  const notYetDownloaded = summary.downloadRunning ? missing : 0;
  const retries = [
    serviceFailed > 0 &&
      `re-run to retry the ${serviceFailed === 1 ? 'image' : `${serviceFailed} images`} the service failed`,
    notYetDownloaded > 0 &&
      `${notYetDownloaded === 1 ? '1 image was' : `${notYetDownloaded} images were`} not on disk yet while a ctl ` +
        `download fetched into this workdir (${summary.downloadRunning}): re-run once it ends`,
  ].filter(Boolean);
  setStageExitCode(
    stop,
    summary.stopped,
    serviceFailed + notYetDownloaded,
    () => `embed: ${retries.join('; ')} (what is embedded is kept)`,
  );
}
