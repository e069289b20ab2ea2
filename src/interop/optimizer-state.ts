// Adam's moments from a reference checkpoint's `optimizer_state_dict` (torch.optim.Adam or AdamW), the inverse of
// export's torchOptimizerState: with one param group over `model.parameters()`, state entry i belongs to the i-th
// parameter, which is the i-th key of the reference's state_dict (it has no buffers). ctl's Adam keeps one step
// count for every parameter, so only a state it can hold exactly is taken: every parameter's moments, at one step
// count. Anything else (another optimizer, param groups of its own, a parameter that skipped steps or never had a
// gradient) is passed over with the reason: the weights import all the same, and training starts Adam afresh.
import type { OptimizerMoments } from '../model/checkpoint.js';
import type { ParamLayout } from '../model/params.js';
import { fromStateDict, torchShape } from '../model/state-dict.js';
import { isTorchTensor, type TorchTensor } from '../model/torch/tensor.js';

/** The file's Adam hyper-parameters (its one param group), to compare with the config the run trains with. */
export interface TorchAdamGroup {
  lr: number;
  betas: [number, number];
  eps: number;
  weight_decay: number;
}

/** The state PyTorch's Adam and AdamW keep per parameter. */
const ADAM_STATE = new Set(['step', 'exp_avg', 'exp_avg_sq']);

export type OptimizerImport = { moments: OptimizerMoments; group: TorchAdamGroup } | { passedOver: string };

/**
 * The moments and step count of `value` (the unpickled optimizer_state_dict) on `layout`, or why they are passed
 * over. `keys`: the file's state_dict keys, in order (the same names as `layout`'s, checked before).
 */
export function readOptimizerState(value: unknown, keys: string[], layout: ParamLayout, file: string): OptimizerImport {
  const state = value instanceof Map ? value.get('state') : undefined;
  const groups = value instanceof Map ? value.get('param_groups') : undefined;
  if (!(state instanceof Map) || !Array.isArray(groups) || !(groups[0] instanceof Map))
    return { passedOver: "not an optimizer's state_dict (no 'state' and 'param_groups')" };
  if (state.size === 0) return { passedOver: 'the optimizer never stepped' };
  // State entries are numbered through the param groups in order; only one group over every parameter, in
  // model.parameters() order (the usual `Adam(model.parameters())`), numbers them as the state_dict's keys.
  const unknowable = 'which parameter each state entry is, the file does not say';
  if (groups.length > 1) return { passedOver: `it has ${groups.length} param groups: ${unknowable}` };
  const params = (groups[0] as Map<string, unknown>).get('params');
  const numbered = Array.isArray(params) ? params.length : 0;
  if (!Array.isArray(params) || params.some((index, i) => index !== i) || numbered !== keys.length)
    return { passedOver: `its param group holds ${numbered} of the ${keys.length} parameters: ${unknowable}` };

  const m: Record<string, TorchTensor> = {};
  const v: Record<string, TorchTensor> = {};
  const steps = new Set<number>();
  // Adam's and AdamW's param groups say `amsgrad` (RAdam's and NAdam's, whose state looks alike, do not); AMSGrad
  // keeps a third moment ctl does not.
  const amsgrad = (groups[0] as Map<string, unknown>).get('amsgrad');
  if (amsgrad === undefined) return { passedOver: 'not Adam or AdamW (its param group has no amsgrad)' };
  if (amsgrad === true) return { passedOver: 'it is AMSGrad (a third moment ctl does not keep)' };
  for (const [index, entry] of state) {
    const key = typeof index === 'number' ? keys[index] : undefined;
    const extra = entry instanceof Map ? [...entry.keys()].filter((k) => !ADAM_STATE.has(k as string)) : [];
    if (extra.length > 0) return { passedOver: `its state holds ${extra.join(', ')}: not Adam's` };
    const [avg, avgSq] = entry instanceof Map ? [entry.get('exp_avg'), entry.get('exp_avg_sq')] : [];
    const step = entry instanceof Map ? stepOf(entry.get('step')) : undefined;
    if (key === undefined || !isTorchTensor(avg) || !isTorchTensor(avgSq) || step === undefined)
      return { passedOver: `state entry ${String(index)} is not Adam's (exp_avg, exp_avg_sq and step of a parameter)` };
    [m[key], v[key]] = [avg, avgSq];
    steps.add(step);
  }
  const without = layout.entries.filter((e) => !m[e.name]).map((e) => e.name);
  if (without.length > 0)
    return { passedOver: `no Adam state for ${without.length} parameter(s) (${without.slice(0, 3).join(', ')}, ...)` };
  // Parameters given to the optimizer in another order than the model's: the moments do not fit their names. (An
  // order that only swaps parameters of one shape cannot be told from the file.)
  const misfit = layout.entries.find(
    (e) => ![m[e.name], v[e.name]].every((t) => t.shape.join(',') === torchShape(e).join(',')),
  );
  if (misfit)
    return { passedOver: `the moments of state entry ${keys.indexOf(misfit.name)} are not ${misfit.name}'s shape` };
  // Moments that overflowed would make the weights NaN at the first step of training on.
  const nonFinite = layout.entries.find((e) => ![m[e.name], v[e.name]].every((t) => t.data.every(Number.isFinite)));
  if (nonFinite) return { passedOver: `the moments of ${nonFinite.name} hold values that are not finite` };
  if (steps.size > 1)
    return {
      passedOver: `the parameters stepped different numbers of times (${[...steps].sort((a, b) => a - b).join(', ')})`,
    };

  const where = `${file}: optimizer_state_dict`;
  const moments = { t: [...steps][0], m: fromStateDict(layout, m, where), v: fromStateDict(layout, v, where) };
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
