// The model section of a training config: the towers' shape and the softmax temperature. The schema is the one
// declaration: the type, the checks, the defaults and the configs/README.md rows all come from it.
import * as z from 'zod';
import { flag, int, number, oneOf, satisfying, section } from '../util/schema.js';

const temperatureSchema = section({
  init: number(1e-6).default(0.07).meta({ description: 'initial softmax temperature τ' }),
  learnable: flag().default(true).meta({ description: 'learn τ (else keep it at init)' }),
  parametrisation: oneOf(['raw', 'log']).default('log').meta({
    description:
      "what is learnt: log τ, clamped to [min, max] (v2's `log_temperature`), or τ itself, unclamped (v1's `temperature`)",
  }),
  min: number(1e-6).default(0.01).meta({ description: 'lower clamp of τ (log parametrisation)' }),
  max: number(1e-6).default(1).meta({ description: 'upper clamp of τ (log parametrisation)' }),
});

const modelFields = section({
  arch: oneOf(['v1', 'v2']).meta({ description: 'v1 (MLP towers) or v2 (residual towers)' }),
  hidden: int(1).meta({ description: 'hidden width' }),
  out: int(1).meta({ description: 'output width (the shared embedding space)' }),
  blocks: int(0)
    .default(2)
    .meta({ description: 'residual blocks per tower (v2; v1 has none)', defaultText: '`2` (v1: `0`)' }),
  dropout: number(0, 0.99).default(0).meta({ description: 'dropout rate (off at evaluation)' }),
  categoryDim: int(0)
    .default(0)
    .meta({ description: 'category embedding width concatenated to the product input (0 = none)' }),
  // Always on: every loss and every ranking is a cosine. The field stays so that configs and checkpoints naming it load.
  normalize: satisfying<true>((value) => value === true, 'true (tower outputs are always L2-normalised)')
    .default(true)
    .meta({ description: 'L2-normalise tower outputs (always: the losses and rankings are cosines)' }),
  temperature: temperatureSchema.prefault({}),
});

export const modelConfigSchema = modelFields.transform((model) => ({
  ...model,
  blocks: model.arch === 'v1' ? 0 : model.blocks,
}));

/** A checkpoint's model spec (two-tower.ts ModelSpec): the resolved model config and the input's sizes. */
export const modelSpecSchema = modelFields.extend({ inputDim: int(1), numCategories: int(0) });

export type ModelConfig = z.output<typeof modelConfigSchema>;
