/**
 * Reading blobs in bulk, for restore: a run of blobs of one pack is fetched with one ranged read,
 * then every blob of it is authenticated (AES-GCM), decoded (zstd) and re-hashed against its id,
 * and only then written where it is wanted (file descriptor + position). A blob that fails any
 * check is never written; the error names the pack, as IndexedRepository.loadBlob's do.
 *
 * The costly half (decrypt, decompress, hash, write) runs in worker threads when the compiled
 * worker script exists (this very module, as .js: the CLI runs from dist/), else inline on the
 * calling thread (library use, tests run from the TypeScript sources). Either way it is the same
 * function, `openRun`. A worker writes with positional writes to descriptors the caller opened:
 * the caller must keep a descriptor open until every run writing to it has settled.
 */
import { existsSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { PayloadCodec, type CompressionSettings } from './compression.js';
import { type BlobType, MasterKeys, constantTimeEqual } from './crypto.js';
import { openBlob } from './envelope.js';
import type { IndexedRepository } from './repository.js';

/** Where one blob's plaintext goes. */
export interface BlobWrite {
  fd: number;
  position: number;
}

/** One blob of a run: its place in the pack (from the index) and where to write it. */
export interface RunBlob {
  type: BlobType;
  id: Buffer;
  /** Offset of the envelope in the pack. */
  offset: number;
  /** Bytes of the envelope. */
  length: number;
  rawLength: number;
  writes: readonly BlobWrite[];
}

/** What became of one blob: written, left out because it is all zeros (`hole`), or failed. */
export interface BlobOutcome {
  error?: Error;
  hole?: boolean;
}

/** A range of one pack to read with one request, and the blobs it holds (sorted by offset). */
export interface PlannedRun<T> {
  packId: Buffer;
  offset: number;
  length: number;
  blobs: T[];
}

/**
 * Groups blobs by pack, sorts them by offset and merges neighbours into runs: a blob joins the
 * run before it when the gap between them is at most `maxGap` bytes (read and thrown away) and
 * the run stays within `maxBytes` (a single larger blob makes a run of its own). Blobs at the
 * same offset (the same blob wanted twice) must have been merged by the caller.
 */
export function planRuns<T extends { packId: Buffer; offset: number; length: number }>(blobs: Iterable<T>, maxGap: number, maxBytes: number): PlannedRun<T>[] {
  const byPack = new Map<string, T[]>();
  for (const blob of blobs) {
    const key = blob.packId.toString('hex');
    let list = byPack.get(key);
    if (!list) byPack.set(key, (list = []));
    list.push(blob);
  }
  const runs: PlannedRun<T>[] = [];
  for (const list of byPack.values()) {
    list.sort((a, b) => a.offset - b.offset);
    let run: PlannedRun<T> | undefined;
    for (const blob of list) {
      const end = blob.offset + blob.length;
      if (run && blob.offset - (run.offset + run.length) <= maxGap && end - run.offset <= maxBytes) {
        run.length = Math.max(run.length, end - run.offset);
        run.blobs.push(blob);
      } else {
        run = { packId: blob.packId, offset: blob.offset, length: blob.length, blobs: [blob] };
        runs.push(run);
      }
    }
  }
  return runs;
}

// ---- the work itself: the same on a worker and inline ------------------------------------------

interface WireBlob {
  type: BlobType;
  id: Uint8Array;
  /** Offset of the envelope in the buffer. */
  at: number;
  length: number;
  rawLength: number;
  fds: number[];
  positions: number[];
}

interface WireResult {
  error?: string;
  hole?: boolean;
}

/** A blob that decrypted but whose plaintext does not re-hash to its id (same wording as loadBlob). */
class DamagedBlobError extends Error {
  constructor(packHex: string, type: BlobType, idHex: string) {
    super(`data/${packHex}: ${type} blob ${idHex} does not hash to its id`);
    this.name = 'DamagedFileError';
  }
}

let zeros = Buffer.alloc(0);

function isZero(data: Buffer): boolean {
  if (data.length === 0 || data[0] !== 0) return false;
  if (zeros.length < data.length) zeros = Buffer.alloc(data.length);
  return data.equals(zeros.subarray(0, data.length));
}

function writeAllSync(fd: number, data: Buffer, position: number): void {
  for (let done = 0; done < data.length; ) {
    const n = writeSync(fd, data, done, data.length - done, position + done);
    if (n <= 0) throw new Error(`write made no progress at offset ${position + done}`);
    done += n;
  }
}

/**
 * Opens, checks and writes every blob of one run held in `buf`. Each blob stands alone: a
 * damaged one fails (and is not written) without stopping the others.
 */
function openRun(keys: MasterKeys, codec: PayloadCodec, packHex: string, buf: Uint8Array, blobs: readonly WireBlob[]): WireResult[] {
  const results: WireResult[] = [];
  for (const blob of blobs) {
    const id = Buffer.from(blob.id.buffer, blob.id.byteOffset, blob.id.byteLength);
    const idHex = id.toString('hex');
    try {
      const what = `${blob.type} blob ${idHex} in data/${packHex}`;
      if (blob.at + blob.length > buf.length) throw new Error(`${what}: lies beyond the bytes read`);
      const plaintext = codec.decode(openBlob(keys, blob.type, id, buf.subarray(blob.at, blob.at + blob.length), what), what);
      if (plaintext.length !== blob.rawLength || !constantTimeEqual(keys.blobId(plaintext), id)) throw new DamagedBlobError(packHex, blob.type, idHex);
      // Verified: now, and only now, its bytes may be written. All-zero blobs are left as holes.
      if (isZero(plaintext)) {
        results.push({ hole: true });
        continue;
      }
      for (let i = 0; i < blob.fds.length; i++) writeAllSync(blob.fds[i]!, plaintext, blob.positions[i]!);
      results.push({});
    } catch (error) {
      results.push({ error: (error as Error).message });
    }
  }
  return results;
}

// ---- worker side -------------------------------------------------------------------------------

interface WorkerInit {
  bhBlobReader: true;
  master: Uint8Array;
  compression: CompressionSettings;
}

interface RunRequest {
  seq: number;
  packHex: string;
  buf: Uint8Array;
  blobs: WireBlob[];
}

interface RunResponse {
  seq: number;
  results: WireResult[];
}

if (!isMainThread && (workerData as Partial<WorkerInit> | undefined)?.bhBlobReader === true) {
  const init = workerData as WorkerInit;
  const keys = new MasterKeys(Buffer.from(init.master));
  const codec = new PayloadCodec(init.compression);
  const port = parentPort!;
  port.on('message', (request: RunRequest) => {
    let results: WireResult[];
    try {
      results = openRun(keys, codec, request.packHex, request.buf, request.blobs);
    } catch (error) {
      results = request.blobs.map(() => ({ error: (error as Error).message }));
    }
    const response: RunResponse = { seq: request.seq, results };
    port.postMessage(response);
  });
}

// ---- caller side -------------------------------------------------------------------------------

const WORKER_SCRIPT = fileURLToPath(new URL('./blob-reader.js', import.meta.url));

interface Runner {
  run(packHex: string, buf: Buffer, blobs: WireBlob[]): Promise<WireResult[]>;
  close(): Promise<void>;
}

class InlineRunner implements Runner {
  private readonly codec: PayloadCodec;

  constructor(private readonly keys: MasterKeys, compression: CompressionSettings) {
    this.codec = new PayloadCodec(compression);
  }

  run(packHex: string, buf: Buffer, blobs: WireBlob[]): Promise<WireResult[]> {
    return Promise.resolve(openRun(this.keys, this.codec, packHex, buf, blobs));
  }

  async close(): Promise<void> {}
}

class WorkerRunner implements Runner {
  private readonly workers: Worker[] = [];
  /** Bytes handed to each worker and not answered yet. */
  private readonly load: number[] = [];
  private readonly pending = new Map<number, { worker: number; bytes: number; resolve: (r: WireResult[]) => void; reject: (e: Error) => void }>();
  private seq = 0;
  private failure: Error | undefined;

  constructor(keys: MasterKeys, compression: CompressionSettings, count: number) {
    const init: WorkerInit = { bhBlobReader: true, master: new Uint8Array(keys.master), compression };
    for (let i = 0; i < count; i++) {
      const worker = new Worker(WORKER_SCRIPT, { workerData: init });
      worker.on('message', (response: RunResponse) => {
        const waiter = this.pending.get(response.seq);
        if (!waiter) return;
        this.pending.delete(response.seq);
        this.settle(waiter.worker, waiter.bytes);
        waiter.resolve(response.results);
      });
      worker.on('error', (error) => this.failAll(error));
      worker.on('exit', () => this.failAll(new Error('a blob reader worker stopped')));
      // An idle worker must not keep a finished command alive; a busy one must.
      worker.unref();
      this.workers.push(worker);
      this.load.push(0);
    }
  }

  run(packHex: string, buf: Buffer, blobs: WireBlob[]): Promise<WireResult[]> {
    if (this.failure) return Promise.reject(this.failure);
    let target = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.load[i]! < this.load[target]!) target = i;
    const bytes = buf.length + 1;
    if (this.load[target] === 0) this.workers[target]!.ref();
    this.load[target]! += bytes;
    const seq = this.seq++;
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { worker: target, bytes, resolve, reject });
      // Move the bytes when the buffer owns its memory (Buffer.alloc does), else copy them once.
      const owned = buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength && !(buf.buffer instanceof SharedArrayBuffer);
      const data = owned ? buf : new Uint8Array(buf);
      const request: RunRequest = { seq, packHex, buf: data, blobs };
      this.workers[target]!.postMessage(request, [data.buffer as ArrayBuffer]);
    });
  }

  private settle(worker: number, bytes: number): void {
    this.load[worker]! -= bytes;
    if (this.load[worker] === 0) this.workers[worker]!.unref();
  }

  private failAll(error: Error): void {
    this.failure ??= error;
    for (const [seq, waiter] of this.pending) {
      this.pending.delete(seq);
      this.settle(waiter.worker, waiter.bytes);
      waiter.reject(error);
    }
  }

  async close(): Promise<void> {
    this.failure ??= new Error('the blob reader is closed');
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * Reads runs of blobs of one pack and writes their verified plaintext. `BH_WORKERS` sets the
 * number of worker threads (0 = inline); by default one per core, when the worker script exists.
 */
export class BlobRunWriter {
  private readonly runner: Runner;

  constructor(private readonly repo: IndexedRepository) {
    const fromEnv = process.env['BH_WORKERS'];
    const count = fromEnv !== undefined && fromEnv !== '' ? Math.max(0, Math.floor(Number(fromEnv)) || 0) : availableParallelism();
    const compression = repo.repo.config.compression;
    this.runner = count === 0 || !existsSync(WORKER_SCRIPT) ? new InlineRunner(repo.keys, compression) : new WorkerRunner(repo.keys, compression, count);
  }

  /**
   * Reads `blobs` (of pack `packId`, sorted by offset) with one ranged read, from the first
   * blob's offset to the last one's end, and writes each verified blob to its `writes`. One
   * outcome per blob, in order; never rejects. When the ranged read fails (a pack cut short, say),
   * the blobs are read one by one, so only those that cannot be read fail.
   */
  async writeRun(packId: Buffer, blobs: readonly RunBlob[]): Promise<BlobOutcome[]> {
    if (blobs.length === 0) return [];
    const packHex = packId.toString('hex');
    const start = blobs[0]!.offset;
    let end = start;
    for (const blob of blobs) end = Math.max(end, blob.offset + blob.length);
    let buf: Buffer;
    try {
      buf = await this.repo.repo.backend.read({ type: 'data', name: packHex }, { offset: start, length: end - start });
    } catch (error) {
      if (blobs.length === 1) return [{ error: error as Error }];
      const each = await Promise.all(blobs.map((blob) => this.writeRun(packId, [blob])));
      return each.flat();
    }
    const wire: WireBlob[] = blobs.map((b) => ({
      type: b.type,
      // A copy: an id may be a view into a pooled buffer, which would be cloned whole.
      id: new Uint8Array(b.id),
      at: b.offset - start,
      length: b.length,
      rawLength: b.rawLength,
      fds: b.writes.map((w) => w.fd),
      positions: b.writes.map((w) => w.position),
    }));
    try {
      const results = await this.runner.run(packHex, buf, wire);
      return results.map((r) => (r.error !== undefined ? { error: new Error(r.error) } : { hole: r.hole === true }));
    } catch (error) {
      return blobs.map(() => ({ error: error as Error }));
    }
  }

  /** Stops the worker threads (after every run has settled). */
  close(): Promise<void> {
    return this.runner.close();
  }
}
