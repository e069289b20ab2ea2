// What the reference's classes need to load a ctl model: the constructor arguments of CTLModel (v1) or CTLModelV2
// (v2), and the state_dict with every key they declare. A run trained with a fixed temperature has no temperature
// parameter; the reference always declares one, so it is written with the fixed value (exp/clamp for v2 keep it).
import type { SafeTensor } from '../model/safetensors.js';
import { toStateDict } from '../model/state-dict.js';
import type { TwoTower } from '../model/two-tower.js';

export interface ReferenceClass {
  /** `CTLModel` (v1) or `CTLModelV2` (v2), as bench/train/torch_two_tower.py declares them. */
  name: 'CTLModel' | 'CTLModelV2';
  /** Keyword arguments of its constructor. */
  kwargs: Record<string, number>;
}

/** The reference class of a model, or null for a shape the reference never built (v1 with a category
 * embedding, v2 without one). */
export function referenceClass(model: TwoTower): ReferenceClass | null {
  const s = model.spec;
  if ((s.arch === 'v1') !== (s.categoryDim === 0)) return null;
  const common = { input_dim: s.inputDim, hidden_dim: s.hidden, output_dim: s.out };
  if (s.arch === 'v1')
    return { name: 'CTLModel', kwargs: { ...common, dropout: s.dropout, temperature: s.temperature.init } };
  return {
    name: 'CTLModelV2',
    kwargs: {
      ...common,
      num_categories: s.numCategories,
      category_dim: s.categoryDim,
      num_blocks: s.blocks,
      dropout: s.dropout,
      temperature: s.temperature.init,
    },
  };
}

/** The model's state_dict as the reference class declares it (PyTorch's key order: the temperature first). */
export function referenceStateDict(model: TwoTower, params: Float32Array): Record<string, SafeTensor> {
  const tensors = toStateDict(model.layout, params);
  if (model.temperatureParam) return tensors;
  const { arch, temperature } = model.spec;
  const name = arch === 'v1' ? 'temperature' : 'log_temperature';
  const value = arch === 'v1' ? temperature.init : Math.log(temperature.init);
  return { [name]: { dtype: 'F32', shape: [], data: Float32Array.of(value) }, ...tensors };
}
