/**
 * Worker thread body for WorkerSealer (src/repo/blob-sealer.ts): seals blobs as they arrive.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PayloadCodec } from './compression.js';
import { MasterKeys } from './crypto.js';
import { sealBlobPayload } from './blob-codec.js';
import { type SealRequest, type SealResponse, type WorkerInit, movable } from './blob-sealer.js';

const init = workerData as WorkerInit;
const keys = MasterKeys.deserialize(init.keys);
const codec = new PayloadCodec(init.compression);
const port = parentPort!;

port.on('message', (request: SealRequest) => {
  let response: SealResponse;
  try {
    const envelope = movable(sealBlobPayload(keys, codec, request.type, request.id, request.plaintext));
    response = { seq: request.seq, envelope };
    port.postMessage(response, [envelope.buffer as ArrayBuffer]);
  } catch (error) {
    response = { seq: request.seq, error: (error as Error).message };
    port.postMessage(response);
  }
});
