// Adam's moments from a reference checkpoint's `optimizer_state_dict` (torch.optim.Adam or AdamW), the inverse of
// export's torchOptimizerState: state entry i belongs to the i-th parameter of `model.parameters()`, which is the
// i-th key of the reference's state_dict (it has no buffers). A parameter without an entry (not trained) keeps
// zero moments, as PyTorch's lazily made state would start.
import type { OptimizerMoments } from '../model/checkpoint.js';
import type { ParamLayout } from '../model/params.js';
import { fromStateDict, torchShape } from '../model/state-dict.js';
import { pythonTypeOf } from '../model/torch/pickle.js';
import { isTorchTensor, type TorchTensor } from '../model/torch/tensor.js';
import { InputError } from '../util/errors.js';

/** The file's Adam hyper-parameters (its first param group), to compare with the config the run trains with. */
export interface TorchAdamGroup {
  lr: number;
  betas: [number, number];
  eps: number;
  weight_decay: number;
}

/**
 * The moments and step count of `value` (the unpickled optimizer_state_dict), on `layout`; null when the optimizer
 * never stepped (no state: a run then starts its optimizer afresh). `keys`: the file's state_dict keys, in order.
 */
export function readOptimizerState(
  value: unknown,
  keys: string[],
  layout: ParamLayout,
  file: string,
): { moments: OptimizerMoments; group: TorchAdamGroup } | null {
  const where = `${file}: optimizer_state_dict`;
  const fail = (what: string, expected: string, found: unknown): never => {
    throw new InputError(`${where}${what}: expected ${expected}, found ${describe(found)}`);
  };
  if (!(value instanceof Map)) return fail('', 'a dict', value);
  const state = value.get('state');
  const groups = value.get('param_groups');
  if (!(state instanceof Map)) return fail("['state']", 'a dict', state);
  if (!Array.isArray(groups) || !(groups[0] instanceof Map)) return fail("['param_groups']", 'a list of dicts', groups);
  if (state.size === 0) return null;

  const m: Record<string, TorchTensor> = {};
  const v: Record<string, TorchTensor> = {};
  let t: number | undefined;
  for (const [index, entry] of state) {
    const at = `['state'][${String(index)}]`;
    const key = typeof index === 'number' ? keys[index] : undefined;
    if (key === undefined) fail(at, `a parameter index below ${keys.length}`, index);
    if (!(entry instanceof Map)) return fail(at, 'a dict', entry);
    const step = stepOf(entry.get('step'));
    if (step === undefined) fail(`${at}['step']`, 'a step count', entry.get('step'));
    if (t !== undefined && step !== t) fail(`${at}['step']`, `${t}, the other parameters' step`, step);
    t = step;
    for (const [name, into] of [
      ['exp_avg', m],
      ['exp_avg_sq', v],
    ] as const) {
      const tensor = entry.get(name);
      if (!isTorchTensor(tensor)) fail(`${at}['${name}']`, 'a float32 tensor', tensor);
      into[key!] = tensor as TorchTensor;
    }
  }
  // Parameters without state (never trained) start from zero moments.
  for (const e of layout.entries)
    if (!m[e.name]) {
      m[e.name] = v[e.name] = { dtype: 'F32', shape: torchShape(e), data: new Float32Array(e.size) };
    }
  const moments = { t: t!, m: fromStateDict(layout, m, where), v: fromStateDict(layout, v, where) };
  const group = groups[0] as Map<string, unknown>;
  const betas = group.get('betas'); // a tuple, unpickled as an array
  const pair = Array.isArray(betas) ? betas : [];
  return {
    moments,
    group: {
      lr: Number(group.get('lr')),
      betas: [Number(pair[0]), Number(pair[1])],
      eps: Number(group.get('eps')),
      weight_decay: Number(group.get('weight_decay')),
    },
  };
}

/** PyTorch >= 1.12 keeps the step as a float tensor; earlier versions as an int. */
function stepOf(value: unknown): number | undefined {
  const step = isTorchTensor(value) && value.data.length === 1 ? value.data[0] : value;
  return typeof step === 'number' && Number.isInteger(step) && step >= 1 ? step : undefined;
}

function describe(value: unknown): string {
  return typeof value === 'number' ? String(value) : pythonTypeOf(value);
}
