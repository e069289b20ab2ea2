// Command-line options that `ctl eval` shares with `ctl reproduce`.
import { Option } from 'commander';
import { ENGINE_NAMES } from './engines.js';

/** `--engine`: how ranking scores are computed. */
export const engineOption = () =>
  new Option(
    '--engine <name>',
    'score engine for ranking: onnx (an onnxruntime Gemm), js (plain, slow), auto = onnx if it loads',
  )
    .choices(ENGINE_NAMES)
    .default('auto');
