// How `--device` is decided for a described adapter: the cases this machine's adapter (lavapipe, which has
// shader-f16) cannot show. The real probe and provider are exercised in embed-webgpu.test.ts.
import { describe, expect, test } from 'vitest';
import { chooseDevice } from '../src/embed/device.js';
import type { AdapterProbe, WebGpuAdapter } from '../src/util/webgpu-adapter.js';

const GPU: WebGpuAdapter = {
  vendor: 'nvidia',
  architecture: 'hopper',
  description: 'NVIDIA H100 80GB HBM3',
  software: false,
  shaderF16: true,
};

const noCuda = () => Promise.reject(new Error('libcudnn.so.9: cannot open shared object file'));
const probing = (adapter: WebGpuAdapter) => async (): Promise<AdapterProbe> => ({ adapter });

describe('chooseDevice', () => {
  test('auto takes a hardware adapter for fp32 and for fp16 where it has half-precision shaders', async () => {
    for (const dtype of ['fp32', 'fp16'] as const) {
      const choice = await chooseDevice('auto', noCuda, { dtype, probe: probing(GPU) });
      expect(choice).toMatchObject({ device: 'webgpu', adapter: GPU });
      expect(choice.why).toMatch(/CUDA unavailable \(libcudnn.*; running on WebGPU \(NVIDIA H100/);
    }
  });

  test('fp16 on an adapter without shader-f16: auto runs on the CPU and says why; --device webgpu refuses', async () => {
    const noF16 = probing({ ...GPU, shaderF16: false });
    const fp32 = await chooseDevice('auto', noCuda, { dtype: 'fp32', probe: noF16 });
    expect(fp32.device).toBe('webgpu');

    const auto = await chooseDevice('auto', noCuda, { dtype: 'fp16', probe: noF16 });
    expect(auto.device).toBe('cpu');
    expect(auto.why).toMatch(
      /WebGPU: NVIDIA H100 80GB HBM3 has no half-precision shaders \(shader-f16\) for --dtype fp16; running on CPU\..*--dtype fp32 runs on it\.$/,
    );
    await expect(chooseDevice('webgpu', noCuda, { dtype: 'fp16', probe: noF16 })).rejects.toThrow(
      /^--device webgpu: NVIDIA H100 80GB HBM3 has no half-precision shaders \(shader-f16\) for --dtype fp16; use --dtype fp32, or --device cpu$/,
    );
  });

  test('a problem that is not about CUDA is not hidden by the fallback', async () => {
    const broken = () => Promise.reject(new Error('onnx/vision_model.onnx: protobuf parsing failed'));
    await expect(chooseDevice('auto', broken, { dtype: 'fp32', probe: probing(GPU) })).rejects.toThrow(/protobuf/);
  });
});
