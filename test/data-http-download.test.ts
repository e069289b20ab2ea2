// The metadata download against a server that closes the connection right after a multi-megabyte body (as
// `python3 -m http.server` does): undici 7 fails an uncatchable internal assertion when the socket ends while
// backpressure from the file write has paused its parser, so the download must never let it pause. Fifty downloads must all arrive whole.
// A file that cannot be opened or written (a full disk) fails at once, naming it, in a child process so that a
// crash would show.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile } from '../src/data/stl/http-download.js';
import { removeTempDirs, tempDir } from './data-fixtures.js';

const BODY = randomBytes(6 * 1024 * 1024);
const SHA256 = createHash('sha256').update(BODY).digest('hex');
/** A body that has wholly arrived by the time the download reads it (at /small.json; /unsized.json without its length). */
const SMALL = randomBytes(4096);

let server: Server;
let base: string;
let url: string;
let requests = 0;

beforeAll(async () => {
  // A raw socket server: headers, the whole body, then the end of the connection, with nothing in between.
  server = createServer((socket) => {
    socket.on('error', () => undefined); // a client that drops the body resets the connection
    socket.once('data', (request) => {
      requests++;
      const path = String(request).split(' ')[1];
      const body = path === '/fashion.json' ? BODY : SMALL;
      const length = path === '/unsized.json' ? '' : `Content-Length: ${body.length}\r\n`;
      socket.write(`HTTP/1.1 200 OK\r\n${length}Connection: close\r\n\r\n`);
      socket.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  url = `${base}/fashion.json`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await removeTempDirs();
});

describe('downloadFile from a server that closes after the body', () => {
  it('gets every byte, 50 times in a row', async () => {
    const dir = await tempDir();
    for (let i = 0; i < 50; i++) {
      const path = join(dir, `fashion-${i % 2}.json`);
      const result = await downloadFile(url, path, { retries: 0, label: 'close-after-body' });
      expect(result.bytes).toBe(BODY.length);
      expect(result.sha256).toBe(SHA256);
      expect(result.attempts).toBe(1);
      expect(
        createHash('sha256')
          .update(await readFile(path))
          .digest('hex'),
      ).toBe(SHA256);
    }
  });
});

/**
 * downloadFile from dist/ (`npm run build` first) in a child process, run by bash after `setup` (e.g. a `ulimit`):
 * its exit code, its outcome on stdout, and whatever else it printed (retry lines, a crash) on stderr.
 */
function downloadInChild(
  from: string,
  path: string,
  setup = 'true',
): Promise<{ code: number; stdout: string; stderr: string }> {
  const module = pathToFileURL(resolve('dist/data/stl/http-download.js')).href;
  const script =
    `import { downloadFile } from ${JSON.stringify(module)};` +
    `await downloadFile(process.argv[1], process.argv[2], { retries: 2, backoffMs: 10 }).then(` +
    `(d) => console.log('downloaded after', d.attempts), (e) => console.log(e.name + ': ' + e.message));`;
  const command = `${setup} && exec "$0" --input-type=module -e "$1" "$2" "$3"`;
  return new Promise((done) => {
    execFile('bash', ['-c', command, process.execPath, script, from, path], (err, stdout, stderr) =>
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

describe('downloadFile into a file it cannot write', () => {
  it('one it cannot open fails at once naming it, without crashing on the body it drops', async () => {
    const path = join(await tempDir(), 'gone', 'fashion.json');
    const before = requests;
    expect(await downloadInChild(`${base}/small.json`, path)).toEqual({
      code: 0,
      stdout: `RunError: cannot write ${path}: ENOENT: no such file or directory, open '${path}'\n`,
      stderr: '',
    });
    expect(requests - before).toBe(1);
  });

  it('one the disk will not take whole fails at once naming it, not retried, and leaves nothing', async () => {
    const dir = await tempDir();
    const path = join(dir, 'fashion.json');
    const before = requests;
    // A file-size limit (ulimit -f, 1 KiB blocks) fails the write as a full disk does (EFBIG here, ENOSPC there).
    expect(await downloadInChild(url, path, 'ulimit -f 16')).toEqual({
      code: 0,
      stdout: `RunError: cannot write ${path}: EFBIG: file too large, write\n`,
      stderr: '',
    });
    expect(requests - before).toBe(1);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('downloadFile of a body without a Content-Length', () => {
  it('shows the bytes it got and their rate, no share of an unknown total', async () => {
    const from = `${base}/unsized.json`;
    const child = await downloadInChild(from, join(await tempDir(), 'fashion.json'));
    expect(child.stdout).toBe('downloaded after 1\n');
    expect(child.stderr).toMatch(/^(\S+ 4096 B, [\d.]+ B\/s, elapsed \d+s\n)+$/); // a line at the end, maybe others before
    expect(child.stderr.startsWith(`${from} `)).toBe(true);
  });
});
