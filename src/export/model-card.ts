// model-card.md: what an exported model is, what it was trained and evaluated on, and how to load each file.
import type { Dataset } from '../data/dataset.js';
import type { EvalReport } from '../eval/evaluate.js';
import { formatTable, reportNote } from '../eval/table.js';
import type { CheckpointName } from '../model/checkpoint.js';
import type { TrainedModel } from '../model/load.js';
import type { ExportFormat } from './formats.js';
import { FILES } from './formats.js';
import { ONNX_NAMES } from '../model/onnx-tower.js';
import type { ReferenceClass } from './reference-model.js';

export interface CardInput {
  run: string;
  which: CheckpointName;
  model: TrainedModel;
  dataset: Dataset;
  reference: ReferenceClass | null;
  formats: ExportFormat[];
  index: { rows: number; skipped: number };
  evalReports: EvalReport[];
  onnxDifference?: { scene: number; product: number };
}

export function modelCard(c: CardInput): string {
  const { state, spec } = c.model;
  const data = c.dataset.source === 'stl' ? `STL-${c.dataset.domain} (Shop-The-Look)` : 'SYNTHETIC (`ctl data synth`)';
  const lines = [
    `# \`${c.run}\`: a ${spec.arch} two-tower model for complete-the-look recommendation`,
    '',
    state.imported
      ? `Exported by \`ctl export\` from run \`${c.run}\`, imported by \`ctl import --checkpoint\` from ` +
        `\`${state.imported.file}\` (${state.imported.bare ? 'a bare state_dict' : `the reference's checkpoint, epoch ${state.epoch}`}).`
      : `Exported by \`ctl export\` from run \`${c.run}\`, \`${c.which}\` checkpoint: epoch ${state.epoch}, ` +
        `selection metric ${state.metric.toFixed(4)} (best ${state.best.metric.toFixed(4)} at epoch ${state.best.epoch}).`,
    '',
    '## Data and split',
    `- Data: ${data}; ${c.dataset.products.length} products, ${c.dataset.scenes.length} scenes, ${c.dataset.pairs.length} pairs.`,
    c.dataset.source === 'stl' ? null : '- Synthetic data: numbers here are not Shop-The-Look results.',
    `- ${state.imported ? 'Imported weights; the run records' : 'Trained on'} the \`${configField(c.model, 'split')}\` split: ${state.data.trainPairs} train pairs, ` +
      `${state.data.valPairs} validation pairs (data fingerprint \`${state.data.fingerprint}\`).`,
    `- Product index: ${c.index.rows} products` +
      (c.index.skipped ? `, ${c.index.skipped} left out (no image embedding).` : '.'),
    '',
    '## Embeddings',
    `- Image embedding model \`${state.embeddings.model}\`, ${state.embeddings.dim}-d; scene view \`${state.embeddings.sceneView}\`.`,
    '- The towers take these embeddings as input: embed new images with the same model (`ctl embed`).',
    '',
    '## Model',
    `- ${spec.arch}: hidden ${spec.hidden}, out ${spec.out}` +
      (spec.arch === 'v2'
        ? `, ${spec.blocks} residual block${spec.blocks === 1 ? '' : 's'}, ${spec.categoryDim}-d category embedding`
        : '') +
      `, dropout ${spec.dropout}; outputs L2-normalised; cosine similarity ranks products for a scene.`,
    c.reference ? `- Reference class: \`${c.reference.name}(**${JSON.stringify(c.reference.kwargs)})\`.` : null,
    `- Categories (${spec.categoryDim > 0 ? 'row of the category embedding' : 'index'}: leaf name, the reference's \`cat_to_idx\`): ` +
      Object.entries(state.categoryMap.cat_to_idx)
        .sort((a, b) => a[1] - b[1])
        .map(([name, row]) => `${row} ${name}`)
        .join(', ') +
      '.',
    '',
    'Training config:',
    '',
    '```json',
    JSON.stringify(state.config, null, 2),
    '```',
    '',
    '## Evaluation (`ctl eval`)',
    '',
    ...evaluation(c),
    '',
    '## Files and how to load them',
    '',
    ...c.formats.flatMap((f) => snippet(f, c)),
    ...snippet('index', c).slice(0, -1),
  ];
  return lines.filter((l) => l !== null).join('\n') + '\n';
}

function configField(model: TrainedModel, field: string): string {
  return String((model.config as Record<string, unknown> | null)?.[field] ?? '?');
}

