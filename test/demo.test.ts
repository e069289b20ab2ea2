// `ctl demo` end to end through the built binary (`npm run build` first), at small sizes: every stage runs as a
// child `ctl` process (synth with images, download from the local stand-in host, embed with the generated model,
// zero-shot eval, train, eval), the --json summary carries the metrics, a second run redoes no finished work, and
// a third with --serve serves the run.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { workdirPaths } from '../src/data/workdir.js';
import { startCli, stopClis } from './serve-fixtures.js';

const CLI = resolve(__dirname, '../dist/cli.js');
const dirs: string[] = [];

afterAll(async () => {
  stopClis();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

function ctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile('node', [CLI, ...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

/** The demo started in its own process group, as a shell starts a job; resolves at its exit code once it exits. */
function startDemo(args: string[]) {
  const child = spawn('node', [CLI, 'demo', ...args], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | string>((done) => child.on('close', (code, signal) => done(code ?? signal!)));
  const printed = async (text: string) => {
    while (!stderr.includes(text) && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  };
  return { child, exited, printed, stderr: () => stderr };
}

/** The processes whose command line names `text`. */
const processesNaming = (text: string) =>
  execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.includes(text));

/** A process's state letter(s) as ps shows them (T: stopped). */
const processState = (pid: number) =>
  execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).trim();

/** Wait until `holds()` (or fail after 20 s). */
async function until(holds: () => boolean) {
  for (const end = Date.now() + 20_000; !holds(); await new Promise((r) => setTimeout(r, 100)))
    if (Date.now() > end) throw new Error(`not within 20 s: ${holds}`);
}

const isMetric = (x: unknown) => typeof x === 'number' && x >= 0 && x <= 1;

describe('ctl demo (built binary)', () => {
  it('runs the pipeline, sums up zero-shot vs trained in --json, and a second run resumes without redoing work', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ctl-demo-'));
    dirs.push(root);
    const args = ['demo', '--workdir', root, '--scenes', '120', '--products', '60', '--json'];

    const first = await ctl(args);
    expect(first.code, first.stderr).toBe(0);
    const summary = JSON.parse(first.stdout);
    const workdir = join(root, 'demo');
    expect(summary.data).toMatchObject({ source: 'synthetic', scenes: 120 });
    expect(summary.embeddings.model).toBe('small');
    expect(summary.embeddings.weights).toMatch(/random/);
    const { catalog } = summary;
    expect(catalog.split).toBe('scene/test');
    expect(catalog.queries).toBeGreaterThan(0);
    for (const row of [catalog.zeroShot, catalog.trained]) {
      expect(row.protocol).toBe('catalog');
      for (const k of ['1', '5', '10', '50']) expect(isMetric(row.recall[k])).toBe(true);
      expect(isMetric(row.mrr)).toBe(true);
    }
    expect(catalog.trained.epoch).toBeGreaterThanOrEqual(1);
    expect(summary.eval.trained.map((r: { protocol: string }) => r.protocol)).toEqual(['seed', 'catalog', 'category']);
    const images = summary.data.scenes + summary.data.products;
    expect(summary.work).toMatchObject({ imagesPainted: images, imagesDownloaded: images, rowsEmbedded: images });
    expect(summary.files).toMatchObject({ workdir, run: workdirPaths(workdir).run('demo') });
    // The human summary (stderr) names the zero-shot row, the honesty notes and what to run next.
    expect(first.stderr).toMatch(/zero-shot \(cosine\)/);
    expect(first.stderr).toMatch(/SYNTHETIC/);
    expect(first.stderr).toMatch(/RANDOM weights/);
    expect(first.stderr).toContain(`ctl eval --run demo --workdir ${workdir}`);
    expect(first.stderr).toContain(`ctl data stats --workdir ${workdir}`);

    const run = workdirPaths(workdir).run('demo');
    const metrics = await readFile(join(run, 'metrics.jsonl'), 'utf8');
    const checkpoint = (await stat(join(run, 'checkpoints', 'last', 'model.safetensors'))).mtimeMs;

    const second = await ctl(args);
    expect(second.code, second.stderr).toBe(0);
    const again = JSON.parse(second.stdout);
    expect(again.work).toMatchObject({ imagesPainted: 0, imagesDownloaded: 0, rowsEmbedded: 0 });
    expect(await readFile(join(run, 'metrics.jsonl'), 'utf8')).toBe(metrics);
    expect((await stat(join(run, 'checkpoints', 'last', 'model.safetensors'))).mtimeMs).toBe(checkpoint);
    expect(again.catalog).toEqual(catalog);

    // Other data in the same place would resume the stages of this one: refused before any stage runs.
    const other = await ctl(args.map((a) => (a === '120' ? '130' : a)));
    expect(other.code).toBe(2);
    expect(other.stderr).toContain(
      `the demo in ${workdir} was made with --scenes 120 --products 60 --seed 7: run \`ctl demo\` with those`,
    );
    expect(await readFile(join(run, 'metrics.jsonl'), 'utf8')).toBe(metrics);

    // --serve: the finished demo ends by serving its run, uploads on (the generated image model), until Ctrl-C.
    const served = startCli([...args.filter((a) => a !== '--json'), '--serve', '--port', '0']);
    const url = await served.listening;
    const health = await (await fetch(new URL('/api/health', url))).json();
    expect(health).toMatchObject({ run: 'demo', uploads: { enabled: true, model: 'small' } });
    const scenes = await (await fetch(new URL('/api/scenes?limit=1', url))).json();
    const res = await fetch(new URL('/api/recommend', url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ scene: scenes.scenes[0].sig, k: 5 }),
    });
    expect((await res.json()).results).toHaveLength(5);
    served.child.kill('SIGINT');
    expect(await served.exited).toBe(0);
  }, 240_000);

  it('refuses --port without --serve, and a damaged demo.json, before any stage runs', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ctl-demo-'));
    dirs.push(root);
    const run = await ctl(['demo', '--workdir', root, '--port', '9000']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--port: only with --serve');
    expect(await readdir(root)).toEqual([]);

    // A demo.json that does not say what the demo was made of is named, not overwritten.
    await mkdir(join(root, 'demo'));
    await writeFile(join(root, 'demo', 'demo.json'), '{ "scenes": "many" }');
    const damaged = await ctl(['demo', '--workdir', root]);
    expect(damaged.code).toBe(2);
    expect(damaged.stderr).toContain(`demo.json: scenes: expected an integer >= 1, got "many"`);
  });

  it("refuses a demo's own folder as --workdir (the demo would nest a second one in it), naming its parent", async () => {
    const root = await mkdtemp(join(tmpdir(), 'ctl-demo-'));
    dirs.push(root);
    const own = join(root, 'demo');
    await mkdir(own);
    await writeFile(join(own, 'demo.json'), '{ "scenes": 100, "products": 20, "seed": 7 }');
    const nested = await ctl(['demo', '--workdir', own]);
    expect(nested.code).toBe(2);
    expect(nested.stderr).toContain(
      `--workdir ${own} is a demo's own folder (it holds demo.json); the demo lives in <workdir>/demo: give its parent, \`ctl demo --workdir ${root}\``,
    );
    expect(await readdir(own)).toEqual(['demo.json']);
    expect((await ctl(['demo', '--help'])).stdout).toMatch(/--workdir <dir>\s+the demo lives in <workdir>\/demo/);
  });

  it('refuses data with an empty test part right after writing it, before the slow stages; and under 50 scenes', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ctl-demo-'));
    dirs.push(root);
    // Seed 121's 50 scenes all hash into train or val: nothing to evaluate on.
    const few = await ctl(['demo', '--workdir', root, '--scenes', '50', '--products', '20', '--seed', '121']);
    expect(few.code).toBe(2);
    expect(few.stderr).toContain(
      'too few scenes for a test split: the scene split of --scenes 50 --seed 121 has no test pairs: try --scenes 100 or another --seed',
    );
    expect(few.stderr).not.toContain('== paint');
    // Nothing else is made of that data: another seed may start over in the same folder.
    expect((await readdir(join(root, 'demo'))).sort()).toEqual(['dataset', 'stl']);

    const tiny = await ctl(['demo', '--workdir', root, '--scenes', '20']);
    expect(tiny.code).toBe(2);
    expect(tiny.stderr).toContain('--scenes expects an integer >= 50');
  });

  it('stopped by a signal, stops the running stage, says how to continue and exits as the signal would', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ctl-demo-stop-'));
    dirs.push(root);
    const args = ['--workdir', root, '--scenes', '400', '--products', '100'];
    const resume = `stopped; run \`ctl demo --workdir ${root} --scenes 400 --products 100 --seed 7\` again to continue`;

    // SIGTERM to the demo alone (`kill PID`): the painting stage it runs is stopped too, not left running on.
    const killed = startDemo(args);
    await killed.printed('== paint');
    killed.child.kill('SIGTERM');
    expect(await killed.exited).toBe(143);
    expect(killed.stderr()).toContain(resume);
    expect(processesNaming(root)).toEqual([]);

    // Ctrl-Z and `fg`: SIGTSTP to the group stops the demo and its stage, SIGCONT goes on with both.
    const suspended = startDemo(args);
    await suspended.printed('== paint');
    const states = () => processesNaming(root).map((line) => processState(Number(line.trim().split(' ')[0])));
    process.kill(-suspended.child.pid!, 'SIGTSTP');
    await until(() => states().length === 2 && states().every((state) => state.startsWith('T')));
    process.kill(-suspended.child.pid!, 'SIGCONT');
    await until(() => states().every((state) => !state.startsWith('T')));
    suspended.child.kill('SIGTERM');
    expect(await suspended.exited).toBe(143);

    // SIGKILL to the demo alone, which cannot pass it on: the stage stops itself once its stdin pipe closes.
    const dead = startDemo(args);
    await dead.printed('== paint');
    dead.child.kill('SIGKILL');
    expect(await dead.exited).toBe('SIGKILL');
    await until(() => processesNaming(root).length === 0);

    // Ctrl-C in a terminal: SIGINT to the whole process group, which reaches the stage once.
    const interrupted = startDemo(args);
    await interrupted.printed('== paint');
    process.kill(-interrupted.child.pid!, 'SIGINT');
    expect(await interrupted.exited).toBe(130);
    expect(interrupted.stderr().split(resume)).toHaveLength(2);
    expect(processesNaming(root)).toEqual([]);
  });
});
