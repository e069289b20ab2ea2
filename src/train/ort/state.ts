// Where the training step's data lives between steps: its flat state (the parameters and Adam's two moments) and
// the embedding matrices its batches are gathered from.
// On the CPU everything stays on the host: tensors over the arrays, and the step writes the next state into a
// spare set (no copy, no allocation). On a GPU it stays on the device: the matrices are uploaded once, the step's
// state outputs are kept as device buffers and fed to the next step, so a step moves only row indices and dropout
// masks over the bus, not the 3 × 3.2 M values of v2's state each way nor its batch's rows; the host reads the
// state back only when asked (checkpoints): the encoder (encode-graph.ts) takes the parameters where they are.
import { OnnxGraph } from '../../onnx/graph.js';
import type { Ort, OrtSession, OrtTensor } from '../../onnx/runtime.js';
import { STATE_INPUTS, STATE_OUTPUTS } from './step-graph.js';

type Fetches = Record<string, OrtTensor | null>;

/** The three flat vectors, in STATE_INPUTS order. */
export interface FlatState {
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

export interface StepState {
  /** Session options that place the step's state outputs where this state keeps them. */
  readonly sessionOptions: { preferredOutputLocation?: Record<string, 'gpu-buffer'> };
  /** Runs one step of `session` with `feeds` and the state, keeps the state it outputs, returns the other outputs. */
  run(session: OrtSession, feeds: Record<string, OrtTensor>, outputs: string[]): Promise<Record<string, OrtTensor>>;
  /** A host copy of the current state. */
  read(): Promise<FlatState>;
  /** The current parameters, where they are (a device buffer after a step under WebGPU), to feed another graph. */
  params(): OrtTensor;
  /** A [rows, cols] matrix every step reads (uploaded once where the step runs on a device). */
  resident(name: string, data: Float32Array, dims: [number, number]): Promise<OrtTensor>;
  dispose(): Promise<void>;
}

const tensorOf = (ort: Ort, data: Float32Array) => new ort.Tensor('float32', data, [data.length]);

export class HostState implements StepState {
  readonly sessionOptions = {};
  private spare: FlatState;

  constructor(
    private readonly ort: Ort,
    private current: FlatState,
  ) {
    const size = current.params.length;
    this.spare = { params: new Float32Array(size), m: new Float32Array(size), v: new Float32Array(size) };
  }

  async run(session: OrtSession, feeds: Record<string, OrtTensor>, outputs: string[]) {
    const fetches: Fetches = Object.fromEntries(outputs.map((name) => [name, null]));
    STATE_INPUTS.forEach((name, i) => {
      feeds[name] = tensorOf(this.ort, this.current[name]);
      fetches[STATE_OUTPUTS[i]] = tensorOf(this.ort, this.spare[name]);
    });
    const results = await session.run(feeds, fetches);
    [this.current, this.spare] = [this.spare, this.current];
    return results;
  }

  async read(): Promise<FlatState> {
    const { params, m, v } = this.current;
    return { params: params.slice(), m: m.slice(), v: v.slice() };
  }

  params(): OrtTensor {
    return tensorOf(this.ort, this.current.params);
  }

  async resident(_name: string, data: Float32Array, dims: [number, number]): Promise<OrtTensor> {
    return new this.ort.Tensor('float32', data, dims);
  }

  async dispose(): Promise<void> {}
}

export class DeviceState implements StepState {
  readonly sessionOptions = {
    preferredOutputLocation: Object.fromEntries(STATE_OUTPUTS.map((name) => [name, 'gpu-buffer' as const])),
  };
  /** Host tensors until the first step, device buffers after it. */
  private tensors: OrtTensor[];
  /** Copies the state back to the host (an Identity per vector): the Node binding cannot download a buffer. */
  private reader: Promise<OrtSession> | null = null;
  /** Copies a host matrix to a device buffer (an Identity whose output stays there), and the copies made. */
  private uploader: Promise<OrtSession> | null = null;
  private readonly uploads = new Map<string, Promise<OrtTensor>>();

  constructor(
    private readonly ort: Ort,
    initial: FlatState,
    private readonly provider: 'webgpu',
  ) {
    this.tensors = STATE_INPUTS.map((name) => tensorOf(ort, initial[name].slice()));
  }

  async run(session: OrtSession, feeds: Record<string, OrtTensor>, outputs: string[]) {
    STATE_INPUTS.forEach((name, i) => (feeds[name] = this.tensors[i]));
    const results = await session.run(feeds, [...outputs, ...STATE_OUTPUTS]);
    this.release();
    this.tensors = STATE_OUTPUTS.map((name) => results[name]);
    return results;
  }

  async read(): Promise<FlatState> {
    this.reader ??= this.readSession();
    const reader = await this.reader;
    const feeds = Object.fromEntries(STATE_INPUTS.map((name, i) => [name, this.tensors[i]]));
    const results = await reader.run(feeds);
    const [params, m, v] = STATE_OUTPUTS.map((name) => results[name].data as Float32Array);
    return { params, m, v };
  }

  params(): OrtTensor {
    return this.tensors[0];
  }

  resident(name: string, data: Float32Array, dims: [number, number]): Promise<OrtTensor> {
    let upload = this.uploads.get(name);
    if (!upload) {
      this.uploader ??= this.uploadSession();
      upload = this.uploader.then(async (uploader) => {
        const results = await uploader.run({ x: new this.ort.Tensor('float32', data, dims) });
        return results.y;
      });
      this.uploads.set(name, upload);
    }
    return upload;
  }

  async dispose(): Promise<void> {
    this.release();
    for (const upload of this.uploads.values()) (await upload).dispose();
    for (const session of [this.reader, this.uploader]) if (session) await (await session).release();
  }

  private release(): void {
    for (const tensor of this.tensors) if (tensor.location === 'gpu-buffer') tensor.dispose();
  }

  private readSession(): Promise<OrtSession> {
    const size = this.tensors[0].dims[0];
    const g = new OnnxGraph('read_state');
    STATE_INPUTS.forEach((name, i) => {
      g.input(name, 'float32', [size]);
      g.output(g.op('Identity', [name], {}, STATE_OUTPUTS[i]), 'float32', [size]);
    });
    return this.session(g);
  }

  private uploadSession(): Promise<OrtSession> {
    const g = new OnnxGraph('upload');
    g.input('x', 'float32', ['rows', 'cols']);
    g.output(g.op('Identity', ['x'], {}, 'y'), 'float32', ['rows', 'cols']);
    return this.session(g, { preferredOutputLocation: 'gpu-buffer' });
  }

  private session(g: OnnxGraph, options: { preferredOutputLocation?: 'gpu-buffer' } = {}): Promise<OrtSession> {
    return this.ort.InferenceSession.create(g.encode(), {
      executionProviders: [this.provider],
      logSeverityLevel: 3,
      ...options,
    });
  }
}
