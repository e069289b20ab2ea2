// Models the project writes itself, as a folder laid out like a Hugging Face repo (config.json,
// preprocessor_config.json, onnx/vision_model.onnx, _fp16.onnx and _quantized.onnx), so they load through
// exactly the same transformers.js path as the real model:
//   tiny      a 32 px, 2-block, 32-wide tower: tests (a few hundred KB, generated in milliseconds)
//   small     a 64 px, 2-block, 64-wide tower: `ctl demo`, whose scenes' style must survive the downscale
//   vit-b16   ViT-B/16 sizes (12 blocks, 768 wide, 224 px), random weights: the real model's compute, for benchmarks
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { restoreAside, writeDirAtomic, writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { DTYPES, visionModelFile } from './dtype.js';
import { buildVisionTower, type VisionSpec } from './vision-transformer.js';

export const GENERATED_PRESETS: Record<string, VisionSpec> = {
  tiny: {
    imageSize: 32,
    patchSize: 8,
    hiddenSize: 32,
    layers: 2,
    heads: 2,
    mlpSize: 64,
    projectionSize: 32,
    layerNormEps: 1e-6,
    seed: 42,
  },
  small: {
    imageSize: 64,
    patchSize: 8,
    hiddenSize: 64,
    layers: 2,
    heads: 2,
    mlpSize: 128,
    projectionSize: 64,
    layerNormEps: 1e-6,
    seed: 42,
  },
  'vit-b16': {
    imageSize: 224,
    patchSize: 16,
    hiddenSize: 768,
    layers: 12,
    heads: 12,
    mlpSize: 3072,
    projectionSize: 768,
    layerNormEps: 1e-6,
    seed: 42,
  },
};

/** Bumped when the generated graph changes, so stale folders are rewritten. */
const GENERATOR_VERSION = 2;

export function isGeneratedPreset(name: string): boolean {
  return Object.hasOwn(GENERATED_PRESETS, name);
}

/** The revision recorded in the embedding store for a generated model. */
export function generatedRevision(): string {
  return `generated-v${GENERATOR_VERSION}`;
}

function siglipConfig(preset: string, spec: VisionSpec) {
  return {
    model_type: 'siglip',
    architectures: ['SiglipModel'],
    vision_config: {
      model_type: 'siglip_vision_model',
      hidden_size: spec.hiddenSize,
      image_size: spec.imageSize,
      patch_size: spec.patchSize,
      num_hidden_layers: spec.layers,
      num_attention_heads: spec.heads,
      intermediate_size: spec.mlpSize,
      num_channels: 3,
      layer_norm_eps: spec.layerNormEps,
      hidden_act: 'gelu',
    },
    projection_dim: spec.projectionSize,
    ctl_generated: { preset, version: GENERATOR_VERSION, spec },
  };
}

/** SigLIP's preprocessing: squash-resize to the model's size, bicubic, scale to [-1, 1]. */
function siglipPreprocessor(spec: VisionSpec) {
  return {
    image_processor_type: 'SiglipImageProcessor',
    processor_class: 'SiglipProcessor',
    do_convert_rgb: true,
    do_resize: true,
    size: { height: spec.imageSize, width: spec.imageSize },
    resample: 3,
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_std: [0.5, 0.5, 0.5],
  };
}

async function isCurrent(dir: string, preset: string): Promise<boolean> {
  try {
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    const marker = config.ctl_generated;
    return (
      marker?.preset === preset &&
      marker?.version === GENERATOR_VERSION &&
      JSON.stringify(marker.spec) === JSON.stringify(GENERATED_PRESETS[preset])
    );
  } catch {
    return false;
  }
}

/**
 * The folder of a generated model under `modelsDir`, written on first use. The folder is built beside its final
 * place and renamed into it, so a killed run never leaves half a model behind; when several processes generate it at
 * once, the first folder in place stays (the others' are identical) and none is swapped under a reader.
 */
export async function ensureGeneratedModel(modelsDir: string, preset: string): Promise<string> {
  const spec = GENERATED_PRESETS[preset];
  if (!spec) throw new Error(`unknown generated model ${preset}`);
  const dir = join(modelsDir, preset);
  await restoreAside(dir);
  if (await isCurrent(dir, preset)) return dir;

  await writeDirAtomic(
    dir,
    async (staging) => {
      for (const dtype of DTYPES)
        await writeFileAtomic(join(staging, visionModelFile(dtype)), buildVisionTower(spec, { format: dtype }));
      await writeJsonAtomic(join(staging, 'preprocessor_config.json'), siglipPreprocessor(spec));
      await writeJsonAtomic(join(staging, 'config.json'), siglipConfig(preset, spec));
    },
    (existing) => isCurrent(existing, preset),
  );
  return dir;
}
