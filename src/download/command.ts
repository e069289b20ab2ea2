// `ctl download`: fetch the dataset's scene and product images by signature, resumable.
import { Command, Option } from 'commander';
import { loadDataset } from '../data/stl/dataset-io.js';
import { IMAGE_KINDS, type Domain, type ImageKind } from '../data/types.js';
import {
  action,
  gracefulStop,
  type CommonOptions,
  setStageExitCode,
  type GracefulStop,
  parseHttpUrl,
  parseIntOption,
  parsePositive,
  parseShard,
  withCommon,
} from '../util/command.js';
import { formatBytes, log, printJson } from '../util/log.js';
import { DEFAULT_BASE_URL } from '../data/image-host.js';
import { selectTargets } from './targets.js';
import type { DownloadSummary, ImageDownloadOptions } from './downloader.js';
import type { ValidationMode } from './validate.js';
import { domainOption } from '../data/options.js';
import { MAX_BACKOFF_MS, MAX_RETRY_AFTER_MS } from '../util/retry.js';

interface DownloadFlags {
  domain: Domain;
  kind: ImageKind | 'all';
  concurrency: number;
  baseUrl: string;
  limit?: number;
  shard?: { index: number; count: number };
  retryFailed: boolean;
  timeout: number;
  retries: number;
  backoff: number;
  maxSize: number;
  validate: ValidationMode;
  verifyExisting: boolean;
  grace: number;
}

export function registerDownloadCommand(program: Command): void {
  withCommon(
    program
      .command('download')
      .description(
        'fetch scene and product images by signature into workdir/images/, resumable: a re-run (or a run after a kill) ' +
          'fetches only what is missing; outcomes go to images/manifest.jsonl. Exit 0 when every selected image is ' +
          'settled, 1 when some failed transiently (re-run to retry) or the manifest cannot be written, 2 on bad usage ' +
          'or while another ctl download that may fetch the same images runs in this workdir (one selecting images of ' +
          'the same kind; different shards of one --shard I/N run side by side), 130 when stopped by SIGINT (143 by ' +
          'SIGTERM).',
      )
      .addOption(domainOption())
      .addOption(new Option('--kind <kind>', 'which images').choices([...IMAGE_KINDS, 'all']).default('all'))
      .option(
        '--concurrency <n>',
        'most requests in flight (backs off while the host answers 429)',
        parseIntOption('--concurrency', 1),
        16,
      )
      .option(
        '--base-url <url>',
        'image host; URLs are {base}/400x/ab/cd/ef/{sig}.jpg',
        parseHttpUrl('--base-url'),
        DEFAULT_BASE_URL,
      )
      .option(
        '--limit <n>',
        'at most N images (scenes first, then products) (default: all)',
        parseIntOption('--limit', 0),
      )
      .option(
        '--shard <I/N>',
        'only the signatures of shard I of N (hash of the signature; same rule as ctl embed) (default: all)',
        parseShard,
      )
      .option(
        '--retry-failed',
        'ask again for images an earlier run recorded as failing for good: missing (404/410), refused by the host ' +
          '(403 and other 4xx), a bad redirect target, or invalid',
        false,
      )
      .option(
        '--timeout <seconds>',
        'connect, headers and body-idle timeout; a whole attempt gets at most 4x this',
        parsePositive('--timeout', 86_400),
        30,
      )
      .option(
        '--retries <n>',
        'retries of a transient failure (timeout, reset, 5xx, 429), exponential backoff with full jitter',
        parseIntOption('--retries', 0),
        4,
      )
      .option(
        '--backoff <ms>',
        `first retry waits up to this (doubling per retry, capped at ${MAX_BACKOFF_MS / 1000} s); Retry-After wins on 429/503`,
        parseIntOption('--backoff', 0),
        500,
      )
      .option('--max-size <MB>', 'largest image accepted', parsePositive('--max-size'), 10)
      .addOption(
        new Option(
          '--validate <mode>',
          'full: decode every image completely (sharp, on one worker thread per core; corrupt data anywhere is refused); ' +
            'fast: headers only (a cut body is still caught by Content-Length and end marker; corrupt data inside a whole file is not)',
        )
          .choices(['full', 'fast'])
          .default('full'),
      )
      .option(
        '--verify-existing',
        'decode every image already on disk at start, not only those the manifest does not vouch for',
        false,
      )
      .option(
        '--grace <seconds>',
        'on SIGINT/SIGTERM, time in-flight requests get to finish',
        parsePositive('--grace'),
        5,
      ),
  ).action(
    action<DownloadFlags>(async (flags) => {
      const dataset = await loadDataset(flags.workdir, flags.domain);
      const targets = selectTargets(dataset, { kind: flags.kind, shard: flags.shard, limit: flags.limit });

      // Stopped once: finish in-flight, flush the manifest. Twice: leave now; the manifest is append-only and the
      // next run cleans temp files, so nothing is corrupted either way.
      const stop = gracefulStop(`stopping after in-flight requests (up to ${flags.grace} s)`);
      try {
        log(`download: ${targets.length} images (${flags.kind}) from ${flags.baseUrl} into ${flags.workdir}/images`);
        const { downloadImages } = await import('./downloader.js');
        const summary = await downloadImages(targets, downloadOptions(flags, stop.signal));
        report(summary, flags.json, stop);
      } finally {
        stop.release();
      }
    }),
  );
}

