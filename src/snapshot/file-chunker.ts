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
import type { ChunkerParams } from '../chunker/index.js';
import type { EntryStat } from '../fsx/index.js';
import type { CompressionSettings } from '../repo/compression.js';
import type { MasterKeys } from '../repo/crypto.js';
import type { ChunkedPiece } from './file-chunks.js';
import type { KnownBlobFilter } from './known-blobs.js';
import { type PooledWorker, WorkerPool, workerCount, workerScript } from '../repo/worker-pool.js';

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
  /** A file done: its size, its SHA-256 (hex: a short string crosses threads cheaper than a buffer) and what was read. */
  | { seq: number; size: number; sha256: string; replacedBy?: EntryStat }
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

/** What became of one file. */
export interface ChunkOutcome {
  /** Bytes read. */
  size: number;
  /** Plain SHA-256 of the bytes read. */
  sha256: Buffer;
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

/**
 * On a WorkerPool (src/repo/worker-pool.ts), which starts, keeps alive, fails and stops the
 * workers; the messages, the credit and the table of files in progress are this class's own.
 * A worker's load is the number of files it has.
 */
export class FileChunkerPool {
  private readonly pool: WorkerPool<ChunkJob[], ChunkBatch>;
  /** Per worker (by number): the credit it shares with this thread. */
  private readonly credits: Int32Array[] = [];
  /** Per worker (by number): jobs asked for in this turn of the event loop, posted together at its end. */
  private readonly queued: ChunkJob[][] = [];
  private readonly jobs = new Map<number, Job>();
  private seq = 0;

  constructor(keys: MasterKeys, compression: CompressionSettings, params: ChunkerParams, known: KnownBlobFilter | undefined, count = Math.max(1, workerCount())) {
    this.pool = new WorkerPool({
      name: 'file chunker',
      script: workerScript('snapshot/chunk-worker.js'),
      size: count,
      // The archiver makes the pool when the first file is to be read, or at once when every file will be.
      eager: true,
      workerData: (index): ChunkWorkerInit => {
        const credit = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
        credit[0] = CREDIT_BYTES;
        this.credits[index] = credit;
        this.queued[index] = [];
        return { keys: keys.serialize(), compression, params, credit: credit.buffer as SharedArrayBuffer, known: known?.shared };
      },
      onMessage: (worker, batch) => {
        const bytes = Buffer.from(batch.bytes);
        for (const message of batch.messages) this.receive(worker, message, bytes);
      },
      onStop: (error) => this.cancel(error),
    });
  }

  /**
   * Chunks (and, with `seal`, seals) the file at `path`, scanned as `scanned`; resolves once
   * every piece was taken in.
   */
  chunk(path: Buffer, scanned: EntryStat, options: { seal: boolean; noAtime: boolean }, onPiece: (piece: ChunkedPiece) => Promise<void>): Promise<ChunkOutcome> {
    const failure = this.pool.failure;
    if (failure) return Promise.reject(failure);
    const seq = this.seq++;
    const worker = this.pool.pick();
    this.pool.acquire(worker, 1);
    return new Promise<ChunkOutcome>((resolve, reject) => {
      this.jobs.set(seq, { onPiece, chain: Promise.resolve(), resolve, reject });
      const queued = this.queued[worker.index]!;
      if (queued.length === 0) setImmediate(() => this.post(worker));
      queued.push({ seq, path: path.toString('latin1'), seal: options.seal, noAtime: options.noAtime, ino: scanned.ino, dev: scanned.dev });
    }).finally(() => this.pool.release(worker, 1));
  }

  private post(worker: PooledWorker): void {
    const jobs = this.queued[worker.index]!;
    this.queued[worker.index] = [];
    this.pool.post(worker, jobs);
  }

  private receive(worker: PooledWorker, message: ChunkMessage, bytes: Buffer): void {
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
        const credit = this.credits[worker.index]!;
        Atomics.add(credit, 0, cost);
        Atomics.notify(credit, 0);
      });
      return;
    }
    this.jobs.delete(message.seq);
    // Pieces already posted are taken in before the file ends, or fails.
    void job.chain.then(() => {
      if (job.failed !== undefined) job.reject(job.failed as Error);
      else if ('error' in message) job.reject(new FileError(message.error.message, message.error.code));
      else job.resolve({ size: message.size, sha256: Buffer.from(message.sha256, 'hex'), replacedBy: message.replacedBy });
    });
  }

  /**
   * Fails every file in progress with `error` at once, without waiting for the workers to finish
   * them (a worker may be deep in a large file, or waiting for a lease on one); close() then
   * stops the workers. Also what becomes of the files in progress when a worker dies.
   */
  cancel(error: Error): void {
    for (const job of this.jobs.values()) job.reject(error);
    this.jobs.clear();
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
