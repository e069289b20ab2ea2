// Build an ONNX model in memory and serialise it (onnx.proto, written by hand): inputs, outputs, initializers
// (weights) and nodes, default opset 17. It writes the generated vision towers of `ctl embed`, the exported towers,
// the training step of the ort engines and eval's scoring product, e.g.:
//
//   const g = new OnnxGraph('scores');
//   const q = g.input('queries', 'float32', ['rows', 256]);
//   const p = g.input('candidates', 'float32', ['n', 256]);
//   g.output(g.op('Gemm', [q, p], { transB: 1 }, 'scores'), 'float32', ['rows', 'n']);
//   writeFile('scores.onnx', g.encode());
import { ProtoWriter } from './protobuf.js';
import { elementCount } from '../util/matrix.js';

export type ElementType = 'float32' | 'float16' | 'int64' | 'int32' | 'int8' | 'uint8';

// TensorProto.DataType
const DATA_TYPE: Record<ElementType, number> = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, float16: 10 };

/** A dimension: a fixed size, or a name for a dynamic one ("batch_size"). */
export type Dim = number | string;

/** float16 values are passed as their raw bits in a Uint16Array. */
export type TensorData = Float32Array | BigInt64Array | Int32Array | Int8Array | Uint8Array | Uint16Array;

/** An attribute value. Plain numbers must be integers (INT); wrap a float with `float()`. */
export type Attribute = number | number[] | string | { float: number };
export const float = (value: number): Attribute => ({ float: value });

// AttributeProto.AttributeType
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_INTS = 7;

export interface EncodeOptions {
  /** ai.onnx opset version. */
  opset?: number;
  /** IR version 8 is read by onnxruntime >= 1.14. */
  irVersion?: number;
  producer?: string;
  /** Free-form key/value metadata (ModelProto.metadata_props). */
  metadata?: Record<string, string>;
}

export class OnnxGraph {
  private readonly nodes: ProtoWriter[] = [];
  private readonly initializers: ProtoWriter[] = [];
  private readonly inputs: ProtoWriter[] = [];
  private readonly outputs: ProtoWriter[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(readonly name: string) {}

  /** A fresh value name with a readable prefix. */
  private fresh(prefix: string): string {
    let name: string;
    do name = `${prefix}_${this.counter++}`;
    while (this.names.has(name));
    this.names.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`onnx graph ${this.name}: the name ${name} is already used`);
    this.names.add(name);
    return name;
  }

  /** Declare a graph input; returns its name. */
  input(name: string, type: ElementType, dims: Dim[]): string {
    this.inputs.push(valueInfo(this.claim(name), type, dims));
    return name;
  }

  /** Declare an existing value (produced by a node) as a graph output. */
  output(name: string, type: ElementType, dims: Dim[]): string {
    this.outputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** A constant tensor stored in the file (a weight); returns its name. */
  initializer(data: TensorData, dims: number[], { name, type }: { name?: string; type?: ElementType } = {}): string {
    const size = elementCount(dims);
    if (size !== data.length)
      throw new Error(`onnx graph ${this.name}: initializer of ${data.length} values for dims [${dims}]`);
    const tensorName = name ? this.claim(name) : this.fresh('const');
    const elementType = type ?? elementTypeOf(data);
    const t = new ProtoWriter();
    for (const d of dims) t.int(1, d);
    t.int(2, DATA_TYPE[elementType]);
    t.string(8, tensorName);
    t.bytes(9, littleEndianBytes(data)); // raw_data
    this.initializers.push(t);
    return tensorName;
  }

  /** An int64 vector constant (shapes, axes, starts and ends of a Slice). */
  int64s(values: number[]): string {
    return this.initializer(BigInt64Array.from(values.map(BigInt)), [values.length]);
  }

  /** A float32 constant of any shape (a scalar is dims []). */
  float32(values: number[], dims: number[] = [values.length]): string {
    return this.initializer(Float32Array.from(values), dims);
  }

  /** A node with any number of outputs: `outputs` names them, or a count asks for fresh names. */
  node(
    opType: string,
    inputs: string[],
    attrs: Record<string, Attribute> = {},
    outputs: string[] | number = 1,
  ): string[] {
    const outNames =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, () => this.fresh(opType))
        : outputs.map((o) => this.claim(o));
    const n = new ProtoWriter();
    for (const i of inputs) n.string(1, i);
    for (const o of outNames) n.string(2, o);
    n.string(3, `${opType}_node_${this.nodes.length}`);
    n.string(4, opType);
    for (const [key, value] of Object.entries(attrs)) n.message(5, attribute(key, value));
    this.nodes.push(n);
    return outNames;
  }

  /** A node with one output; returns the output's name. */
  op(opType: string, inputs: string[], attrs: Record<string, Attribute> = {}, output?: string): string {
    return this.node(opType, inputs, attrs, output ? [output] : 1)[0];
  }

  /** `x` converted to `type` (a Cast node); returns the output's name. */
  cast(x: string, type: ElementType, output?: string): string {
    return this.op('Cast', [x], { to: DATA_TYPE[type] }, output);
  }

  /** The serialised ModelProto. */
  encode({ opset = 17, irVersion = 8, producer = 'ctl', metadata = {} }: EncodeOptions = {}): Uint8Array {
    const graph = new ProtoWriter();
    for (const n of this.nodes) graph.message(1, n);
    graph.string(2, this.name);
    for (const t of this.initializers) graph.message(5, t);
    for (const i of this.inputs) graph.message(11, i);
    for (const o of this.outputs) graph.message(12, o);
    const model = new ProtoWriter().int(1, irVersion).string(2, producer).message(7, graph);
    model.message(8, new ProtoWriter().string(1, '').int(2, opset)); // opset_import: default domain
    for (const [key, value] of Object.entries(metadata))
      model.message(14, new ProtoWriter().string(1, key).string(2, value));
    return model.finish();
  }
}

function elementTypeOf(data: TensorData): ElementType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array) return 'uint8';
  throw new Error('onnx graph: a Uint16Array initializer needs an explicit type (float16)');
}

function littleEndianBytes(data: TensorData): Uint8Array {
  // Typed arrays use the platform's byte order; every platform Node supports here is little-endian, as ONNX wants.
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function attribute(name: string, value: Attribute): ProtoWriter {
  const a = new ProtoWriter().string(1, name);
  if (typeof value === 'string') return a.bytes(4, new TextEncoder().encode(value)).int(20, ATTR_STRING);
  if (Array.isArray(value)) {
    for (const v of value) a.int(8, checkedInt(name, v));
    return a.int(20, ATTR_INTS);
  }
  if (typeof value === 'number') return a.int(3, checkedInt(name, value)).int(20, ATTR_INT);
  return a.float(2, value.float).int(20, ATTR_FLOAT);
}

function checkedInt(name: string, v: number): number {
  if (!Number.isInteger(v))
    throw new Error(`onnx attribute ${name}: ${v} is not an integer (wrap floats with float())`);
  return v;
}

function valueInfo(name: string, type: ElementType, dims: Dim[]): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dims) {
    const dim = new ProtoWriter();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter().int(1, DATA_TYPE[type]).message(2, shape);
  return new ProtoWriter().string(1, name).message(2, new ProtoWriter().message(1, tensorType));
}
