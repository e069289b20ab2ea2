// The training engine that runs each step as one ONNX graph (step-graph.ts) in onnxruntime-node, on the CPU
// (native MLAS GEMMs; `--backend ort-cpu`) or the WebGPU execution provider (`--backend webgpu`). The parameters
// and Adam moments stay where the step runs (state.ts); the dropout masks are drawn on the host with the same keys
// as the wasm engine, so both engines train the same model, one step ahead on worker threads (masks.ts).
// Encoding (validation, mined negatives) runs the towers as ONNX graphs on the same provider, from the step's own
// parameters and matrices (encode-graph.ts).
import { availableParallelism } from 'node:os';
import { TwoTower } from '../../model/two-tower.js';
import {
  rowsOf,
  type EngineOptions,
  type MatrixName,
  type StepPlan,
  type StepResult,
  type TrainEngine,
} from '../engine.js';
import { batchIndices } from '../batch.js';
import { concat } from '../../util/matrix.js';
import { adamScalars, startingState, type OptimizerState } from '../optimizer.js';
import { MaskDrawer } from './masks.js';
import { loadOrt, type Ort, type OrtSession, type OrtTensor } from '../../onnx/runtime.js';
import { DeviceState, HostState, type StepState } from './state.js';
import { buildEncodeGraph } from './encode-graph.js';
import { buildStepGraph, type MaskInput } from './step-graph.js';

/**
 * Rows a run of the encoder takes. On the CPU an encoder session's memory arena keeps its largest run's
 * activations for good, one session per matrix: ~190 MB of RSS each for v2 at 8,192 rows, ~50 MB at 2,048, which
 * encode as fast. A GPU takes larger runs.
 */
const ENCODE_CHUNK = { cpu: 2048, webgpu: 8192 };

export interface OrtEngineOptions extends EngineOptions {
  /** Intra-op threads of the session. */
  threads: number;
  /** onnxruntime's execution provider: the CPU (default) or WebGPU (Dawn; on a GPU, or a software Vulkan). */
  provider?: 'cpu' | 'webgpu';
}

/** The engine's session options (bench/train/profile.mjs runs the step with the same). */
export function sessionOptions(provider: 'cpu' | 'webgpu', threads: number) {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential' as const,
    executionProviders: [provider],
    graphOptimizationLevel: 'all' as const,
    logSeverityLevel: 3 as const, // not the optimizer's notes on the initializers its fusions leave unused
    // Pool threads sleep instead of spinning (the cores are shared with the host thread and other work);
    // denormal floats are flushed to zero, as PyTorch's bench does.
    extra: { session: { intra_op: { allow_spinning: '0' }, set_denormal_as_zero: '1' } },
  };
}

interface Compiled {
  session: OrtSession;
  masks: MaskInput[];
}

export class OrtEngine implements TrainEngine {
  readonly workers = 1;
  private readonly model: TwoTower;
  private readonly state: StepState;
  private readonly masks: MaskDrawer;
  /** Adam's step count (the update's bias corrections are fed in). */
  private t: number;
  /** Sessions by batch size and negatives kind (a run has one or two: full batches, a last partial one). */
  private readonly sessions = new Map<string, Promise<Compiled>>();
  /** The encoder of each matrix (its tower, its row count). */
  private readonly encoders = new Map<MatrixName, Promise<OrtSession>>();

  private constructor(
    private readonly ort: Ort,
    private readonly options: OrtEngineOptions,
  ) {
    this.model = new TwoTower(options.spec);
    const { t, m, v } = startingState(options.optimizerState, this.model.layout.size);
    const initial = { params: options.params.slice(), m, v };
    this.t = t;
    this.state = options.provider === 'webgpu' ? new DeviceState(ort, initial, 'webgpu') : new HostState(ort, initial);
    // Threads drawing the next step's dropout masks while a step runs: one on the CPU, where the step's own threads
    // take the cores; up to 8 beside a GPU.
    const maskWorkers = options.provider === 'webgpu' ? Math.min(8, availableParallelism() - 1) : 1;
    this.masks = MaskDrawer.start(options.seed, maskWorkers);
  }

  static async create(options: OrtEngineOptions): Promise<OrtEngine> {
    return new OrtEngine(await loadOrt(), options);
  }

  /** The step's session for a batch size and the plan's kinds of negatives and masks. */
  private compiled(batchSize: number, plan: StepPlan): Promise<Compiled> {
    const kinds = {
      explicit: plan.negatives !== null,
      inBatchHard: plan.hardCandidates !== null,
      falseNegatives: plan.falseNegatives !== null,
    };
    const key = `${batchSize}:${Object.values(kinds)}`;
    let compiled = this.sessions.get(key);
    if (!compiled) {
      const { matrices, spec } = this.options;
      const { model: onnx, masks } = buildStepGraph(this.model, {
        batchSize,
        sceneRows: rowsOf(matrices, 'trainScenes', spec.inputDim),
        productRows: rowsOf(matrices, 'products', spec.inputDim),
        ...kinds,
        dropout: true,
        maskBytes: this.options.provider === 'webgpu',
        loss: this.options.loss,
        optimizer: this.options.optimizer,
      });
      compiled = this.session(onnx, this.state.sessionOptions).then((session) => ({ session, masks }));
      this.sessions.set(key, compiled);
    }
    return compiled;
  }

  /** A session of an ONNX file's bytes (a step or encoder graph). */
  private session(onnx: Uint8Array, placement: StepState['sessionOptions'] = {}): Promise<OrtSession> {
    return this.ort.InferenceSession.create(onnx, {
      ...sessionOptions(this.options.provider ?? 'cpu', this.options.threads),
      ...placement,
    });
  }

