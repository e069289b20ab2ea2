// A local stand-in for Pinterest's image host: serves a synthetic workdir's images under the real URL layout
// (/400x/ab/cd/ef/<sig>.jpg) on 127.0.0.1. `ctl demo` points `ctl download` at it, so the demo runs the same
// network code as a real run.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { workdirPaths } from '../data/workdir.js';

export interface Mirror {
  baseUrl: string;
  close(): Promise<void>;
}

/** The files of the synthetic workdir a request path may name (none for anything else). */
function filesFor(sourceWorkdir: string, url: string): string[] {
  const paths = workdirPaths(sourceWorkdir);
  const image = /^\/400x\/[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f]{2}\/([0-9a-f]{32})\.jpg$/.exec(url);
  if (!image) return [];
  // Scenes and products share one URL space on the real host; look in both folders.
  return [paths.imageFile('scenes', image[1]), paths.imageFile('products', image[1])];
}

export async function startMirror(sourceWorkdir: string): Promise<Mirror> {
  const server: Server = createServer(async (req, res) => {
    for (const file of filesFor(sourceWorkdir, (req.url ?? '').split('?')[0])) {
      const info = await stat(file).catch(() => undefined);
      if (!info?.isFile()) continue;
      res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': info.size });
      createReadStream(file).pipe(res);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
