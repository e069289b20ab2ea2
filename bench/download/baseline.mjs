// The plain baseline client: a minimal undici loop (keep-alive pool, N workers), each body streamed to a file,
// no validation, no manifest, no retries. Usage: node baseline.mjs URLS_FILE OUT_DIR CONCURRENCY
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Agent, request } from 'undici';

const [urlsFile, outDir, concurrencyText] = process.argv.slice(2);
const urls = readFileSync(urlsFile, 'utf8').split('\n').filter(Boolean);
const concurrency = Number(concurrencyText);
const dispatcher = new Agent({ connections: concurrency, keepAliveTimeout: 30_000 });
let next = 0;
let failed = 0;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < urls.length) {
      const i = next++;
      const { statusCode, body } = await request(urls[i], { dispatcher });
      if (statusCode !== 200) failed++;
      await pipeline(body, createWriteStream(join(outDir, `${i}.jpg`)));
    }
  }),
);
await dispatcher.close();
if (failed) throw new Error(`${failed} requests failed`);