  async step(plan: StepPlan): Promise<StepResult> {
    const { matrices, optimizer } = this.options;
    const B = plan.rows.length;
    const { session, masks } = await this.compiled(B, plan);
    const takes = (input: string) => session.inputNames.includes(input);
    const batch = batchIndices(matrices, plan, 0, B);
    const ort = this.ort;
    const scalar = (x: number) => new ort.Tensor('float32', Float32Array.of(x), []);

    const negatives = batch.explicit;
    const feeds: Record<string, OrtTensor> = {
      scene_matrix: await this.resident('trainScenes'),
      product_matrix: await this.resident('products'),
      scene_rows: this.int32(batch.scenes.slice()),
      // A row without a negative gathers product 0: its triplet term is masked out by `valid`.
      product_rows: this.int32(
        negatives
          ? concat(
              batch.positives,
              negatives.products.map((j) => Math.max(j, 0)),
            )
          : batch.positives,
      ),
    };
    if (this.model.categoryEmbedding)
      feeds.product_categories = this.int32(
        negatives ? concat(batch.positiveCategories, negatives.categories) : batch.positiveCategories,
      );
    const drawn = await this.masks.masks(plan.step, masks);
    for (const { input, rows, cols } of masks) feeds[input] = new ort.Tensor(drawn.get(input)!, [rows, cols]);
    const byteMatrix = (data: Uint8Array) => new ort.Tensor('uint8', data, [B, B]);
    if (plan.falseNegatives && takes('false_negatives')) feeds.false_negatives = byteMatrix(plan.falseNegatives);
    if (plan.hardCandidates && takes('hard_candidates')) feeds.hard_candidates = byteMatrix(plan.hardCandidates);
    if (takes('valid')) {
      // Rows with an explicit negative, or with any allowed in-batch one.
      const valid = negatives ? negatives.valid : rowsWithAny(plan.hardCandidates!, B);
      const count = valid.reduce((a, b) => a + b, 0);
      feeds.valid = new ort.Tensor('float32', valid, [B]);
      feeds.triplet_scale = scalar(count > 0 ? 1 / count : 0);
    }
    const t = this.t + 1;
    const adam = adamScalars(optimizer, plan.lr, t);
    feeds.step_size = scalar(adam.stepSize);
    feeds.inv_root_bias2 = scalar(adam.invRootBias2);
    feeds.decay = scalar(adam.decay);

    const results = await this.state.run(session, feeds, ['loss', 'infonce', 'triplet', 'temperature', 'grad_norm']);
    const read = (name: string) => (results[name].data as Float32Array)[0];
    this.t = t;
    return {
      loss: read('loss'),
      infonce: read('infonce'),
      triplet: read('triplet'),
      temperature: read('temperature'),
      gradNorm: read('grad_norm'),
    };
  }

  private int32(data: Int32Array): OrtTensor {
    return new this.ort.Tensor('int32', data, [data.length]);
  }

  /** A matrix where the step runs (uploaded once under WebGPU). */
  private resident(matrix: MatrixName): Promise<OrtTensor> {
    const { matrices, spec } = this.options;
    return this.state.resident(matrix, matrices[matrix], [rowsOf(matrices, matrix, spec.inputDim), spec.inputDim]);
  }

  async encode(matrix: MatrixName): Promise<Float32Array> {
    const { matrices, spec } = this.options;
    const rows = rowsOf(matrices, matrix, spec.inputDim);
    const chunk = Math.min(rows, ENCODE_CHUNK[this.options.provider ?? 'cpu']);
    let encoder = this.encoders.get(matrix);
    if (!encoder) {
      const tower = matrix === 'products' ? 'product' : 'scene';
      encoder = this.session(buildEncodeGraph(this.model, tower, rows, chunk));
      this.encoders.set(matrix, encoder);
    }
    const session = await encoder;
    const resident = await this.resident(matrix);
    const out = new Float32Array(rows * spec.out);
    for (let start = 0; start < rows; start += chunk) {
      const count = Math.min(chunk, rows - start);
      // The last chunk is filled up with row 0; those outputs are dropped.
      const indices = Int32Array.from({ length: chunk }, (_, i) => (i < count ? start + i : 0));
      const feeds: Record<string, OrtTensor> = {
        params: this.state.params(),
        matrix: resident,
        row_indices: this.int32(indices),
      };
      if (session.inputNames.includes('categories'))
        feeds.categories = this.int32(indices.map((row) => matrices.productCategory[row]));
      const { vectors } = await session.run(feeds);
      out.set((vectors.data as Float32Array).subarray(0, count * spec.out), start * spec.out);
    }
    return out;
  }

  async params(): Promise<Float32Array> {
    return (await this.state.read()).params;
  }

  async optimizerState(): Promise<OptimizerState> {
    const { m, v } = await this.state.read();
    return { t: this.t, m, v };
  }

  /** Release everything, also after a session failed to compile (its promise rejected): the mask worker must stop. */
  async dispose(): Promise<void> {
    const sessions = [...this.sessions.values()].map(async (compiled) => (await compiled).session.release());
    const encoders = [...this.encoders.values()].map(async (encoder) => (await encoder).release());
    this.sessions.clear();
    this.encoders.clear();
    await Promise.allSettled([...sessions, ...encoders]);
    await Promise.allSettled([this.state.dispose(), this.masks.close()]);
  }
}

/** 1 for each row of a [n, n] 0/1 matrix that has a 1, else 0. */
function rowsWithAny(matrix: Uint8Array, n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => (matrix.subarray(i * n, (i + 1) * n).includes(1) ? 1 : 0));
}