/** The run's options, from the flags. */
function downloadOptions(flags: DownloadFlags & CommonOptions, stop: AbortSignal): ImageDownloadOptions {
  return {
    workdir: flags.workdir,
    baseUrl: flags.baseUrl,
    concurrency: flags.concurrency,
    timeoutMs: flags.timeout * 1000,
    retries: flags.retries,
    backoff: { baseMs: flags.backoff, maxMs: MAX_BACKOFF_MS, retryAfterMaxMs: MAX_RETRY_AFTER_MS },
    maxBytes: Math.round(flags.maxSize * 1024 * 1024),
    validation: flags.validate,
    retryFailed: flags.retryFailed,
    verifyExisting: flags.verifyExisting,
    shard: flags.shard,
    graceMs: flags.grace * 1000,
    stop,
  };
}

/** Log the summary (and print it with --json), and set the exit code: stopped by a signal, or images to retry. */
function report(summary: DownloadSummary, json: boolean, stop: GracefulStop): void {
  for (const line of describeSummary(summary)) log(line);
  if (json) printJson(summary);
  setStageExitCode(
    stop,
    summary.stopped,
    summary.retryable,
    (n) =>
      `${n === 1 ? '1 image' : `${n} images`} failed with transient errors: run the same command again to retry them`,
  );
}

/** Human lines for the end of a run. */
function describeSummary(s: DownloadSummary): string[] {
  const lines = [
    `${s.stopped ? 'stopped' : 'done'}: ${s.selected} selected, ${s.todo} to fetch in this run` +
      ` (ok ${s.results.ok}, missing ${s.results.missing}, invalid ${s.results.invalid}, failed ${s.results.failed}` +
      `${s.pending ? `, not reached ${s.pending}` : ''}), ${formatBytes(s.bytes)} in ${s.seconds.toFixed(1)} s` +
      ` (${s.imagesPerSec.toFixed(1)} images/s, ${s.mbPerSec.toFixed(2)} MB/s)`,
    `state: ok ${s.state.ok}, missing ${s.state.missing}, invalid ${s.state.invalid}, failed ${s.state.failed}, pending ${s.state.pending}` +
      `; ${s.requests} requests, ${s.retries} retries, concurrency ${s.concurrency.min}..${s.concurrency.max}`,
  ];
  if (s.adopted || s.removedInvalid || s.tempFilesRemoved || s.tornManifestBytes) {
    lines.push(
      `resume: adopted ${s.adopted} files on disk, removed ${s.removedInvalid} invalid files, ` +
        `${s.tempFilesRemoved} stale temp files, ${s.tornManifestBytes} bytes of a torn manifest line`,
    );
  }
  if (s.topReasons.length)
    lines.push(`top failure reasons: ${s.topReasons.map((r) => `${r.reason} ×${r.count}`).join(', ')}`);
  return lines;
}
