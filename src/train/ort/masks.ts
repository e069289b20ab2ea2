// The dropout masks of the ort engine's steps, drawn one step ahead on worker threads. onnxruntime's run holds the
// main thread (on the CPU it computes there; on a GPU it waits), so the next step's masks are drawn meanwhile, into
// the other half of a double buffer. They are the keyed draws every engine makes (dropoutMask), so every engine
// trains the same model; a step that was not drawn ahead (the first, or one with another batch size) is drawn when
// asked. Millions of draws a step at batch 256, 16× that at 4,096: on one thread they would bound a GPU's step.
import { dropoutMask } from '../../model/layers.js';
import { serveRequests, WorkerPool } from '../../util/worker-pool.js';
import type { MaskInput } from './step-graph.js';

/** One mask, drawn into `buffer`, which moves to the worker and back (onnxruntime takes no shared memory). */
interface DrawRequest {
  key: [seed: number, step: number, site: string];
  buffer: ArrayBuffer;
  bytes: boolean;
  rows: number;
  cols: number;
  rate: number;
}

const WORKER_TAG = 'ctl-train-masks';

async function draw({ key, buffer, bytes, rows, cols, rate }: DrawRequest): Promise<ArrayBuffer> {
  // Rows are keyed by their global index in the batch: scenes 0..B-1, positives 0..B-1, negatives B..2B-1.
  dropoutMask(
    key,
    Int32Array.from({ length: rows }, (_, i) => i),
    cols,
    rate,
    maskView(buffer, bytes),
  );
  return buffer;
}

serveRequests(WORKER_TAG, draw, (buffer) => [buffer]);

/** One step's masks, by graph input name. */
export type MaskSet = Map<string, Float32Array | Uint8Array>;

/** The two sets of one step graph's masks, and the step drawn (or being drawn) ahead into one of them. */
interface Buffers {
  sets: [MaskSet, MaskSet];
  ahead: { step: number; set: MaskSet; drawn: Promise<void> } | null;
}

export class MaskDrawer {
  private readonly buffers = new Map<readonly MaskInput[], Buffers>();

  private constructor(
    private readonly pool: WorkerPool<DrawRequest, ArrayBuffer>,
    private readonly seed: number,
  ) {}

  /** `workers` threads; 0 draws on the calling thread (between steps, not beside them). */
  static start(seed: number, workers: number): MaskDrawer {
    return new MaskDrawer(WorkerPool.start(import.meta.url, WORKER_TAG, draw, workers), seed);
  }

  /**
   * The masks of `step` for a step graph's `inputs`, then the next step's started into the other set. The set
   * returned stays as it is until the call after next: feed it to this step's run only.
   */
  async masks(step: number, inputs: readonly MaskInput[]): Promise<MaskSet> {
    let buffers = this.buffers.get(inputs);
    if (!buffers) {
      buffers = { sets: [allocate(inputs), allocate(inputs)], ahead: null };
      this.buffers.set(inputs, buffers);
    }
    const { ahead } = buffers;
    if (ahead) await ahead.drawn; // a set is never written while a draw into it is in flight
    let set: MaskSet;
    if (ahead?.step === step) set = ahead.set;
    else {
      set = buffers.sets[0];
      await this.draw(set, step, inputs);
    }
    const next = set === buffers.sets[0] ? buffers.sets[1] : buffers.sets[0];
    const drawn = this.draw(next, step + 1, inputs);
    drawn.catch(() => {}); // a failure surfaces when the next step awaits it
    buffers.ahead = { step: step + 1, set: next, drawn };
    return set;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.buffers.values()].map((b) => b.ahead?.drawn));
    await this.pool.close();
  }

  /** Each mask of the set on a worker (its buffer comes back as a new object: the set holds that one). */
  private async draw(set: MaskSet, step: number, inputs: readonly MaskInput[]): Promise<void> {
    await Promise.all(
      inputs.map(async ({ input, site, rows, cols, bytes }) => {
        const buffer = set.get(input)!.buffer as ArrayBuffer;
        const key: DrawRequest['key'] = [this.seed, step, site.name];
        const drawn = await this.pool.run({ key, buffer, bytes, rows, cols, rate: site.rate }, [buffer]);
        set.set(input, maskView(drawn, bytes));
      }),
    );
  }
}

/** A mask buffer per input. */
function allocate(inputs: readonly MaskInput[]): MaskSet {
  return new Map(
    inputs.map(({ input, rows, cols, bytes }) => [
      input,
      maskView(new ArrayBuffer((bytes ? 1 : 4) * rows * cols), bytes),
    ]),
  );
}

function maskView(buffer: ArrayBuffer, bytes: boolean): Float32Array | Uint8Array {
  return bytes ? new Uint8Array(buffer) : new Float32Array(buffer);
}
