// Score engines: queries × candidatesᵀ for one block of query rows. The ranking code (rank.ts) is the same for
// every engine; only the matrix product differs.
//
// - `onnx`: one Gemm run by onnxruntime-node (MLAS sgemm, multi-threaded). The fastest here (bench/eval).
// - `js`: plain typed-array loops. Slow (no SIMD, one thread) but dependency-free; the reference the others are
//   tested against.
// `auto` = `onnx`, or `js` where onnxruntime-node cannot load.
import { availableParallelism } from 'node:os';
import { OnnxGraph } from '../onnx/graph.js';
import { cpuSessionOptions, loadOrt, type Ort, type OrtSession, type OrtTensor } from '../onnx/runtime.js';
import { log } from '../util/log.js';

export type EngineName = 'auto' | 'onnx' | 'js';
export const ENGINE_NAMES: EngineName[] = ['auto', 'onnx', 'js'];

export interface ScoreEngine {
  readonly name: string;
  /**
   * Scores of `rows` (count × dim) against every candidate, written to the first count × numCandidates floats of
   * `out` (row-major); resolves to that part of `out`.
   */
  score(rows: Float32Array, out: Float32Array): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/** `auto` falling back to js is said once per process, not once per engine (serve builds one per category filter). */
let warnedFallback = false;

export async function createScoreEngine(
  name: EngineName,
  candidates: Float32Array,
  numCandidates: number,
  dim: number,
  threads = availableParallelism(),
): Promise<ScoreEngine> {
  switch (name) {
    case 'onnx':
      return OnnxEngine.create(candidates, numCandidates, dim, threads);
    case 'js':
      return new JsEngine(candidates, numCandidates, dim);
    case 'auto':
      try {
        return await OnnxEngine.create(candidates, numCandidates, dim, threads);
      } catch (err) {
        if (!warnedFallback)
          log(`eval: onnxruntime-node unavailable (${(err as Error).message}); ranking with plain JS (slow)`);
        warnedFallback = true;
        return new JsEngine(candidates, numCandidates, dim);
      }
  }
}

/**
 * queries [rows, dim] · candidates [n, dim]ᵀ as one Gemm (transB). The candidates are an input, not a constant:
 * a constant would be copied into the model and pre-packed when the session is created, which costs about as much
 * as the packing it saves on each run.
 */
class OnnxEngine implements ScoreEngine {
  readonly name = 'onnx';

  private constructor(
    private readonly ort: Ort,
    private readonly session: OrtSession,
    private readonly candidates: OrtTensor,
    private readonly numCandidates: number,
    private readonly dim: number,
  ) {}

  static async create(
    candidates: Float32Array,
    numCandidates: number,
    dim: number,
    threads: number,
  ): Promise<OnnxEngine> {
    const ort = await loadOrt();
    const g = new OnnxGraph('scores');
    const queries = g.input('queries', 'float32', ['rows', dim]);
    const all = g.input('candidates', 'float32', ['n', dim]);
    g.output(g.op('Gemm', [queries, all], { transB: 1 }, 'scores'), 'float32', ['rows', 'n']);
    const session = await ort.InferenceSession.create(g.encode(), cpuSessionOptions(threads));
    return new OnnxEngine(
      ort,
      session,
      new ort.Tensor('float32', candidates, [numCandidates, dim]),
      numCandidates,
      dim,
    );
  }

  async score(rows: Float32Array, buffer: Float32Array): Promise<Float32Array> {
    const count = rows.length / this.dim;
    const out = buffer.subarray(0, count * this.numCandidates);
    await this.session.run(
      { queries: new this.ort.Tensor('float32', rows, [count, this.dim]), candidates: this.candidates },
      { scores: new this.ort.Tensor('float32', out, [count, this.numCandidates]) },
    );
    return out;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** Candidates in tiles that fit in L2 beside the query block, dot products with four accumulators. */
class JsEngine implements ScoreEngine {
  readonly name = 'js';

  constructor(
    private readonly candidates: Float32Array,
    private readonly numCandidates: number,
    private readonly dim: number,
  ) {}

  async score(rows: Float32Array, buffer: Float32Array): Promise<Float32Array> {
    const { candidates, numCandidates: n, dim } = this;
    const count = rows.length / dim;
    const out = buffer.subarray(0, count * n);
    const tile = 128;
    for (let c0 = 0; c0 < n; c0 += tile) {
      const c1 = Math.min(n, c0 + tile);
      for (let r = 0; r < count; r++) {
        const qo = r * dim;
        for (let c = c0; c < c1; c++) {
          const co = c * dim;
          let s0 = 0,
            s1 = 0,
            s2 = 0,
            s3 = 0;
          let d = 0;
          for (; d + 3 < dim; d += 4) {
            s0 += rows[qo + d] * candidates[co + d];
            s1 += rows[qo + d + 1] * candidates[co + d + 1];
            s2 += rows[qo + d + 2] * candidates[co + d + 2];
            s3 += rows[qo + d + 3] * candidates[co + d + 3];
          }
          for (; d < dim; d++) s0 += rows[qo + d] * candidates[co + d];
          out[r * n + c] = s0 + s1 + (s2 + s3);
        }
      }
    }
    return out;
  }

  async dispose(): Promise<void> {}
}
