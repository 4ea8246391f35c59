/**
 * Worker thread body for the pack verifier of `check --read-data` (src/repo/pack-verifier.ts):
 * verifies each pack as it arrives and answers with its findings.
 */
import { workerData } from 'node:worker_threads';
import { BlobOpener } from './blob-codec.js';
import { MasterKeys } from './crypto.js';
import { type VerifyRequest, type VerifyWorkerInit, serveVerifyRequest } from './pack-verifier.js';
import { answerRequests } from './worker-pool.js';

const init = workerData as VerifyWorkerInit;
const keys = MasterKeys.deserialize(init.keys);
const opener = new BlobOpener(keys, init.compression);

answerRequests((request: VerifyRequest) => serveVerifyRequest(keys, opener, request));
