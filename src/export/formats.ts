// What `ctl export` writes into its folder, by format.
export type ExportFormat = 'safetensors' | 'onnx' | 'pt';
export const EXPORT_FORMATS: ExportFormat[] = ['safetensors', 'onnx', 'pt'];

export const FILES = {
  /** Architecture, dims, categories, embedding model and view, the reference class's arguments. */
  config: 'config.json',
  safetensors: 'model.safetensors',
  pt: 'model.pt',
  sceneOnnx: 'scene_tower.onnx',
  productOnnx: 'product_tower.onnx',
  indexVectors: 'product_index.npy',
  indexRows: 'product_index.jsonl',
  card: 'model-card.md',
};
