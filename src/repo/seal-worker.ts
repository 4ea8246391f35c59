/**
 * Worker thread body for WorkerSealer (src/repo/blob-sealer.ts): seals blobs as they arrive.
 */
import { workerData } from 'node:worker_threads';
import { PayloadCodec } from './compression.js';
import { MasterKeys } from './crypto.js';
import { sealBlobPayload } from './blob-codec.js';
import type { SealRequest, WorkerInit } from './blob-sealer.js';
import { answerRequests, movable } from './worker-pool.js';

const init = workerData as WorkerInit;
const keys = MasterKeys.deserialize(init.keys);
const codec = new PayloadCodec(init.compression);

answerRequests(
  (request: SealRequest) => movable(sealBlobPayload(keys, codec, request.type, request.id, request.plaintext)),
  (envelope) => [envelope.buffer as ArrayBuffer],
);
