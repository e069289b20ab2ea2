// images/manifest.jsonl: one JSON line per download outcome, appended as they happen. The last line of a
// signature is its state. A kill can tear the last line; it is cut off on the next open, never misread.
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readFile, stat, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { cannotWrite, locatedError } from '../util/errors.js';
import { IMAGE_KINDS, type ImageKind } from '../data/types.js';
import type { ImageFormat } from '../data/image-format.js';

/** ok: valid file on disk; missing: 404/410; invalid: the body was not a valid image; failed: gave up. */
export type ImageStatus = 'ok' | 'missing' | 'invalid' | 'failed';
const IMAGE_STATUSES: readonly ImageStatus[] = ['ok', 'missing', 'invalid', 'failed'];

export interface ManifestRecord {
  sig: string;
  kind: ImageKind;
  status: ImageStatus;
  /** Last HTTP status seen, when a response came. */
  http?: number;
  /** Requests made for this outcome (0: an existing file was adopted). */
  attempts: number;
  bytes: number;
  /** Wall time of this outcome, retries and waits included. */
  ms: number;
  reason?: string;
  /** Not asked again on the next run unless --retry-failed (404, 410, 403, invalid bodies). */
  permanent?: boolean;
  format?: ImageFormat;
  /** ISO time the outcome was recorded. */
  at: string;
}

export function manifestKey(kind: ImageKind, sig: string): string {
  return `${kind}/${sig}`;
}

/**
 * The latest record per (kind, sig). A last line without its newline is a write torn by a kill: it is skipped and
 * its length reported (`ManifestWriter.open` cuts it off; a reader, e.g. a merge, leaves the file as it is). Any
 * other bad line is an input error.
 */
export async function readManifest(
  path: string,
): Promise<{ latest: Map<string, ManifestRecord>; lines: number; end: number; tornBytes: number }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { latest: new Map(), lines: 0, end: 0, tornBytes: 0 };
    throw err;
  }
  const end = bytes.lastIndexOf(0x0a) + 1;
  const tornBytes = bytes.length - end;
  const latest = new Map<string, ManifestRecord>();
  const lines = bytes.subarray(0, end).toString('utf8').split('\n');
  lines.pop(); // the empty string after the final newline
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const record = parseRecord(path, i + 1, line);
    latest.set(manifestKey(record.kind, record.sig), record);
  });
  return { latest, lines: lines.length, end, tornBytes };
}

function parseRecord(path: string, lineNo: number, line: string): ManifestRecord {
  let value: Partial<ManifestRecord>;
  try {
    value = JSON.parse(line);
  } catch {
    throw locatedError(path, lineNo, 'line', 'one JSON object (a line in the middle of the manifest is corrupt)');
  }
  if (typeof value !== 'object' || value === null) throw locatedError(path, lineNo, 'line', 'a JSON object');
  if (typeof value.sig !== 'string' || value.sig === '') throw locatedError(path, lineNo, 'sig', 'a signature string');
  if (!IMAGE_KINDS.includes(value.kind as ImageKind))
    throw locatedError(path, lineNo, 'kind', `one of ${IMAGE_KINDS.join(', ')}`);
  if (!IMAGE_STATUSES.includes(value.status as ImageStatus))
    throw locatedError(path, lineNo, 'status', `one of ${IMAGE_STATUSES.join(', ')}`);
  return value as ManifestRecord;
}

/** Appends records; lines reach the OS as they are written, `close()` flushes the rest. */
export class ManifestWriter {
  private constructor(
    private readonly path: string,
    private readonly stream: WriteStream,
  ) {
    stream.on('error', () => {}); // a failed write leaves the stream destroyed with it: append and close report it
  }

  /**
   * Append to `path`, first cutting off the torn last line readManifest reported (its `tornBytes` after `end`):
   * only while the file is as it was read, so a line another writer appended since is never cut.
   */
  static async open(path: string, torn?: { end: number; tornBytes: number }): Promise<ManifestWriter> {
    await mkdir(dirname(path), { recursive: true });
    if (torn && torn.tornBytes > 0 && (await stat(path)).size === torn.end + torn.tornBytes)
      await truncate(path, torn.end);
    return new ManifestWriter(path, createWriteStream(path, { flags: 'a' }));
  }

  append(record: ManifestRecord): void {
    this.throwIfFailed();
    this.stream.write(JSON.stringify(record) + '\n');
  }

  /** Flush and close the file; a RunError when any write failed (the stream is closed either way). */
  async close(): Promise<void> {
    if (!this.stream.errored) await new Promise<void>((resolve) => this.stream.end(() => resolve()));
    this.throwIfFailed();
  }

  /** A write the disk refused (ENOSPC, EFBIG, EIO): the run cannot record its outcomes, so it stops. */
  private throwIfFailed(): void {
    const err = this.stream.errored;
    if (err) throw cannotWrite(this.path, err);
  }
}
