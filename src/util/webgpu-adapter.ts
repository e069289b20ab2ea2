// Which WebGPU adapter this machine offers, asked through Dawn for Node (the `webgpu` package), before onnxruntime's
// WebGPU provider is loaded (`ctl embed --device`, `ctl train --backend`): `auto` takes a hardware adapter only,
// never a software rasteriser.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { firstLineOf } from './errors.js';

export interface WebGpuAdapter {
  vendor: string;
  architecture: string;
  description: string;
  /** A CPU implementation of Vulkan (lavapipe/llvmpipe, SwiftShader): right for tests, slower than the CPU provider. */
  software: boolean;
  /** Half-precision shaders (the `shader-f16` feature), which a float16 model's kernels need. */
  shaderF16: boolean;
}

/** What to do when there is no WebGPU adapter. */
export const WEBGPU_SETUP =
  "WebGPU needs a Vulkan driver that Dawn accepts (the GPU vendor's driver and libvulkan1; for tests, Mesa 25 lavapipe)";

export type AdapterProbe = { adapter: WebGpuAdapter } | { adapter: null; reason: string };

const SOFTWARE = /llvmpipe|lavapipe|swiftshader/i;

function isSoftwareAdapter(info: { architecture: string; description: string; device?: string }): boolean {
  return info.architecture === 'software' || SOFTWARE.test(`${info.description} ${info.device ?? ''}`);
}

/** One line describing an adapter, for logs and the run summary. */
export function describeAdapter(a: WebGpuAdapter): string {
  const name = a.description || `${a.vendor} ${a.architecture}`.trim() || 'unnamed adapter';
  return a.software ? `${name}, a software adapter` : name;
}

/** In a child process: Dawn writes its warnings straight to stderr, and its instance stays apart from onnxruntime's. */
const PROBE_SCRIPT = `
const { create } = await import(process.argv[1]);
const adapter = await create([]).requestAdapter({ powerPreference: 'high-performance' });
const info = adapter && adapter.info;
console.log(JSON.stringify(info && { vendor: info.vendor, architecture: info.architecture, description: info.description, device: info.device, shaderF16: adapter.features.has('shader-f16') }));
process.exit(0);
`;

const PROBE_TIMEOUT_MS = 60_000;

export async function probeWebGpuAdapter(): Promise<AdapterProbe> {
  let dawn: string;
  try {
    dawn = pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href;
  } catch (err) {
    return { adapter: null, reason: `the webgpu package is not installed (${firstLineOf(err)})` };
  }
  const { stdout, stderr, error } = await new Promise<{ stdout: string; stderr: string; error: Error | null }>((done) =>
    execFile(
      process.execPath,
      ['--input-type=module', '-e', PROBE_SCRIPT, dawn],
      { timeout: PROBE_TIMEOUT_MS, encoding: 'utf8' },
      (error, stdout, stderr) => done({ error, stdout, stderr }),
    ),
  );
  // Dawn's own explanation, e.g. "Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file".
  const dawnSays = /^Warning: (.*)$/m.exec(stderr)?.[1];
  if (error) return { adapter: null, reason: `Dawn failed to start (${dawnSays ?? firstLineOf(stderr || error)})` };
  const info = JSON.parse(stdout.trim().split('\n').pop() || 'null') as {
    vendor: string;
    architecture: string;
    description: string;
    device: string;
    shaderF16: boolean;
  } | null;
  if (!info)
    return {
      adapter: null,
      reason: `no adapter (${dawnSays ?? 'no Vulkan driver found, or the driver is too old for Dawn'})`,
    };
  return {
    adapter: {
      vendor: info.vendor,
      architecture: info.architecture,
      description: info.description || info.device,
      software: isSoftwareAdapter(info),
      shaderF16: info.shaderF16,
    },
  };
}
