// `--device`: which onnxruntime execution provider runs the vision tower. `auto` takes CUDA when its provider
// loads, else a hardware WebGPU adapter, else the CPU, and says in one line which and why. A software WebGPU adapter
// (lavapipe, SwiftShader) is slower than the CPU provider: `auto` never takes it, `--device webgpu` does (tests).
// A float16 model needs half-precision shaders: onnxruntime would fail mid-run on an adapter without them.
import { firstLineOf, InputError } from '../util/errors.js';
import type { Dtype } from './dtype.js';
import {
  describeAdapter,
  probeWebGpuAdapter,
  WEBGPU_SETUP,
  type AdapterProbe,
  type WebGpuAdapter,
} from '../util/webgpu-adapter.js';

export const DEVICES = ['auto', 'cpu', 'cuda', 'webgpu'] as const;
export type Device = (typeof DEVICES)[number];
export type RunDevice = Exclude<Device, 'auto'>;

/** A device asked for by name that cannot run here; the message says why and how to set it up. */
export class DeviceUnavailable extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'DeviceUnavailable';
  }
}

/** What to do when the CUDA provider cannot load: the exact set-up, once, in one place. */
const CUDA_SETUP =
  "CUDA needs an NVIDIA driver, CUDA 12 and cuDNN 9 libraries on the library path, and onnxruntime-node's CUDA " +
  'provider files: `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node --allow-scripts=onnxruntime-node` ' +
  '(this package skips them by default)';

export interface DeviceChoice<M> {
  device: RunDevice;
  /** The model, when choosing meant loading it (CUDA). */
  model?: M;
  /** The WebGPU adapter, when the choice is webgpu. */
  adapter?: WebGpuAdapter;
  /** The one log line: which device and why (for auto, and for a software adapter). */
  why?: string;
}

function isCudaProblem(err: unknown): boolean {
  return /cuda|cudnn|shared librar|providers_shared/i.test(String((err as Error)?.message ?? err));
}

export interface ChoiceOptions {
  dtype: Dtype;
  /** How the WebGPU adapter is found (Dawn in a child process; a test may describe one). */
  probe?: () => Promise<AdapterProbe>;
}

/** Decide the device; `loadCuda` is the only way to know whether CUDA works, so a CUDA choice comes with its model. */
export async function chooseDevice<M>(
  asked: Device,
  loadCuda: () => Promise<M>,
  { dtype, probe: probeAdapter = probeWebGpuAdapter }: ChoiceOptions,
): Promise<DeviceChoice<M>> {
  if (asked === 'cpu') return { device: 'cpu' };

  let cudaProblem = '';
  if (asked === 'cuda' || asked === 'auto') {
    try {
      const model = await loadCuda();
      return { device: 'cuda', model, why: asked === 'auto' ? 'CUDA provider loaded: running on CUDA' : undefined };
    } catch (err) {
      if (!isCudaProblem(err)) throw err;
      cudaProblem = firstLineOf(err);
      if (asked === 'cuda')
        throw new DeviceUnavailable(
          `--device cuda: the CUDA provider could not load (${cudaProblem}). ${CUDA_SETUP}; or use --device cpu`,
        );
    }
  }

  const probe = await probeAdapter();
  const noF16 =
    dtype === 'fp16' && probe.adapter && !probe.adapter.shaderF16
      ? `${describeAdapter(probe.adapter)} has no half-precision shaders (shader-f16) for --dtype fp16`
      : null;
  if (asked === 'webgpu') {
    if (!probe.adapter)
      throw new DeviceUnavailable(`--device webgpu: ${probe.reason}. ${WEBGPU_SETUP}; or use --device cpu`);
    if (noF16) throw new DeviceUnavailable(`--device webgpu: ${noF16}; use --dtype fp32, or --device cpu`);
    const why = probe.adapter.software
      ? `running on WebGPU with ${describeAdapter(probe.adapter)} (right for tests; slower than --device cpu)`
      : undefined;
    return { device: 'webgpu', adapter: probe.adapter, why };
  }

  const cuda = `CUDA unavailable (${cudaProblem})`;
  if (probe.adapter && !probe.adapter.software && !noF16)
    return {
      device: 'webgpu',
      adapter: probe.adapter,
      why: `${cuda}; running on WebGPU (${describeAdapter(probe.adapter)})`,
    };
  const [webgpu, webgpuHint] = !probe.adapter
    ? [`WebGPU: ${probe.reason}`, WEBGPU_SETUP]
    : probe.adapter.software
      ? [
          `WebGPU has only ${describeAdapter(probe.adapter)}, which auto never takes (--device webgpu does)`,
          WEBGPU_SETUP,
        ]
      : [`WebGPU: ${noF16}`, '--dtype fp32 runs on it'];
  return { device: 'cpu', why: `${cuda}; ${webgpu}; running on CPU. ${CUDA_SETUP}; ${webgpuHint}.` };
}
