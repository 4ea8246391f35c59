/**
 * A pool of worker threads that turn files into sealed chunks (src/snapshot/file-chunks.ts),
 * for the archiver. Each worker takes one file at a time; pieces come back in order and are
 * handed to `onPiece` one after another, and the worker gets its credit back once `onPiece`
 * has taken them in.
 *
 * Messages go in batches both ways: the jobs asked for in one turn of the event loop go to a
 * worker as one message, and a worker posts what it has finished in one message. A source tree
 * is mostly small files of one chunk each, and a message per file and per piece cost more main
 * thread time than walking the tree.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ChunkerParams } from '../chunker/index.js';
import type { EntryStat } from '../fsx/index.js';
import type { CompressionSettings } from '../repo/compression.js';
import type { MasterKeys } from '../repo/crypto.js';
import type { ChunkedPiece } from './file-chunks.js';
import type { KnownBlobFilter } from './known-blobs.js';
import { WORKER_RESOURCE_LIMITS, workerCount } from '../repo/blob-sealer.js';

export interface ChunkWorkerInit {
  /** MasterKeys.serialize() of the repository. */
  keys: Uint8Array;
  compression: CompressionSettings;
  params: ChunkerParams;
  credit: SharedArrayBuffer;
  /** KnownBlobFilter.shared, when the repository had data blobs. */
  known: SharedArrayBuffer | undefined;
}

export interface ChunkJob {
  seq: number;
  /**
   * The path's bytes as a latin1 string: one char per byte, so any name survives, and strings
   * cross threads several times cheaper than a typed array each.
   */
  path: string;
  seal: boolean;
  noAtime: boolean;
  /** Inode and device of the file when it was scanned. */
  ino: bigint;
  dev: bigint;
}

/**
 * A piece of a file: its id (32 bytes) at `at` in its batch's buffer, then `length` bytes of
 * its envelope (`sealed`) or of the chunk itself (`plain`: the repository probably has it), or
 * nothing (`hashed`: a dry run).
 */
export interface PieceRecord {
  at: number;
  form: 'sealed' | 'plain' | 'hashed';
  length: number;
  rawLength: number;
}

export type ChunkMessage =
  | { seq: number; piece: PieceRecord }
  | { seq: number; size: number; replacedBy?: EntryStat }
  | { seq: number; error: { message: string; code: string | undefined } };

/**
 * What a worker posts: messages in the order they happened, and one buffer (moved, not
 * copied) holding the ids and envelopes of all their pieces.
 */
export interface ChunkBatch {
  messages: ChunkMessage[];
  bytes: ArrayBuffer;
}

export const ID_SIZE = 32;

/**
 * Piece bytes (envelopes, plaintexts) a worker may have posted and the main thread not yet
 * taken in. A single piece larger than this (an incompressible chunk of the maximum size) goes
 * once the credit is whole again, that is, alone.
 */
export const CREDIT_BYTES = 8 * 1024 * 1024;

/**
 * The compiled worker. From dist/snapshot/ this is the file beside this one; from the
 * TypeScript sources (tests) it is the build that the test setup made, same path from the root.
 */
const WORKER_SCRIPT = fileURLToPath(new URL('../../dist/snapshot/chunk-worker.js', import.meta.url));

/** What became of one file. */
export interface ChunkOutcome {
  /** Bytes read. */
  size: number;
  /**
   * The lstat-like fields of the file that was read, when it is not the one scanned (another
   * regular file renamed over it in between): the snapshot records what was read.
   */
  replacedBy?: EntryStat | undefined;
}

interface Job {
  onPiece: (piece: ChunkedPiece) => Promise<void>;
  /** Pieces are taken in one after another, in order. */
  chain: Promise<void>;
  /** The first error of onPiece; later pieces are dropped (their credit still returned). */
  failed?: unknown;
  resolve: (outcome: ChunkOutcome) => void;
  reject: (error: Error) => void;
}

class FileError extends Error {
  constructor(message: string, readonly code: string | undefined) {
    super(message);
    this.name = 'FileError';
  }
}

interface WorkerSlot {
  worker: Worker;
  credit: Int32Array;
  jobs: number;
  /** Jobs asked for in this turn of the event loop, posted together at its end. */
  queued: ChunkJob[];
}

export class FileChunkerPool {
  private readonly workers: WorkerSlot[] = [];
  private readonly jobs = new Map<number, Job>();
  private seq = 0;

