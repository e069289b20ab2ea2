// The metadata download against a server that closes the connection right after a multi-megabyte body (as
// `python3 -m http.server` does): undici 7 fails an uncatchable internal assertion when the socket ends while
// backpressure from the file write has paused its parser, so the download must never let it pause. Fifty downloads must all arrive whole.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile } from '../src/data/stl/http-download.js';
import { removeTempDirs, tempDir } from './data-fixtures.js';

const BODY = randomBytes(6 * 1024 * 1024);
const SHA256 = createHash('sha256').update(BODY).digest('hex');

let server: Server;
let url: string;

beforeAll(async () => {
  // A raw socket server: headers, the whole body, then the end of the connection, with nothing in between.
  server = createServer((socket) => {
    socket.once('data', () => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\nConnection: close\r\n\r\n`);
      socket.end(BODY);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fashion.json`;
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
