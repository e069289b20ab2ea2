// `--backend` of the commands that run a trained model's towers (eval, export, serve): see tower-encoder.ts.
import { Option } from 'commander';
import { TOWER_BACKEND_CHOICES } from './backend.js';

export const towerBackendOption = () =>
  new Option(
    '--backend <name>',
    "what runs the model's towers: ort-cpu (onnxruntime-node), or TensorFlow.js on tensorflow, wasm or cpu; auto = ort-cpu if it loads, else tfjs's choice",
  )
    .choices(TOWER_BACKEND_CHOICES)
    .default('auto');
