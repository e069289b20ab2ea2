// The local provider: a vision tower and its image processor loaded by transformers.js (onnxruntime-node), on CPU,
// CUDA or WebGPU (onnxruntime's WebGPU provider: Dawn over Vulkan, Metal or D3D12; no CUDA library needed).
// SigLIP-family models return `pooler_output`, CLIP-family ones `image_embeds`; both are L2-normalised here.
import { Float16Array } from '@petamoriken/float16';
import { firstLineOf, InputError, RunError } from '../util/errors.js';
import { log } from '../util/log.js';
import { l2NormalizeRows } from '../util/matrix.js';
import type { Encoder, PreparedBase } from './encoder.js';
import type { ImageJob } from './images.js';
import { pixelRecipe } from './pixels.js';
import { ImagePreparer } from './prepare-workers.js';
import type { Dtype } from './dtype.js';
import type { ModelSource } from './model-source.js';
import { chooseDevice, type Device, type RunDevice } from './device.js';
import { describeAdapter } from '../util/webgpu-adapter.js';

export interface LocalEncoderOptions {
  device: Device;
  dtype: Dtype;
  /** onnxruntime intra-op threads; undefined = one per core. */
  threads?: number;
  /**
   * Images per model call: a shorter call (the last of a run or shard) is padded to it, because onnxruntime's
   * kernels give a row other bits in a call of another size, and a sharded run must equal an unsharded one.
   */
  batch?: number;
  offline: boolean;
  modelsDir: string;
}

type Transformers = typeof import('@huggingface/transformers');
/** What is read from the model's onnxruntime session. */
interface OrtSessionInfo {
  outputNames: string[];
  inputMetadata?: readonly { name: string; type?: string }[];
}
type VisionModel = Awaited<ReturnType<Transformers['SiglipVisionModel']['from_pretrained']>>;

/** Pixel values of one image, as the model's processor made them: [3, H, W]. */
interface PreparedPixels extends PreparedBase {
  data: Float32Array;
  dims: number[];
}

export async function loadLocalEncoder(
  source: ModelSource,
  opts: LocalEncoderOptions,
): Promise<Encoder<PreparedPixels>> {
  const hf: Transformers = await import('@huggingface/transformers');
  hf.env.allowRemoteModels = source.kind === 'hub' && !opts.offline;
  hf.env.localModelPath = opts.modelsDir;
  // onnxruntime prints native errors itself (e.g. a failed CUDA provider load); they reach us as exceptions anyway.
  hf.env.backends.onnx.setLogLevel?.(hf.LogLevel.NONE);
  const { processor, model, device, adapter } = await loadVisionModel(hf, source, opts);
  const { halfPixels, outputName } = sessionIo(model, source);

  const p = processor as unknown as Record<string, unknown>;
  // Decode and preprocess on worker threads; a processor config pixels.ts does not reproduce keeps transformers.js's
  // processor, on this thread, after the workers decode.
  const recipe = pixelRecipe(processor.constructor.name, p.config as Record<string, unknown>);
  const preparer = ImagePreparer.start(recipe);
  return {
    model: source.id,
    revision: source.revision,
    location: source.kind === 'local' ? source.location : undefined,
    device: adapter && device === 'webgpu' ? `webgpu (${describeAdapter(adapter)})` : device,
    preprocessing: {
      processor: processor.constructor.name,
      size: p.size,
      resample: p.resample,
      do_center_crop: p.do_center_crop ?? false,
      crop_size: p.crop_size,
      image_mean: p.image_mean,
      image_std: p.image_std,
      dtype: opts.dtype,
      output: outputName,
    },

    async prepare(job: ImageJob): Promise<PreparedPixels> {
      const prepared = await preparer.prepare(job);
      if ('pixels' in prepared)
        return { data: prepared.pixels, dims: [3, recipe!.height, recipe!.width], fellBack: prepared.fellBack };
      const { image, fellBack } = prepared;
      const raw = new hf.RawImage(image.data, image.width, image.height, image.channels as 3);
      const { pixel_values } = await processor(raw);
      return { data: pixel_values.data as Float32Array, dims: pixel_values.dims.slice(1), fellBack };
    },

    async embed(batch: PreparedPixels[]): Promise<Float32Array[]> {
      const [c, h, w] = batch[0].dims;
      const other = batch.find((item) => item.dims.join() !== batch[0].dims.join());
      if (other)
        throw new RunError(
          `${source.location}: its processor made images of [${other.dims}] and [${batch[0].dims}] pixels; ` +
            'ctl embeds images of one size a batch (use --batch 1 with a processor that keeps aspect ratios)',
        );
      const size = c * h * w;
      const rows = Math.max(batch.length, opts.batch ?? 0); // padded with blank images
      const pixels = new Float32Array(rows * size);
      batch.forEach((item, i) => pixels.set(item.data, i * size));
      const dims = [rows, c, h, w];
      const pixelValues = halfPixels
        ? new hf.Tensor('float16', new Uint16Array(new Float16Array(pixels).buffer), dims)
        : new hf.Tensor('float32', pixels, dims);
      const outputs = await model({ pixel_values: pixelValues });
      let out = outputs[outputName];
      if (out.type !== 'float32') out = out.to('float32');
      const dim = out.dims[out.dims.length - 1];
      const vectors = l2NormalizeRows(Float32Array.from(out.data as ArrayLike<number>), dim);
      return batch.map((_, i) => vectors.subarray(i * dim, (i + 1) * dim));
    },

    async dispose() {
      await preparer.close();
      await model.dispose();
    },
  };
}