function evaluation(c: CardInput): string[] {
  if (c.evalReports.length === 0)
    return [
      `No \`ctl eval\` report of this checkpoint yet: \`ctl eval --run ${c.run} --checkpoint ${c.which} --protocol all\`, ` +
        'then export again.',
    ];
  const rows = c.evalReports.map((r) => ({
    label:
      `${r.protocol} (${r.split.scheme}/${r.split.part}), ${r.checkpoint?.which ?? '?'} epoch ${r.checkpoint?.epoch ?? '?'}` +
      (r.backend ? `, towers on ${r.backend}` : ''),
    metrics: r.metrics,
    note: reportNote(r),
  }));
  return [
    "From the run's reports of this checkpoint (runs/<run>/eval/). `seed` is the reference project's protocol (for comparison only);",
    '`catalog` ranks the whole catalog with a scene-disjoint split; `category` ranks within the product category.',
    '',
    '```',
    ...formatTable(rows),
    '```',
  ];
}

function snippet(format: ExportFormat | 'index', c: CardInput): string[] {
  const cls = c.reference?.name ?? 'CTLModelV2';
  const construct = `model = ${cls}(**json.load(open('${FILES.config}'))['reference']['kwargs'])`;
  const whereClassIs = `# ${cls} is the reference project's class; ctl's copy is bench/train/torch_two_tower.py (on sys.path)`;
  const blocks: Record<ExportFormat | 'index', { title: string; code: string[] }> = {
    safetensors: {
      title: `\`${FILES.safetensors}\` + \`${FILES.config}\` (the reference's state_dict; \`${cls}\` as in bench/train/torch_two_tower.py)`,
      code: [
        'import json',
        'from safetensors.torch import load_file',
        whereClassIs,
        `from torch_two_tower import ${cls}`,
        construct,
        `model.load_state_dict(load_file('${FILES.safetensors}'), strict=True); model.eval()`,
      ],
    },
    pt: {
      title: `\`${FILES.pt}\` (torch.save of the reference's checkpoint dict: epoch, model_state_dict, metrics, num_categories, cat_to_idx)`,
      code: [
        'import json, torch',
        whereClassIs,
        `from torch_two_tower import ${cls}`,
        `checkpoint = torch.load('${FILES.pt}', map_location='cpu')`,
        construct,
        "model.load_state_dict(checkpoint['model_state_dict'], strict=True); model.eval()",
      ],
    },
    onnx: {
      title:
        `\`${FILES.sceneOnnx}\`, \`${FILES.productOnnx}\` (opset 17, dynamic batch; inputs ` +
        `${ONNX_NAMES.scene.inputs[0]} [batch, ${c.model.spec.inputDim}] float32` +
        (c.model.spec.categoryDim > 0 ? `, ${ONNX_NAMES.product.inputs.join(' + ')} (int64 cat_to_idx row)` : '') +
        `; outputs ${ONNX_NAMES.scene.output}, ${ONNX_NAMES.product.output}, L2-normalised` +
        (c.onnxDifference
          ? `; checked at export against ctl's forward: max abs difference ${c.onnxDifference.scene.toExponential(1)} / ${c.onnxDifference.product.toExponential(1)})`
          : ')'),
      code: [
        'import numpy as np, onnxruntime as ort',
        `scene, product = ort.InferenceSession('${FILES.sceneOnnx}'), ort.InferenceSession('${FILES.productOnnx}')`,
        `s = scene.run(None, {'${ONNX_NAMES.scene.inputs[0]}': x.astype(np.float32)})[0]`,
        c.model.spec.categoryDim > 0
          ? `p = product.run(None, {'${ONNX_NAMES.product.inputs[0]}': e.astype(np.float32), '${ONNX_NAMES.product.inputs[1]}': rows.astype(np.int64)})[0]`
          : `p = product.run(None, {'${ONNX_NAMES.product.inputs[0]}': e.astype(np.float32)})[0]`,
        'scores = s @ p.T',
      ],
    },
    index: {
      title: `\`${FILES.indexVectors}\` + \`${FILES.indexRows}\` (the catalog through the product tower, one JSON line per row)`,
      code: [
        'import json, numpy as np',
        `vectors = np.load('${FILES.indexVectors}')`,
        `products = [json.loads(line) for line in open('${FILES.indexRows}')]`,
        'scores = vectors @ scene_vector  # a scene tower output',
        "top10 = [products[i]['url'] for i in np.argsort(-scores)[:10]]",
      ],
    },
  };
  const b = blocks[format];
  return [`### ${b.title}`, '', '```python', ...b.code, '```', ''];
}
