// The weight formats a model repo ships for transformers.js (`--dtype`), and the file that holds each.
export const DTYPES = ['fp32', 'fp16', 'q8'] as const;
export type Dtype = (typeof DTYPES)[number];

const SUFFIX: Record<Dtype, string> = { fp32: '', fp16: '_fp16', q8: '_quantized' };

/** The vision tower's file for `dtype`, relative to the model's root, as transformers.js looks it up. */
export function visionModelFile(dtype: Dtype): string {
  return `onnx/vision_model${SUFFIX[dtype]}.onnx`;
}
