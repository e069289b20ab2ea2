// `ctl embed --device webgpu|auto` through the built binary (run `npm run build` first). On a machine with a WebGPU
// adapter (CI: Mesa's lavapipe, a software Vulkan driver, installed by .ci/run) the WebGPU provider must give the CPU
// provider's vectors; without one, the device choice must say so in one line. Under CI=true a missing adapter fails.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { probeWebGpuAdapter } from '../src/util/webgpu-adapter.js';
import { compareVectors, FP16_TOLERANCE, makeFixture, removeFixtures, storeRows } from './embed-fixtures.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');

function ctl(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The Vulkan loader finds no driver at all: what a machine without a GPU looks like to Dawn. */
const NO_VULKAN = { VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' };

const probe = await probeWebGpuAdapter();

describe('ctl embed on WebGPU', () => {
  afterAll(removeFixtures);

  test.runIf(process.env.CI === 'true')('CI has a WebGPU adapter (lavapipe): the tests below cannot skip there', () => {
    expect(probe.adapter, 'reason' in probe ? probe.reason : '').not.toBeNull();
  });

  test('without any adapter: --device webgpu exits 2 in one line; auto says so in one line and runs on CPU', async () => {
    const { workdir } = await makeFixture(1);
    const named = ctl(['embed', '--workdir', workdir, '--model', 'tiny', '--device', 'webgpu'], NO_VULKAN);
    expect(named.code).toBe(2);
    expect(named.stderr.trim().split('\n')).toHaveLength(1);
    expect(named.stderr).toMatch(/--device webgpu: no adapter .*Vulkan driver.*or use --device cpu/);

    const auto = ctl(['embed', '--workdir', workdir, '--model', 'tiny', '--json'], NO_VULKAN);
    expect(auto.code).toBe(0);
    const lines = auto.stderr.split('\n').filter((l) => /WebGPU/.test(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/CUDA unavailable .*; WebGPU: no adapter .*; running on CPU/);
    expect(JSON.parse(auto.stdout)).toMatchObject({ device: 'cpu', embedded: 3, failed: 0 });
  });

  test.skipIf(!probe.adapter)(
    'the WebGPU provider gives the CPU provider vectors (max abs diff < 1e-4, fp32, tiny model)',
    { timeout: 180_000 },
    async () => {
      const cpu = await makeFixture(2);
      const gpu = await makeFixture(2);
      // Batches of one size: the provider compiles its shaders once per input shape (slow on a software adapter).
      const args = ['embed', '--model', 'tiny', '--batch', '2', '--json'];
      expect(ctl([...args, '--workdir', cpu.workdir, '--device', 'cpu']).code).toBe(0);
      const run = ctl([...args, '--workdir', gpu.workdir, '--device', 'webgpu']);
      expect(run.code, run.stderr).toBe(0);
      const summary = JSON.parse(run.stdout);
      expect(summary.device).toMatch(/^webgpu \(/);
      expect(summary.embedded).toBe(6); // 4 products, 2 scenes
      if (probe.adapter?.software) expect(run.stderr).toMatch(/running on WebGPU with .*a software adapter/);

      for (const view of ['products', 'scenes-full'] as const) {
        const cpuRows = await storeRows(cpu.workdir, view);
        expect(compareVectors(cpuRows, await storeRows(gpu.workdir, view)).maxAbs).toBeLessThan(1e-4);
        expect([...cpuRows.values()].some((row) => row.some((v) => v !== 0))).toBe(true);
      }
    },
  );

  test.skipIf(!probe.adapter)(
    '--dtype fp16: within the documented tolerance of fp32 on the CPU where the adapter has shader-f16, else exit 2',
    { timeout: 180_000 },
    async () => {
      const cpu = await makeFixture(1);
      const gpu = await makeFixture(1);
      const args = ['embed', '--model', 'tiny', '--kind', 'products', '--batch', '2', '--json'];
      expect(ctl([...args, '--workdir', cpu.workdir, '--device', 'cpu']).code).toBe(0);
      const run = ctl([...args, '--workdir', gpu.workdir, '--device', 'webgpu', '--dtype', 'fp16']);
      if (!probe.adapter!.shaderF16) {
        expect(run.code).toBe(2);
        expect(run.stderr).toMatch(/has no half-precision shaders \(shader-f16\) for --dtype fp16; use --dtype fp32/);
        return;
      }
      expect(run.code, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ device: expect.stringMatching(/^webgpu/), embedded: 2 });
      const { maxAbs, minCosine } = compareVectors(
        await storeRows(cpu.workdir, 'products'),
        await storeRows(gpu.workdir, 'products'),
      );
      expect(maxAbs).toBeGreaterThan(0);
      expect(maxAbs).toBeLessThan(FP16_TOLERANCE.maxAbs);
      expect(minCosine).toBeGreaterThan(FP16_TOLERANCE.minCosine);
    },
  );

  test.skipIf(!probe.adapter?.software)('auto never takes a software adapter: one line says so, CPU runs', async () => {
    const { workdir } = await makeFixture(1);
    const auto = ctl(['embed', '--workdir', workdir, '--model', 'tiny', '--json']);
    expect(auto.code).toBe(0);
    const lines = auto.stderr.split('\n').filter((l) => /WebGPU/.test(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/a software adapter, which auto never takes \(--device webgpu does\); running on CPU/);
    expect(JSON.parse(auto.stdout).device).toBe('cpu');
  });
});
