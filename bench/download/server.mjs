// The benchmark's image host: serves a pool of JPEG files from memory under Pinterest's URL layout,
// keep-alive, and prints its port on stdout. Usage: node server.mjs POOL_DIR
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';

const dir = process.argv[2];
const pool = readdirSync(dir)
  .sort()
  .map((name) => readFileSync(join(dir, name)));
const layout = /^\/400x\/[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f]{2}\/([0-9a-f]{32})\.jpg$/;

const server = http.createServer((req, res) => {
  const m = layout.exec(req.url ?? '');
  if (!m) return res.writeHead(404).end();
  // Signature → one image of the pool, always the same one.
  const body = pool[parseInt(m[1].slice(0, 8), 16) % pool.length];
  res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': body.length }).end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
