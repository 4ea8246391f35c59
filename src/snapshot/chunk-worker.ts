/**
 * Worker thread body for FileChunkerPool (src/snapshot/file-chunker.ts): chunks whole files
 * with chunkFile and posts each piece as soon as it is sealed, waiting for credit (bytes the
 * main thread has taken in) so that a slow repository bounds the memory a fast disk could fill.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PayloadCodec } from '../repo/compression.js';
import { MasterKeys } from '../repo/crypto.js';
import { chunkFile } from './file-chunks.js';
import { movable } from '../repo/blob-sealer.js';
import { gearTable } from '../chunker/index.js';
import type { ChunkJob, ChunkMessage, ChunkWorkerInit } from './file-chunker.js';

const init = workerData as ChunkWorkerInit;
const keys = MasterKeys.deserialize(init.keys);
const codec = new PayloadCodec(init.compression);
const gear = gearTable(keys.chunkerSeed);
const credit = new Int32Array(init.credit);
const port = parentPort!;

function take(bytes: number): void {
  for (;;) {
    const available = Atomics.load(credit, 0);
    if (available >= bytes) {
      Atomics.sub(credit, 0, bytes);
      return;
    }
    Atomics.wait(credit, 0, available, 1000);
  }
}

port.on('message', (job: ChunkJob) => {
  let message: ChunkMessage;
  try {
    const size = chunkFile(Buffer.from(job.path), { params: init.params, gear, keys, codec, seal: job.seal, noAtime: job.noAtime }, (piece) => {
      const cost = piece.envelope?.length ?? 0;
      take(cost);
      const id = movable(piece.id);
      const envelope = piece.envelope && movable(piece.envelope);
      const out: ChunkMessage = { seq: job.seq, piece: { id: id as Buffer, rawLength: piece.rawLength, envelope: envelope as Buffer | undefined, cost } };
      port.postMessage(out, envelope ? [id.buffer as ArrayBuffer, envelope.buffer as ArrayBuffer] : [id.buffer as ArrayBuffer]);
    });
    message = { seq: job.seq, size };
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    message = { seq: job.seq, error: { message: e.message, code: e.code } };
  }
  port.postMessage(message);
});
