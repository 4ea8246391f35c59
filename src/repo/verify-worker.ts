/**
 * Worker thread body for the pack verifier of `check --read-data` (src/repo/pack-verifier.ts):
 * verifies each pack as it arrives and posts its findings.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BlobOpener } from './blob-codec.js';
import { MasterKeys } from './crypto.js';
import { type VerifyRequest, type VerifyResponse, type VerifyWorkerInit, serveVerifyRequest } from './pack-verifier.js';

const init = workerData as VerifyWorkerInit;
const keys = MasterKeys.deserialize(init.keys);
const opener = new BlobOpener(keys, init.compression);
const port = parentPort!;

port.on('message', (request: VerifyRequest) => {
  let response: VerifyResponse;
  try {
    response = serveVerifyRequest(keys, opener, request);
  } catch (error) {
    response = { error: (error as Error).message };
  }
  port.postMessage(response);
});