  constructor(keys: MasterKeys, compression: CompressionSettings, params: ChunkerParams, known: KnownBlobFilter | undefined, count = Math.max(1, workerCount())) {
    if (!existsSync(WORKER_SCRIPT)) throw new Error(`bh's worker script ${WORKER_SCRIPT} is missing: run 'npm run build'`);
    for (let i = 0; i < count; i++) {
      const creditBuffer = new SharedArrayBuffer(4);
      const credit = new Int32Array(creditBuffer);
      credit[0] = CREDIT_BYTES;
      const init: ChunkWorkerInit = { keys: keys.serialize(), compression, params, credit: creditBuffer, known: known?.shared };
      const worker = new Worker(WORKER_SCRIPT, { workerData: init, resourceLimits: WORKER_RESOURCE_LIMITS });
      const slot: WorkerSlot = { worker, credit, jobs: 0, queued: [] };
      worker.on('message', (batch: ChunkBatch) => {
        const bytes = Buffer.from(batch.bytes);
        for (const message of batch.messages) this.receive(slot, message, bytes);
      });
      worker.on('error', (error) => {
        for (const job of this.jobs.values()) job.reject(error);
        this.jobs.clear();
      });
      worker.unref();
      this.workers.push(slot);
    }
  }

  /**
   * Chunks (and, with `seal`, seals) the file at `path`, scanned as `scanned`; resolves once
   * every piece was taken in.
   */
  chunk(path: Buffer, scanned: EntryStat, options: { seal: boolean; noAtime: boolean }, onPiece: (piece: ChunkedPiece) => Promise<void>): Promise<ChunkOutcome> {
    const seq = this.seq++;
    const slot = this.workers.reduce((best, w) => (w.jobs < best.jobs ? w : best));
    // A busy worker keeps the process alive; an idle one must not.
    if (slot.jobs++ === 0) slot.worker.ref();
    return new Promise<ChunkOutcome>((resolve, reject) => {
      this.jobs.set(seq, { onPiece, chain: Promise.resolve(), resolve, reject });
      if (slot.queued.length === 0) setImmediate(() => this.post(slot));
      slot.queued.push({ seq, path: path.toString('latin1'), seal: options.seal, noAtime: options.noAtime, ino: scanned.ino, dev: scanned.dev });
    }).finally(() => {
      if (--slot.jobs === 0) slot.worker.unref();
    });
  }

  private post(slot: WorkerSlot): void {
    const jobs = slot.queued;
    slot.queued = [];
    slot.worker.postMessage(jobs);
  }

  private receive(slot: WorkerSlot, message: ChunkMessage, bytes: Buffer): void {
    const job = this.jobs.get(message.seq);
    if (!job) return;
    if ('piece' in message) {
      const { at, form, length, rawLength } = message.piece;
      const cost = length;
      // The id is copied out: it lives on in the index and in trees, and a view would keep the
      // whole batch buffer alive after its envelopes were written.
      const piece: ChunkedPiece = { id: Buffer.from(bytes.subarray(at, at + ID_SIZE)), rawLength };
      const body = bytes.subarray(at + ID_SIZE, at + ID_SIZE + length);
      if (form === 'sealed') piece.envelope = body;
      else if (form === 'plain') piece.plaintext = body;
      job.chain = job.chain.then(async () => {
        if (job.failed === undefined) {
          try {
            await job.onPiece(piece);
          } catch (error) {
            job.failed = error;
          }
        }
        Atomics.add(slot.credit, 0, cost);
        Atomics.notify(slot.credit, 0);
      });
      return;
    }
    this.jobs.delete(message.seq);
    // Pieces already posted are taken in before the file ends, or fails.
    void job.chain.then(() => {
      if (job.failed !== undefined) job.reject(job.failed as Error);
      else if ('error' in message) job.reject(new FileError(message.error.message, message.error.code));
      else job.resolve({ size: message.size, replacedBy: message.replacedBy });
    });
  }

  /**
   * Fails every file in progress with `error` at once, without waiting for the workers to finish
   * them (a worker may be deep in a large file, or waiting for a lease on one); close() then
   * stops the workers.
   */
  cancel(error: Error): void {
    for (const job of this.jobs.values()) job.reject(error);
    this.jobs.clear();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map(({ worker }) => worker.terminate()));
  }
}
