// `ctl data fetch | stats | pairs` end to end through the built binary (`npm run build` first): exit codes,
// `--json` alone on stdout, and `pairs --split seed:val` in exactly the order CPython's shuffle gives.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFile, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRaw, pairsText, removeTempDirs, tempDir } from './data-fixtures.js';

const CLI = resolve(__dirname, '../dist/cli.js');
const { pairs, categories } = makeRaw(200, 80, 21);
const PAIRS = pairsText(pairs);
const BAD_ROW = JSON.stringify({ ...pairs[0], scene: 'not-a-signature' });

let server: Server;
let base: string;

function ctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile('node', [CLI, ...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  const files: Record<string, string> = {
    '/ok/fashion.json': PAIRS,
    '/ok/fashion-cat.json': JSON.stringify(categories),
    '/bad/fashion.json': PAIRS + BAD_ROW + '\n',
    '/bad/fashion-cat.json': JSON.stringify(categories),
  };
  server = createServer((req, res) => {
    const body = files[req.url!];
    res.writeHead(body === undefined ? 404 : 200, { 'content-length': Buffer.byteLength(body ?? 'not found') });
    res.end(body ?? 'not found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(removeTempDirs);

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('ctl data (built binary)', () => {
  it('fetch --json prints one JSON document on stdout; a second run is up to date', async () => {
    const workdir = await tempDir();
    const first = await ctl(['data', 'fetch', '--workdir', workdir, '--base-url', `${base}/ok`, '--json']);
    expect(first.code, first.stderr).toBe(0);
    const report = JSON.parse(first.stdout);
    expect(report).toMatchObject({ status: 'fetched', domain: 'fashion', counts: { pairs: pairs.length } });
    expect(first.stderr).toMatch(/downloading /);
    const second = await ctl(['data', 'fetch', '--workdir', workdir, '--base-url', `${base}/ok`, '--json']);
    expect(JSON.parse(second.stdout).status).toBe('up-to-date');
  });

  it('stats: --json on stdout only; the human report on stderr only', async () => {
    const workdir = await tempDir();
    await ctl(['data', 'fetch', '--workdir', workdir, '--base-url', `${base}/ok`]);
    const json = await ctl(['data', 'stats', '--workdir', workdir, '--json']);
    expect(json.code).toBe(0);
    const stats = JSON.parse(json.stdout);
    expect(stats.counts.pairs).toBe(pairs.length);
    expect(stats.splits.scene.parts.val.scenesAlsoInTrain).toBe(0);
    expect(stats.splits.seed.parts.train.pairs).toBe(Math.trunc(0.9 * pairs.length));
    const human = await ctl(['data', 'stats', '--workdir', workdir]);
    expect(human.code).toBe(0);
    expect(human.stdout).toBe('');
    expect(human.stderr).toMatch(/categories \(index, leaf, products, pairs\)/);
    expect(human.stderr).toMatch(/split seed \(seed 42\): train/);
  });

  const python = spawnSync('python3', ['--version']).status === 0;
  it.skipIf(!python)('pairs --split seed:val prints the rows the reference validates on, in its order', async () => {
    const workdir = await tempDir();
    const fetched = await ctl(['data', 'fetch', '--workdir', workdir, '--base-url', `${base}/ok`]);
    expect(fetched.code).toBe(0);
    // The reference: read the released file, random.seed(42), shuffle, first int(0.9 n) train.
    const reference = spawnSync(
      'python3',
      [
        '-c',
        'import json,random,sys\np=[json.loads(l) for l in open(sys.argv[1])]\nrandom.seed(42)\nrandom.shuffle(p)\n' +
          'for x in p[int(0.9*len(p)):]: print(json.dumps(x, separators=(",", ":")))',
        join(workdir, 'stl', 'fashion.json'),
      ],
      { encoding: 'utf8' },
    );
    const out = await ctl(['data', 'pairs', '--workdir', workdir, '--split', 'seed:val']);
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(reference.stdout);
    const train = await ctl(['data', 'pairs', '--workdir', workdir, '--split', 'scene:train']);
    expect(train.stdout.trim().split('\n').length).toBeGreaterThan(pairs.length * 0.6);
  });

  it('--version prints the version package.json gives', async () => {
    const { version } = JSON.parse(await readFile(resolve(__dirname, '../package.json'), 'utf8'));
    expect(await ctl(['--version'])).toMatchObject({ code: 0, stdout: `${version}\n` });
  });

  it('a closed pipe ends quietly, as `ctl eval --help | head -1` does', async () => {
    const child = spawn(process.execPath, [CLI, 'eval', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reader is gone before anything is written
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const [code] = await once(child, 'exit');
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  it('bad input exits 2 with one clear line and nothing on stdout', async () => {
    const workdir = await tempDir();
    const noData = await ctl(['data', 'stats', '--workdir', workdir, '--json']);
    expect(noData).toMatchObject({ code: 2, stdout: '' });
    expect(noData.stderr).toMatch(/run `ctl data fetch` or `ctl data synth` first/);
    expect((await ctl(['data', 'pairs', '--workdir', workdir, '--split', 'seed:test'])).code).toBe(2);
    expect((await ctl(['data', 'fetch', '--workdir', workdir, '--retries', '-1'])).code).toBe(2);
    // Numbers in digits and within their range: not 1e12 (memory), 0x10, or a timeout past what timers hold.
    for (const [flag, value, says] of [
      ['--scenes', '1e12', /--scenes expects an integer >= 1 and <= 10000000/],
      ['--scenes', '0x10', /--scenes expects an integer/],
      ['--dim', '100000000', /--dim expects an integer >= 2 and <= 4096/],
    ] as const) {
      const refused = await ctl(['data', 'synth', '--workdir', workdir, flag, value]);
      expect(refused.code, `${flag} ${value}`).toBe(2);
      expect(refused.stderr).toMatch(says);
    }
    const timeout = await ctl(['data', 'fetch', '--workdir', workdir, '--timeout', '3000000']);
    expect(timeout).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--timeout expects a number > 0 and <= 86400/),
    });
    expect((await ctl(['data', 'fetch', '--workdir', workdir, '--domain', 'garden'])).code).toBe(2);
    await writeFile(join(workdir, 'a-file'), 'x');
    const notAFolder = await ctl(['data', 'synth', '--workdir', join(workdir, 'a-file')]);
    expect(notAFolder.code).toBe(2);
    expect(notAFolder.stderr).toMatch(/ctl data synth: error: --workdir .*a-file: not a folder/);
    const underDevice = await ctl(['data', 'synth', '--workdir', '/dev/null/x']);
    expect([underDevice.code, underDevice.stderr]).toEqual([
      2,
      expect.stringMatching(/--workdir \/dev\/null\/x: \/dev\/null is not a folder\n$/),
    ]);
    for (const command of [['data', 'synth'], ['demo']]) {
      const under = await ctl([...command, '--workdir', join(workdir, 'a-file', 'sub', 'dir')]);
      expect([under.code, under.stderr]).toEqual([
        2,
        expect.stringMatching(/--workdir .*sub\/dir: .*a-file is not a folder\n$/),
      ]);
    }
    await symlink(join(workdir, 'gone'), join(workdir, 'dangling'));
    const dangling = await ctl(['data', 'synth', '--workdir', join(workdir, 'dangling')]);
    expect([dangling.code, dangling.stderr]).toEqual([
      2,
      `ctl data synth: error: --workdir ${join(workdir, 'dangling')}: a link to ${join(workdir, 'gone')}, which is not there\n`,
    ]);
    await symlink('loop', join(workdir, 'loop')); // relative, to itself
    const loop = await ctl(['data', 'synth', '--workdir', join(workdir, 'loop')]);
    expect([loop.code, loop.stderr]).toEqual([
      2,
      expect.stringMatching(/--workdir .*\/loop: a link that cannot be followed \(ELOOP: /),
    ]);
    // Run from a folder removed from under the shell, with the default workdir (./workdir).
    const removed = join(workdir, 'removed');
    const inGone = spawnSync(
      'sh',
      ['-c', 'mkdir "$1" && cd "$1" && rmdir "$1" && exec node "$2" data stats', 'sh', removed, CLI],
      {
        encoding: 'utf8',
        env: { ...process.env, CTL_WORKDIR: undefined },
      },
    );
    expect(inGone.status).toBe(2);
    expect(inGone.stderr).toMatch(
      /^ctl data stats: error: the workdir \.\/workdir: the current folder is gone \(.*\): cd to another\n$/,
    );
    for (const url of ['stl.example.com', 'file:///etc']) {
      const badUrl = await ctl(['data', 'fetch', '--workdir', workdir, '--base-url', url]);
      expect(badUrl.code).toBe(2); // at once, not after retries
      expect(badUrl.stderr).toMatch(/--base-url expects an http\(s\) URL/);
    }
  });

  it('fetch: a bad row in --strict mode and a 404 exit 2 naming the URL; lenient skips and reports the row', async () => {
    const workdir = await tempDir();
    const strict = await ctl([
      'data',
      'fetch',
      '--workdir',
      workdir,
      '--base-url',
      `${base}/bad`,
      '--strict',
      '--json',
    ]);
    expect(strict).toMatchObject({ code: 2, stdout: '' });
    expect(strict.stderr).toContain(
      `${base}/bad/fashion.json:${pairs.length + 1}: scene: 32 lower-case hex characters`,
    );

    const missing = await ctl(['data', 'fetch', '--workdir', workdir, '--base-url', `${base}/nothing`]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/HTTP 404/);

    const lenient = await ctl(['data', 'fetch', '--workdir', workdir, '--base-url', `${base}/bad`]);
    expect(lenient.code, lenient.stderr).toBe(0);
    expect(lenient.stderr).toMatch(/pairs: \d+ of \d+ rows kept, skipped: bad-signature 1/);
  });
});
