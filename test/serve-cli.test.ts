// `ctl serve` through the built binary (`npm run build` first): it says which run it picked and where it listens,
// answers, and closes cleanly on SIGTERM and SIGINT (exit 0); bad usage exits 2 with one clear line.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listRuns, pickDefaultRun } from '../src/serve/runs.js';
import { RUN, startCli, stopClis, trainedWorkdir, type ServeFixture } from './serve-fixtures.js';

let fixture: ServeFixture;

beforeAll(async () => {
  fixture = await trainedWorkdir();
}, 120_000);
afterAll(async () => {
  stopClis();
  await fixture?.remove();
});

describe('ctl serve (built binary)', () => {
  for (const [signal, backend] of [
    ['SIGTERM', 'wasm'],
    ['SIGINT', 'cpu'],
    ['SIGTERM', 'ort-cpu'],
  ] as const) {
    it(`picks the run, serves on ${backend}, and closes cleanly on ${signal}`, async () => {
      const server = startCli(['serve', '--workdir', fixture.workdir, '--port', '0', '--backend', backend]);
      const url = await server.listening;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      expect(server.stderr()).toMatch(/serve: run '[\w-]+', the best catalog R@10/);
      const health = await (await fetch(new URL('/api/health', url))).json();
      expect(health.status).toBe('ok');
      expect(health.device.backend).toBe(backend);
      expect(server.stderr()).toContain(`towers: ${backend} (`);
      server.child.kill(signal);
      expect(await server.exited).toBe(0);
      expect(server.stderr()).toContain(`${signal}: closing`);
      expect(server.stderr()).not.toMatch(/tfjs-node/); // tfjs's banner for its cpu backend
    });
  }

  it('keeps serving when its log is no longer read, and keeps no upload folder between uploads', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'ctl-serve-tmp-'));
    try {
      const args = ['serve', '--workdir', fixture.workdir, '--run', RUN, '--port', '0', '--backend', 'wasm'];
      const server = startCli(args, { ...process.env, TMPDIR: tmp });
      const url = await server.listening;
      const photo = await sharp({ create: { width: 40, height: 40, channels: 3, background: '#884422' } })
        .jpeg()
        .toBuffer();
      const upload = async () => {
        const form = new FormData();
        form.append('image', new Blob([new Uint8Array(photo)], { type: 'image/jpeg' }), 'photo.jpg');
        return (await fetch(new URL('/api/recommend', url), { method: 'POST', body: form })).status;
      };
      expect(await upload()).toBe(200);
      expect(await readdir(tmp)).toEqual([]);
      // `ctl serve 2>&1 | head -c 1`: the log's reader goes; the server answers on, and its last lines are lost.
      server.child.stderr.destroy();
      expect(await upload()).toBe(200);
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('turns uploads off, saying why, when the temporary folder cannot be written', async () => {
    const missing = join(tmpdir(), 'ctl-no-such-tmp', 'tmp');
    const args = ['serve', '--workdir', fixture.workdir, '--run', RUN, '--port', '0', '--backend', 'wasm'];
    const server = startCli(args, { ...process.env, TMPDIR: missing });
    const url = await server.listening;
    const health = await (await fetch(new URL('/api/health', url))).json();
    expect(health.uploads.enabled).toBe(false);
    expect(health.uploads.reason).toMatch(
      new RegExp(`^the temporary folder cannot be written \\(ENOENT.*${missing}.*\\): set TMPDIR to a writable folder`),
    );
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  });

  it('leaves out the best run when its checkpoint does not read, and serves the next', async () => {
    const picked = pickDefaultRun(await listRuns(fixture.workdir))!.name;
    // Its weights, not its state.json: a run whose best state does not read has no report of its best to rank by.
    const file = join(fixture.workdir, 'runs', picked, 'checkpoints', 'best', 'model.safetensors');
    const original = await readFile(file);
    await writeFile(file, 'not safetensors');
    try {
      const server = startCli(['serve', '--workdir', fixture.workdir, '--port', '0', '--backend', 'wasm']);
      const url = await server.listening;
      expect((await (await fetch(new URL('/api/health', url))).json()).status).toBe('ok');
      expect(server.stderr()).toMatch(new RegExp(`serve: run '${picked}' left out: .*model\\.safetensors`));
      const served = /serve: run '([\w-]+)', the best catalog R@10/.exec(server.stderr())?.[1];
      expect(served).toBeDefined();
      expect(served).not.toBe(picked);
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    } finally {
      await writeFile(file, original);
    }
  });

  it('exits 2 with a clear line for an unknown run, an empty workdir, a port in use and a host not ours', async () => {
    const unknown = startCli(['serve', '--workdir', fixture.workdir, '--run', 'nope', '--port', '0']);
    expect(await unknown.exited).toBe(2);
    expect(unknown.stderr()).toMatch(
      /ctl serve: error: --run nope: no such run in .*runs \(runs: synthetic-run, tiny-run\)/,
    );

    const empty = await mkdtemp(join(tmpdir(), 'ctl-serve-empty-'));
    try {
      const none = startCli(['serve', '--workdir', empty, '--port', '0']);
      expect(await none.exited).toBe(2);
      expect(none.stderr()).toMatch(/no trained run in .*: train one first .*, or run `ctl demo --serve`/);
      await mkdir(join(empty, 'demo', 'runs', 'demo'), { recursive: true }); // where `ctl demo` trains
      const afterDemo = startCli(['serve', '--workdir', empty, '--port', '0']);
      expect(await afterDemo.exited).toBe(2);
      expect(afterDemo.stderr()).toContain(
        `the demo's, which lives in its own workdir: \`ctl serve --workdir ${join(empty, 'demo')}\``,
      );
    } finally {
      await rm(empty, { recursive: true, force: true });
    }

    const blocker = createServer();
    await new Promise<void>((done) => blocker.listen(0, '127.0.0.1', done));
    const port = (blocker.address() as { port: number }).port;
    try {
      const busy = startCli(['serve', '--workdir', fixture.workdir, '--run', RUN, '--port', String(port)]);
      expect(await busy.exited).toBe(2);
      expect(busy.stderr()).toMatch(new RegExp(`--port ${port}: the port is in use`));
    } finally {
      blocker.close();
    }
    // 192.0.2.1 is a documentation address (TEST-NET-1): never one of this machine's.
    const elsewhere = startCli(['serve', '--workdir', fixture.workdir, '--run', RUN, '--host', '192.0.2.1']);
    expect(await elsewhere.exited).toBe(2);
    expect(elsewhere.stderr()).toMatch(/--host 192\.0\.2\.1: not an address of this machine \(EADDRNOTAVAIL\)/);
  });

  it.skipIf(nativeTfjsInstalled())(
    'exits 2 naming the backend, not blaming the runs, when no --run is given and --backend cannot run here',
    async () => {
      const server = startCli(['serve', '--workdir', fixture.workdir, '--port', '0', '--backend', 'tensorflow']);
      expect(await server.exited).toBe(2);
      expect(server.stderr()).toMatch(/ctl serve: error: --backend tensorflow needs '@tensorflow\/tfjs-node'/);
      expect(server.stderr()).not.toMatch(/left out|no trained run/);
    },
  );
});

/** Whether tfjs's native backend is installed (then --backend tensorflow runs). */
function nativeTfjsInstalled(): boolean {
  const require = createRequire(import.meta.url);
  return ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'].some((pkg) => {
    try {
      require.resolve(pkg);
      return true;
    } catch {
      return false;
    }
  });
}
