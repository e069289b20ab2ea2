// A data-parallel training worker: one replica with its own tfjs backend, driven by the coordinator in
// parallel.ts. Every request is answered by every worker; step requests meet at the shared-memory barriers.
import { parentPort, workerData } from 'node:worker_threads';
import { useBackend } from '../model/backend.js';
import { encodeMatrix, type EngineMatrices } from './engine.js';
import { SharedExchange } from './exchange.js';
import type { WorkerInit, WorkerReply, WorkerRequest } from './parallel.js';
import { Replica } from './replica.js';

const init = workerData as WorkerInit;
const port = parentPort!;

const floats = (name: keyof EngineMatrices) => new Float32Array(init.matrices[name]);
const ints = (name: keyof EngineMatrices) => new Int32Array(init.matrices[name]);

async function main(): Promise<void> {
  await useBackend(init.backend, { quiet: true });
  const matrices: EngineMatrices = {
    trainScenes: floats('trainScenes'),
    trainSceneRow: ints('trainSceneRow'),
    valScenes: floats('valScenes'),
    products: floats('products'),
    productCategory: ints('productCategory'),
    rowProduct: ints('rowProduct'),
  };
  const replica = new Replica({
    ...init.options,
    params: new Float32Array(init.buffers.params),
    optimizerState: init.optimizerState,
    matrices,
    exchange: new SharedExchange(init.rank, init.world, init.buffers),
  });
  const out = init.options.spec.out;

  const handle = (request: WorkerRequest): unknown => {
    switch (request.kind) {
      case 'step':
        return replica.step(request.plan);
      case 'encode': {
        const { matrix, start, end } = request;
        const encoded = encodeMatrix(replica.model, replica.params, matrices, matrix, start, end);
        new Float32Array(request.out).set(encoded, start * out);
        return null;
      }
      case 'optimizer':
        return replica.optimizerState();
    }
  };

  port.on('message', (request: WorkerRequest) => {
    let reply: WorkerReply;
    try {
      reply = { id: request.id, ok: true, result: handle(request) };
    } catch (err) {
      reply = { id: request.id, ok: false, error: err instanceof Error ? err.message : String(err) };
    }
    port.postMessage(reply);
  });
  port.postMessage({ id: -1, ok: true, result: 'ready' } satisfies WorkerReply);
}

main().catch((err) =>
  port.postMessage({
    id: -1,
    ok: false,
    error: err instanceof Error ? err.message : String(err),
  } satisfies WorkerReply),
);
