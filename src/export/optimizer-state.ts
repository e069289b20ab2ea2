// Adam's state as PyTorch's `optimizer.state_dict()` (torch.optim.Adam / AdamW, PyTorch >= 1.12):
//   {'state': {i: {'step': tensor(t), 'exp_avg': m_i, 'exp_avg_sq': v_i}},
//    'param_groups': [{'lr', 'betas', 'eps', 'weight_decay', 'amsgrad', 'maximize', 'foreach', 'capturable',
//                      'differentiable', 'fused', 'params': [0, 1, ...]}]}
// i numbers the reference model's parameters in `model.parameters()` order, which is its state_dict order (it has
// no buffers); a parameter ctl does not train (a fixed temperature) has no state entry, as in PyTorch.
import type { OptimizerMoments } from '../model/checkpoint.js';
import { toStateDict } from '../model/state-dict.js';
import { PyTuple } from '../model/torch/pickle-write.js';
import type { TorchTensor } from '../model/torch/tensor.js';
import type { TorchValue } from '../model/torch/write-checkpoint.js';
import type { TwoTower } from '../model/two-tower.js';
import type { TrainConfig } from '../train/config.js';

/** `referenceKeys`: the reference model's state_dict keys, in order. `lr` is the configured (peak) rate. */
export function torchOptimizerState(
  model: TwoTower,
  moments: OptimizerMoments,
  optimizer: TrainConfig['optimizer'],
  referenceKeys: string[],
): TorchValue {
  const m = toStateDict(model.layout, moments.m);
  const v = toStateDict(model.layout, moments.v);
  const state = new Map<number, TorchValue>();
  referenceKeys.forEach((key, i) => {
    if (!m[key]) return;
    state.set(
      i,
      new Map<string, TorchValue>([
        ['step', { dtype: 'F32', shape: [], data: Float32Array.of(moments.t) } as TorchTensor],
        ['exp_avg', m[key] as TorchTensor],
        ['exp_avg_sq', v[key] as TorchTensor],
      ]),
    );
  });
  const group = new Map<string, TorchValue>([
    ['lr', optimizer.lr],
    ['betas', new PyTuple<TorchValue>([optimizer.betas[0], optimizer.betas[1]])],
    ['eps', optimizer.eps],
    ['weight_decay', optimizer.weightDecay],
    ['amsgrad', false],
    ['maximize', false],
    ['foreach', null],
    ['capturable', false],
    ['differentiable', false],
    ['fused', false],
    ['params', referenceKeys.map((_, i) => i)],
  ]);
  return new Map<string, TorchValue>([
    ['state', state],
    ['param_groups', [group]],
  ]);
}
