/**
 * Worker thread body of the BlobLoader (src/repo/blob-reader.ts): opens single blobs (read from
 * a local pack file, or handed over as an envelope) and moves their checked plaintext back.
 */
import { workerData } from 'node:worker_threads';
import { BlobOpener } from './blob-codec.js';
import { type BlobLoadAnswer, type BlobLoadRequest, type BlobLoadWorkerInit, RunReader, serveBlobLoad } from './blob-reader.js';
import { MasterKeys } from './crypto.js';
import { answerRequests } from './worker-pool.js';

const init = workerData as BlobLoadWorkerInit;
const keys = MasterKeys.deserialize(init.keys);
const reader = new RunReader(keys, init.compression, init.location);
const opener = new BlobOpener(keys, init.compression);

answerRequests(
  (request: BlobLoadRequest) => serveBlobLoad(reader, opener, request),
  (answer: BlobLoadAnswer) => ('plaintext' in answer ? [answer.plaintext.buffer as ArrayBuffer] : []),
);