/** The model's processor and vision tower, on the device `opts.device` comes to (one log line says why). */
async function loadVisionModel(hf: Transformers, source: ModelSource, opts: LocalEncoderOptions) {
  const loadOptions = {
    revision: source.revision,
    cache_dir: source.cacheDir,
    local_files_only: !hf.env.allowRemoteModels,
  };
  const failLoad = (err: unknown): never => {
    if (err instanceof InputError) throw err;
    const message = String((err as Error)?.message ?? err);
    if (source.kind === 'hub' && !opts.offline)
      throw new RunError(
        `loading ${source.id}@${source.revision}: ${message} (no network here? download once elsewhere, copy ${source.cacheDir}, and use --offline)`,
      );
    throw new RunError(`loading ${source.location}: ${message}`);
  };

  const config = await hf.AutoConfig.from_pretrained(source.location, loadOptions).catch(failLoad);
  const processor = await hf.AutoImageProcessor.from_pretrained(source.location, loadOptions).catch(failLoad);
  // Both classes load onnx/vision_model*.onnx; CLIP's exports the projected `image_embeds` beside `pooler_output`.
  const ModelClass =
    (config as { model_type?: string }).model_type === 'clip' ? hf.CLIPVisionModelWithProjection : hf.SiglipVisionModel;

  const session_options = {
    graphOptimizationLevel: 'all' as const,
    executionMode: 'sequential' as const,
    interOpNumThreads: 1,
    ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
    // Idle onnxruntime threads would spin between batches, taking the cores sharp needs to decode the next one
    // (bench/embed/README.md).
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
  const load = (device: RunDevice) =>
    ModelClass.from_pretrained(source.location, {
      ...loadOptions,
      device,
      dtype: opts.dtype,
      session_options,
    }) as Promise<VisionModel>;

  const choice = await chooseDevice(opts.device, () => load('cuda'), { dtype: opts.dtype }).catch(failLoad);
  if (choice.why) log(`embed: ${choice.why}`);
  let { device, adapter, model } = choice;
  if (!model && device === 'webgpu' && opts.device === 'auto') {
    // auto found a hardware adapter, but onnxruntime's provider may still refuse it: the CPU is the fallback.
    try {
      model = await load('webgpu');
    } catch (err) {
      log(`embed: the WebGPU provider failed (${firstLineOf(err)}); running on CPU`);
      [device, adapter] = ['cpu', undefined];
    }
  }
  model ??= await load(device).catch(failLoad);

  return { processor, model, device, adapter };
}

/** Whether the model takes float16 pixels, and the output that holds the image embedding. */
function sessionIo(model: VisionModel, source: ModelSource) {
  const session = (model as unknown as { sessions: Record<string, OrtSessionInfo> }).sessions.model;
  // An fp16 file takes float32 pixels (converted with keep_io_types, as most on the hub) or float16 ones (optimum's
  // `--dtype fp16` export); its outputs are read back as float32 either way.
  const halfPixels = session.inputMetadata?.find((m) => m.name === 'pixel_values')?.type === 'float16';
  const outputName = ['image_embeds', 'pooler_output'].find((n) => session.outputNames.includes(n));
  if (!outputName)
    throw new InputError(
      `${source.location}: the vision model has outputs ${session.outputNames.join(', ')}; expected image_embeds or pooler_output`,
    );
  return { halfPixels, outputName };
}
