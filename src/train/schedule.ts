// Learning-rate schedule: linear warm-up over the first `warmupFraction` of training, then cosine decay to
// `minLr`. `unit: 'epoch'` changes the rate once per epoch (PyTorch's CosineAnnealingLR stepped each epoch, the
// reference v1); `'step'` every step (the reference v2's warm-up + cosine).
import type { TrainConfig } from './config.js';

/** The config's `schedule` section (see config.ts). */
export type ScheduleConfig = TrainConfig['schedule'];

/** The learning rate for (0-based) `step` of `stepsPerEpoch * epochs`. */
export function learningRate(
  config: ScheduleConfig,
  baseLr: number,
  step: number,
  stepsPerEpoch: number,
  epochs: number,
): number {
  const [position, total] =
    config.unit === 'epoch' ? [Math.floor(step / stepsPerEpoch), epochs] : [step, stepsPerEpoch * epochs];
  const warmup = Math.round(config.warmupFraction * total);
  if (position < warmup) return (baseLr * (position + 1)) / warmup;
  if (config.decay === 'constant') return baseLr;
  const progress = Math.min(1, (position - warmup) / Math.max(1, total - warmup));
  return config.minLr + (baseLr - config.minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
