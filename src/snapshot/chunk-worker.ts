/**
 * Worker thread body for FileChunkerPool (src/snapshot/file-chunker.ts): chunks whole files
 * with chunkFile, waiting for credit (bytes the main thread has taken in) so that a slow
 * repository bounds the memory a fast disk could fill. Finished pieces and files are posted in
 * batches: when a batch is large, before waiting for credit, and when the jobs at hand are done.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PayloadCodec } from '../repo/compression.js';
import { MasterKeys } from '../repo/crypto.js';
import { chunkFile } from './file-chunks.js';
import { KnownBlobFilter } from './known-blobs.js';
import { gearTable } from '../chunker/index.js';
import { type ChunkBatch, type ChunkJob, type ChunkMessage, type ChunkWorkerInit, CREDIT_BYTES, ID_SIZE } from './file-chunker.js';

const init = workerData as ChunkWorkerInit;
const keys = MasterKeys.deserialize(init.keys);
const codec = new PayloadCodec(init.compression);
const gear = gearTable(keys.chunkerSeed);
const credit = new Int32Array(init.credit);
const known = init.known && new KnownBlobFilter(init.known);
const port = parentPort!;

/**
 * Messages, bytes and age past which a batch is posted at once. The age bound keeps the main
 * thread fed while this worker works through a long list of jobs.
 */
const BATCH_MESSAGES = 64;
const BATCH_BYTES = 4 * 1024 * 1024;
const BATCH_MS = 2;

let messages: ChunkMessage[] = [];
let parts: Buffer[] = [];
let batchBytes = 0;
let batchStart = 0;

function send(message: ChunkMessage): void {
  if (messages.length === 0) batchStart = performance.now();
  messages.push(message);
  if (messages.length >= BATCH_MESSAGES || batchBytes >= BATCH_BYTES || performance.now() - batchStart >= BATCH_MS) flush();
}

/** Posts the batch; its pieces' bytes go in one buffer of their own, moved to the main thread. */
function flush(): void {
  if (messages.length === 0) return;
  const bytes = Buffer.allocUnsafeSlow(batchBytes);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  const batch: ChunkBatch = { messages, bytes: bytes.buffer as ArrayBuffer };
  port.postMessage(batch, [batch.bytes]);
  messages = [];
  parts = [];
  batchBytes = 0;
}

function take(bytes: number): void {
  for (;;) {
    const available = Atomics.load(credit, 0);
    if (available >= bytes || available === CREDIT_BYTES) {
      Atomics.sub(credit, 0, bytes);
      return;
    }
    // The main thread can only give credit back for pieces it has been sent.
    flush();
    Atomics.wait(credit, 0, available, 1000);
  }
}

function run(job: ChunkJob): void {
  try {
    const { size, stat, sha256 } = chunkFile(Buffer.from(job.path, 'latin1'), { params: init.params, gear, keys, codec, seal: job.seal, known, noAtime: job.noAtime }, (piece) => {
      const body = piece.envelope ?? piece.plaintext;
      const length = body?.length ?? 0;
      take(length);
      const at = batchBytes;
      parts.push(piece.id);
      if (body) parts.push(body);
      batchBytes += ID_SIZE + length;
      send({ seq: job.seq, piece: { at, form: piece.envelope ? 'sealed' : piece.plaintext ? 'plain' : 'hashed', length, rawLength: piece.rawLength } });
    });
    // Another file renamed over the scanned one is read as what it is; its fields go back only then.
    const done = { seq: job.seq, size, sha256: sha256.toString('hex') };
    send(stat.ino === job.ino && stat.dev === job.dev ? done : { ...done, replacedBy: stat });
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    send({ seq: job.seq, error: { message: e.message, code: e.code } });
  }
}

port.on('message', (jobs: ChunkJob[]) => {
  for (const job of jobs) run(job);
  flush();
});
