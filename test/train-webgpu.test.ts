// `ctl train --backend webgpu` through the built binary (run `npm run build` first): the ONNX training step on
// onnxruntime's WebGPU provider. On a machine with an adapter (CI: Mesa's lavapipe, a software Vulkan driver,
// installed by .ci/run) a short run ends within 1 point of R@10 of the same run on ort-cpu, records webgpu in its
// checkpoint, and the checkpoint loads for `ctl eval`; without one, `--backend webgpu` exits 2 in one line and
// `auto` says in one line why it trains on ort-cpu. Under CI=true a missing adapter fails.
import { spawn, spawnSync } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { probeWebGpuAdapter } from '../src/util/webgpu-adapter.js';
import { checkpointEpoch, epochRecords, plantedWorkdir, smallConfig, writeConfig } from './train-fixtures.js';

const CLI = join(process.cwd(), 'dist', 'cli.js');
/** The Vulkan loader finds no driver at all: what a machine without a GPU looks like to Dawn. */
const NO_VULKAN = { VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' };

const probe = await probeWebGpuAdapter();
let workdir = '';
let config = '';

const ctl = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [CLI, ...args, '--workdir', workdir], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });

/** The last epoch's loss and validation R@10. */
async function lastEpoch(run: string): Promise<Record<string, any>> {
  return (await epochRecords(workdir, run)).at(-1)!;
}

beforeAll(async () => {
  const planted = await plantedWorkdir({ scenes: 240, dim: 16, categories: 3, latent: 4, seed: 4 });
  workdir = planted.workdir;
  // One full batch per step: every step has the same shape, so the provider compiles its shaders once (a software
  // adapter takes seconds per compile).
  const trainPairs = planted.dataset.splits.scene!.parts.train!.length;
  config = await writeConfig(workdir, 'webgpu', smallConfig({ batchSize: trainPairs, epochs: 6 }));
});

afterAll(async () => {
  await rm(workdir, { recursive: true, force: true });
});

describe('ctl train --backend webgpu', () => {
  test.runIf(process.env.CI === 'true')('CI has a WebGPU adapter (lavapipe): the tests below cannot skip there', () => {
    expect(probe.adapter, 'reason' in probe ? probe.reason : '').not.toBeNull();
  });

  test('without any adapter: --backend webgpu exits 2 in one line; auto says why in one line and trains on ort-cpu', () => {
    const named = ctl(['train', '--config', config, '--run', 'none', '--backend', 'webgpu'], NO_VULKAN);
    expect(named.status).toBe(2);
    expect(named.stderr.trim().split('\n')).toHaveLength(1);
    expect(named.stderr).toMatch(/--backend webgpu: no adapter .*Vulkan driver.*or use --backend ort-cpu/);

    const auto = ctl(['train', '--config', config, '--run', 'auto', '--json'], NO_VULKAN);
    expect(auto.status, auto.stderr).toBe(0);
    const lines = auto.stderr.split('\n').filter((l) => /^engine:/.test(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^engine: ort-cpu .*chosen by --backend auto: .*; WebGPU: no adapter/);
  });

  test.skipIf(!probe.adapter)(
    'a short run ends within 1 point of R@10 of ort-cpu, records webgpu, and its checkpoint loads for ctl eval',
    { timeout: 180_000 },
    async () => {
      const cpu = ctl(['train', '--config', config, '--run', 'cpu', '--backend', 'ort-cpu']);
      expect(cpu.status, cpu.stderr).toBe(0);
      const gpu = ctl(['train', '--config', config, '--run', 'gpu', '--backend', 'webgpu']);
      expect(gpu.status, gpu.stderr).toBe(0);
      expect(gpu.stderr).toMatch(/^engine: webgpu \(onnxruntime-node's WebGPU provider on /m);
      if (probe.adapter?.software) expect(gpu.stderr).toMatch(/a software adapter, .*slower than --backend ort-cpu/);

      const [onCpu, onGpu] = [await lastEpoch('cpu'), await lastEpoch('gpu')];
      expect(onCpu.metric).toBeGreaterThan(0.1); // the run learned something (zero-shot: 0.03), so agreement means something
      expect(Math.abs(onGpu.metric - onCpu.metric)).toBeLessThanOrEqual(0.01);
      expect(Math.abs(onGpu.loss - onCpu.loss) / onCpu.loss).toBeLessThan(1e-3);

      const state = JSON.parse(
        await readFile(join(workdir, 'runs', 'gpu', 'checkpoints', 'last', 'state.json'), 'utf8'),
      );
      expect(state.backend).toBe('webgpu');
      const evaluated = ctl(['eval', '--run', 'gpu', '--protocol', 'catalog', '--split', 'val', '--json']);
      expect(evaluated.status, evaluated.stderr).toBe(0);
      expect(JSON.parse(evaluated.stdout)[0].metrics.recall['10']).toBeGreaterThan(0.1);
    },
  );

  test.skipIf(!probe.adapter)(
    'killed after an epoch and resumed, a run reaches the same epochs as the uninterrupted one',
    { timeout: 180_000 },
    async () => {
      const full = ctl(['train', '--config', config, '--run', 'whole', '--backend', 'webgpu']);
      expect(full.status, full.stderr).toBe(0);
      const args = ['train', '--config', config, '--run', 'killed', '--backend', 'webgpu'];
      const child = spawn(process.execPath, [CLI, ...args, '--workdir', workdir], { stdio: 'ignore' });
      const exited = new Promise((resolve) => child.on('exit', resolve));
      const savedEpoch = () => checkpointEpoch(workdir, 'killed');
      while ((await savedEpoch()) < 1) await new Promise((r) => setTimeout(r, 20));
      child.kill('SIGKILL');
      await exited;
      expect(await savedEpoch()).toBeLessThan(6);

      const resumed = ctl([...args, '--resume']);
      expect(resumed.status, resumed.stderr).toBe(0);
      const [a, b] = [await epochRecords(workdir, 'whole'), await epochRecords(workdir, 'killed')];
      expect(b.map((r) => [r.epoch, r.step, r.loss, r.metric])).toEqual(
        a.map((r) => [r.epoch, r.step, r.loss, r.metric]),
      );
    },
  );

  test.runIf(probe.adapter?.software)('auto never takes a software adapter: it says so and trains on ort-cpu', () => {
    const auto = ctl(['train', '--config', config, '--run', 'auto-software', '--json']);
    expect(auto.status, auto.stderr).toBe(0);
    expect(auto.stderr).toMatch(/^engine: ort-cpu .*WebGPU has only .*a software adapter, which auto never takes/m);
  });
});
