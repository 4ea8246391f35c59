/**
 * Reading blobs in bulk, for restore: a run of blobs of one pack is fetched with one ranged read,
 * then every blob of it is authenticated (AES-GCM), decoded (zstd) and re-hashed against its id,
 * and only then written where it is wanted (file descriptor + position). A blob that fails any
 * check is never written; the error names the pack, as IndexedRepository.loadBlob's do.
 *
 * The costly part (read, decrypt, decompress, hash, write) runs in worker threads (this very
 * module, compiled: src/repo/worker-pool.ts), or inline on the calling thread when there are
 * none (a small restore, BH_WORKERS=0). Either way it is the same code. A worker writes with positional writes to descriptors the caller opened: the
 * caller must keep a descriptor open until every run writing to it has settled.
 *
 * Packs of a local repository are read by the workers themselves (synchronous positional reads
 * into a reused buffer, pack files kept open): no buffer per read to allocate, fault in and hand
 * over, and no thread-pool round trip on the caller's thread. Other backends are read through
 * Backend.read on the caller's thread, and the bytes are moved to a worker.
 *
 * When the caller's signal aborts (Ctrl-C during a restore), nothing more is written: reads under
 * way are given up, queued jobs are dropped, and every thread checks a shared flag before each
 * blob, so a worker stops within one blob rather than after the jobs it holds.
 */
import { createDecipheriv, createHmac } from 'node:crypto';
import { closeSync, openSync, readSync, writeSync, writevSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { isMainThread, workerData } from 'node:worker_threads';
import { LocalBackend } from '../backends/local.js';
import { PAYLOAD_RAW, PayloadCodec, type CompressionSettings } from './compression.js';
import { RequestPool, answerRequests, workerCount, workerScript } from './worker-pool.js';
import { AuthenticationError, type BlobType, BlobTypeCode, MasterKeys, NONCE_SIZE, TAG_SIZE, constantTimeEqual } from './crypto.js';
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

/** What became of one blob: written, left out because it is all zeros (`hole`), failed, or not written because the signal aborted (`cancelled`). */
export interface BlobOutcome {
  error?: Error;
  hole?: boolean;
  cancelled?: boolean;
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

/** A run as it crosses to a worker: numbers and bytes only. */
interface WireRun {
  packHex: string;
  /** Offset of the run in the pack. */
  start: number;
  length: number;
  /** The run's bytes, when the caller read them (non-local backends). */
  bytes?: Uint8Array;
  /** Per blob: type code, offset in the run, envelope length, raw length, number of writes. */
  blobs: Float64Array;
  /** Per blob: 32 bytes of id. */
  ids: Uint8Array;
  /** Per write: descriptor, position (in blob order). */
  writes: Float64Array;
}

const BLOB_FIELDS = 5;
const TYPES_BY_CODE: BlobType[] = ['data', 'tree'];

interface WireResult {
  /** Per blob: 0 written, 1 hole, 2 failed (the message is in `errors`), 3 cancelled. */
  status: Uint8Array;
  errors: Record<number, string>;
}

/** Decryption slices: Node allocates each update()'s output; small slices stay in cache and are recycled. */
const SLICE = 64 * 1024;

/** A blob whose plaintext authenticated but does not re-hash to its id (or has another length). */
export class BlobIdMismatchError extends Error {
  constructor(
    packHex: string,
    /** The problem without the pack's name: "<type> blob <id> does not hash to its id". */
    readonly detail: string,
  ) {
    super(`data/${packHex}: ${detail}`);
    this.name = 'BlobIdMismatchError';
  }
}

/**
 * Opens blob envelopes on one thread: authenticates (AES-GCM), decodes (zstd) and re-hashes
 * each against its id, with buffers reused from blob to blob. Used by restore (RunProcessor)
 * and by `check --read-data` (src/repo/pack-verifier.ts).
 */
export class BlobOpener {
  private readonly codec: PayloadCodec;
  private plainBuf = Buffer.alloc(0);
  private rawBuf = Buffer.alloc(0);
  private readonly aad = Buffer.alloc(33);

  constructor(private readonly keys: MasterKeys, compression: CompressionSettings) {
    this.codec = new PayloadCodec(compression);
  }

  /**
   * A blob's plaintext, authenticated (GCM tag) and re-hashed against its id, as the pieces it
   * was decrypted in (valid until the next blob). Stored (uncompressed) payloads are hashed
   * piece by piece as they are decrypted, while in cache, and never copied; compressed ones are
   * gathered and decompressed into a reused buffer. Nothing is returned unless both checks pass.
   */
  open(type: BlobType, id: Buffer, envelope: Uint8Array, packHex: string, rawLength: number): Buffer[] {
    const what = (): string => `${type} blob ${id.toString('hex')} in data/${packHex}`;
    if (envelope.length < NONCE_SIZE + TAG_SIZE + 1) throw new AuthenticationError(what());
    this.aad[0] = BlobTypeCode[type];
    id.copy(this.aad, 1);
    const decipher = createDecipheriv('aes-256-gcm', this.keys.blobSubkey(type, id), envelope.subarray(0, NONCE_SIZE));
    decipher.setAAD(this.aad);
    decipher.setAuthTag(envelope.subarray(envelope.length - TAG_SIZE));
    const body = envelope.subarray(NONCE_SIZE, envelope.length - TAG_SIZE);
    const first = decipher.update(body.subarray(0, Math.min(SLICE, body.length)));
    let parts: Buffer[];
    let hash: Buffer | undefined;
    if (first[0] === PAYLOAD_RAW) {
      // The flag byte is not part of the plaintext.
      const hmac = createHmac('sha256', this.keys.idKey);
      parts = [first.subarray(1)];
      hmac.update(parts[0]!);
      for (let start = SLICE; start < body.length; start += SLICE) {
        const part = decipher.update(body.subarray(start, Math.min(start + SLICE, body.length)));
        hmac.update(part);
        parts.push(part);
      }
      hash = hmac.digest();
    } else {
      this.plainBuf = atLeast(this.plainBuf, body.length);
      this.plainBuf.set(first, 0);
      let size = first.length;
      for (let start = SLICE; start < body.length; start += SLICE) {
        const part = decipher.update(body.subarray(start, Math.min(start + SLICE, body.length)));
        this.plainBuf.set(part, size);
        size += part.length;
      }
      parts = [this.plainBuf.subarray(0, size)];
    }
    try {
      decipher.final();
    } catch {
      throw new AuthenticationError(what());
    }
    if (hash === undefined) {
      // Compressed (or unknown flag: decode names it): the hash is over the decoded plaintext.
      this.rawBuf = atLeast(this.rawBuf, rawLength);
      parts = [this.codec.decode(parts[0]!, what(), this.rawBuf.subarray(0, rawLength))];
      hash = this.keys.blobId(parts[0]!);
    }
    let size = 0;
    for (const part of parts) size += part.length;
    if (size !== rawLength || !constantTimeEqual(hash, id)) throw new BlobIdMismatchError(packHex, `${type} blob ${id.toString('hex')} does not hash to its id`);
    return parts;
  }
}

/** `buffer`, or a larger one (its contents lost) when it holds fewer than `length` bytes. */
function atLeast(buffer: Buffer<ArrayBuffer>, length: number): Buffer<ArrayBuffer> {
  return buffer.length >= length ? buffer : Buffer.allocUnsafeSlow(Math.max(length, 2 * buffer.length));
}

/**
 * Per-thread state of the work: keys, codec, open pack files and reused buffers. Only one run is
 * processed at a time on a thread, so the buffers can be shared by all runs.
 */
class RunProcessor {
  private readonly opener: BlobOpener;
  private readBuf = Buffer.alloc(0);
  private zeros = Buffer.alloc(0);
  /** Open pack files, most recently used last. */
  private readonly packs = new Map<string, number>();

  constructor(
    keys: MasterKeys,
    compression: CompressionSettings,
    private readonly dataDir: string | undefined,
    private readonly location: string,
    /** Shared by every thread of one BlobRunWriter: non-zero once its signal aborted. */
    private readonly cancelled: Int32Array,
  ) {
    this.opener = new BlobOpener(keys, compression);
  }

  process(run: WireRun): WireResult {
    const count = run.blobs.length / BLOB_FIELDS;
    const status = new Uint8Array(count);
    const errors: Record<number, string> = {};
    if (Atomics.load(this.cancelled, 0) !== 0) return { status: status.fill(STATUS_CANCELLED), errors };
    let bytes: Uint8Array;
    let got: number;
    try {
      if (run.bytes) {
        bytes = run.bytes;
        got = bytes.length;
      } else {
        ({ bytes, got } = this.read(run.packHex, run.start, run.length));
      }
    } catch (error) {
      status.fill(2);
      for (let i = 0; i < count; i++) errors[i] = (error as Error).message;
      return { status, errors };
    }
    let w = 0;
    for (let i = 0; i < count; i++) {
      if (Atomics.load(this.cancelled, 0) !== 0) {
        status.fill(STATUS_CANCELLED, i);
        break;
      }
      const b = i * BLOB_FIELDS;
      const type = TYPES_BY_CODE[run.blobs[b]!]!;
      const at = run.blobs[b + 1]!;
      const length = run.blobs[b + 2]!;
      const rawLength = run.blobs[b + 3]!;
      const nWrites = run.blobs[b + 4]!;
      const writes = run.writes.subarray(w * 2, (w + nWrites) * 2);
      w += nWrites;
      const id = Buffer.from(run.ids.buffer, run.ids.byteOffset + i * 32, 32);
      try {
        if (at + length > got) {
          throw new Error(`${this.location}: data/${run.packHex} is shorter than expected (wanted ${run.start + at + length} bytes, got ${run.start + got})`);
        }
        const parts = this.opener.open(type, id, bytes.subarray(at, at + length), run.packHex, rawLength);
        // Verified: now, and only now, its bytes may be written. All-zero blobs are left as holes.
        if (parts.every((part) => this.isZero(part))) {
          status[i] = 1;
          continue;
        }
        for (let k = 0; k < writes.length; k += 2) writeAll(writes[k]!, parts, writes[k + 1]!);
      } catch (error) {
        status[i] = 2;
        errors[i] = (error as Error).message;
      }
    }
    return { status, errors };
  }

  /** One blob, read, authenticated and re-hashed on this thread; the plaintext is the caller's. */
  load(type: BlobType, id: Buffer, packHex: string, offset: number, length: number, rawLength: number): Buffer {
    const { bytes, got } = this.read(packHex, offset, length);
    if (got < length) throw new Error(`${this.location}: data/${packHex} is shorter than expected (wanted ${offset + length} bytes, got ${offset + got})`);
    const parts = this.opener.open(type, id, bytes.subarray(0, length), packHex, rawLength);
    return Buffer.concat(parts);
  }

  /** Reads [start, start + length) of a pack into the reused buffer; `got` is short when the pack is. */
  private read(packHex: string, start: number, length: number): { bytes: Buffer; got: number } {
    const fd = this.pack(packHex);
    this.readBuf = atLeast(this.readBuf, length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, this.readBuf, got, length - got, start + got);
      if (n === 0) break;
      got += n;
    }
    return { bytes: this.readBuf, got };
  }

  private pack(packHex: string): number {
    let fd = this.packs.get(packHex);
    if (fd !== undefined) {
      this.packs.delete(packHex);
      this.packs.set(packHex, fd);
      return fd;
    }
    try {
      fd = openSync(join(this.dataDir!, packHex.slice(0, 2), packHex), 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${this.location}: data/${packHex} does not exist`);
      throw error;
    }
    this.packs.set(packHex, fd);
    if (this.packs.size > MAX_OPEN_PACKS) {
      const [oldest, oldFd] = this.packs.entries().next().value as [string, number];
      this.packs.delete(oldest);
      closeSync(oldFd);
    }
    return fd;
  }

  private isZero(data: Buffer): boolean {
    if (data.length === 0 || data[0] !== 0) return false;
    if (this.zeros.length < data.length) this.zeros = Buffer.alloc(data.length);
    return data.equals(this.zeros.subarray(0, data.length));
  }

  close(): void {
    for (const fd of this.packs.values()) closeSync(fd);
    this.packs.clear();
  }
}

/** WireResult status of a blob not written because the signal aborted. */
const STATUS_CANCELLED = 3;
/** Jobs handed to a worker at once: the one it works on, and the next. */
const JOBS_PER_WORKER = 2;
/** Pack files a thread keeps open. */
const MAX_OPEN_PACKS = 32;

/** Writes `parts` one after the other from `position` (one writev, unless the kernel writes less). */
function writeAll(fd: number, parts: Buffer[], position: number): void {
  let total = 0;
  for (const part of parts) total += part.length;
  let done = parts.length === 1 ? writeSync(fd, parts[0]!, 0, total, position) : writevSync(fd, parts, position);
  if (done === total) return;
  // A short write: the rest piece by piece.
  let skip = done;
  for (const part of parts) {
    if (skip >= part.length) {
      skip -= part.length;
      continue;
    }
    for (let at = skip; at < part.length; ) {
      const n = writeSync(fd, part, at, part.length - at, position + done);
      if (n <= 0) throw new Error(`write made no progress at offset ${position + done}`);
      at += n;
      done += n;
    }
    skip = 0;
  }
}

// ---- worker side -------------------------------------------------------------------------------

interface WorkerInit {
  bhBlobReader: true;
  /** MasterKeys.serialize() of the repository. */
  keys: Uint8Array;
  compression: CompressionSettings;
  dataDir: string | undefined;
  location: string;
  /** BlobRunWriter's cancel flag, on shared memory. */
  cancelled: Int32Array;
}

/** Runs to process, or (from close()) the last request: close the pack files. */
type Request = { runs: WireRun[] } | { close: true };

interface Response {
  results?: WireResult[];
}

if (!isMainThread && (workerData as Partial<WorkerInit> | undefined)?.bhBlobReader === true) {
  const init = workerData as WorkerInit;
  const processor = new RunProcessor(MasterKeys.deserialize(init.keys), init.compression, init.dataDir, init.location, init.cancelled);
  answerRequests((request: Request): Response => {
    if ('close' in request) {
      processor.close();
      return {};
    }
    return { results: request.runs.map((run) => processor.process(run)) };
  });
}

// ---- caller side -------------------------------------------------------------------------------

/** The worker threads (src/repo/worker-pool.ts), each loaded by the bytes of the runs it holds. */
class WorkerRunner {
  private readonly pool: RequestPool<Request, Response>;

  constructor(init: WorkerInit, count: number) {
    this.pool = new RequestPool({ name: 'blob reader', script: workerScript('repo/blob-reader.js'), size: count, workerData: () => init, eager: true });
  }

  get threads(): number {
    return this.pool.size;
  }

  /** Has the least loaded worker (by bytes handed over and not answered yet) process `runs`. */
  async runJob(runs: WireRun[]): Promise<WireResult[]> {
    const bytes = runs.reduce((n, r) => n + r.length, 1);
    const transfer: ArrayBuffer[] = [];
    for (const run of runs) {
      transfer.push(run.blobs.buffer as ArrayBuffer, run.ids.buffer as ArrayBuffer, run.writes.buffer as ArrayBuffer);
      if (run.bytes) transfer.push(run.bytes.buffer as ArrayBuffer);
    }
    const response = await this.pool.request({ runs }, transfer, bytes);
    return response.results ?? [];
  }

  /** Lets each worker close its pack files, then stops it. */
  close(): Promise<void> {
    return this.pool.close({ close: true });
  }
}

/** One run to read and write: blobs of one pack, sorted by offset. */
export interface RunRequest {
  packId: Buffer;
  blobs: readonly RunBlob[];
}

/**
 * Reads runs of blobs of one pack and writes their verified plaintext. The runs of one
 * writeRuns call make a job; jobs queue here and go to the worker threads two at a time per
 * worker (the one it works on and the next), and the calling thread takes queued jobs itself
 * when it has nothing better to do (helpOnce). Also loads single blobs (trees) on the calling
 * thread.
 */
export class BlobRunWriter {
  /** Worker threads, once started; none when running inline. */
  private runner: WorkerRunner | undefined;
  private started = false;
  /** Jobs (the runs of one writeRuns call) not handed to a worker yet. */
  private readonly queue: { runs: WireRun[]; resolve: (results: WireResult[]) => void; reject: (error: unknown) => void }[] = [];
  /** Jobs handed to workers and not answered yet. */
  private atWorkers = 0;
  private readonly init: WorkerInit;
  /** Reads and checks on the calling thread: trees, the jobs it helps with, every run when inline. */
  private readonly processor: RunProcessor;

  /** Set once `signal` aborts; read by every thread before each blob. */
  private readonly cancelled = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));

  /** Once `signal` aborts, nothing more is written: see the module comment. */
  constructor(private readonly repo: IndexedRepository, private readonly signal?: AbortSignal) {
    const backend = repo.repo.backend;
    // The local layout (src/backends/local.ts): <dir>/data/<first two hex digits>/<name>.
    const dataDir = backend instanceof LocalBackend ? join(backend.location, 'data') : undefined;
    this.init = { bhBlobReader: true, keys: new Uint8Array(repo.keys.serialize()), compression: repo.repo.config.compression, dataDir, location: backend.location, cancelled: this.cancelled };
    this.processor = new RunProcessor(repo.keys, this.init.compression, dataDir, backend.location, this.cancelled);
    if (signal?.aborted) this.cancel();
    else signal?.addEventListener('abort', this.cancel, { once: true });
  }

  /** The signal aborted: every thread stops before its next blob, and queued jobs are dropped. */
  private readonly cancel = (): void => {
    Atomics.store(this.cancelled, 0, 1);
    for (const job of this.queue.splice(0)) job.resolve(job.runs.map((run) => cancelledResult(run)));
  };

  private get isCancelled(): boolean {
    return Atomics.load(this.cancelled, 0) !== 0;
  }

  private get local(): boolean {
    return this.init.dataDir !== undefined;
  }

  /**
   * Whether the workers read the packs themselves (a local repository): then a run waiting to
   * be processed holds no memory, only its description; otherwise its bytes are read (and held)
   * when it is handed over.
   */
  get readsInWorkers(): boolean {
    return this.local;
  }

  /**
   * Starts the worker threads (once): `wanted`, or one fewer than the cores, since the calling
   * thread takes jobs too when it has nothing else to do (helpOnce), and at least one. BH_WORKERS
   * overrides both. With a count of 0, every job runs inline.
   */
  start(wanted?: number): void {
    if (this.started) return;
    this.started = true;
    const count = workerCount(wanted ?? Math.max(1, availableParallelism() - 1));
    if (count > 0) this.runner = new WorkerRunner(this.init, count);
  }

  /** Runs a job: inline at once without workers, else queued for the workers (or helpOnce). */
  private schedule(runs: WireRun[]): Promise<WireResult[]> {
    this.start();
    if (!this.runner) return Promise.resolve(runs.map((run) => this.processor.process(run)));
    return new Promise((resolve, reject) => {
      this.queue.push({ runs, resolve, reject });
      this.pump();
    });
  }

  /** Keeps each worker supplied with the next job while it works on one. */
  private pump(): void {
    const runner = this.runner!;
    while (this.queue.length > 0 && this.atWorkers < runner.threads * JOBS_PER_WORKER) {
      const job = this.queue.shift()!;
      this.atWorkers++;
      runner.runJob(job.runs).then(
        (results) => {
          this.atWorkers--;
          job.resolve(results);
          this.pump();
        },
        (error: unknown) => {
          this.atWorkers--;
          job.reject(error);
          this.pump();
        },
      );
    }
  }

  /**
   * Processes one queued job on the calling thread, for a caller with nothing else to do (so
   * both cores work); false when no job is waiting.
   */
  helpOnce(): boolean {
    const job = this.queue.pop();
    if (!job) return false;
    try {
      job.resolve(job.runs.map((run) => this.processor.process(run)));
    } catch (error) {
      job.reject(error);
    }
    return true;
  }

  /**
   * A blob's plaintext, authenticated and re-hashed against its id, like
   * IndexedRepository.loadBlob (same errors); from a local repository it is read and checked
   * right here, without a round trip through the thread pool.
   */
  async loadBlob(type: BlobType, id: Buffer): Promise<Buffer> {
    if (!this.local) return this.repo.loadBlob(type, id);
    const where = this.repo.index.lookup(type, id);
    if (!where) throw new Error(`${type} blob ${id.toString('hex')} is not in the index (the repository is missing data; run 'bh check')`);
    return this.processor.load(type, id, where.packId.toString('hex'), where.offset, where.length, where.rawLength);
  }

  /**
   * Reads each run's blobs with one ranged read, from the first blob's offset to the last one's
   * end, and writes each verified blob to its `writes`. The runs are shared out among the
   * workers, one message each. One outcome per blob of each run, in order; never rejects. When
   * a pack ends early, the blobs that were read whole are still written. Once the signal has
   * aborted, blobs not written yet are `cancelled`.
   */
  async writeRuns(requests: readonly RunRequest[]): Promise<BlobOutcome[][]> {
    const wires = requests.map((r) => toWire(r));
    const outcomes: (BlobOutcome[] | undefined)[] = new Array(requests.length);
    const cancelledOutcomes = (request: RunRequest): BlobOutcome[] => request.blobs.map(() => ({ cancelled: true }));
    if (!this.local && !this.isCancelled) {
      // Read on this thread; a run that cannot be read whole is read blob by blob.
      await Promise.all(
        requests.map(async (request, i) => {
          const wire = wires[i]!;
          try {
            const bytes = await this.repo.repo.backend.read({ type: 'data', name: wire.packHex }, { offset: wire.start, length: wire.length }, this.signal);
            // Moved to the worker when the buffer owns its memory (Buffer.alloc does), else copied once.
            const owned = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && !(bytes.buffer instanceof SharedArrayBuffer);
            wire.bytes = owned ? bytes : new Uint8Array(bytes);
          } catch (error) {
            outcomes[i] = this.isCancelled
              ? cancelledOutcomes(request)
              : request.blobs.length === 1
                ? [{ error: error as Error }]
                : (await this.writeRuns(request.blobs.map((blob) => ({ packId: request.packId, blobs: [blob] })))).flat();
          }
        }),
      );
    }
    const todo = wires.map((wire, i) => ({ wire, i })).filter(({ i }) => outcomes[i] === undefined);
    if (this.isCancelled) for (const { i } of todo) outcomes[i] = cancelledOutcomes(requests[i]!);
    else if (todo.length > 0) {
      try {
        const results = await this.schedule(todo.map(({ wire }) => wire));
        todo.forEach(({ i }, k) => (outcomes[i] = fromWire(results[k]!, requests[i]!.blobs.length)));
      } catch (error) {
        for (const { i } of todo) outcomes[i] = requests[i]!.blobs.map(() => ({ error: error as Error }));
      }
    }
    return outcomes.map((o) => o!);
  }

  /** Closes pack files and stops the worker threads (after every run has settled). */
  async close(): Promise<void> {
    this.signal?.removeEventListener('abort', this.cancel);
    for (const job of this.queue.splice(0)) job.reject(new Error('the blob reader is closed'));
    await this.runner?.close();
    this.processor.close();
  }
}

function toWire(request: RunRequest): WireRun {
  const { blobs } = request;
  const start = blobs[0]!.offset;
  let end = start;
  let writeCount = 0;
  for (const blob of blobs) {
    end = Math.max(end, blob.offset + blob.length);
    writeCount += blob.writes.length;
  }
  const wire: WireRun = {
    packHex: request.packId.toString('hex'),
    start,
    length: end - start,
    blobs: new Float64Array(blobs.length * BLOB_FIELDS),
    ids: new Uint8Array(blobs.length * 32),
    writes: new Float64Array(writeCount * 2),
  };
  let w = 0;
  blobs.forEach((blob, i) => {
    const at = i * BLOB_FIELDS;
    wire.blobs[at] = BlobTypeCode[blob.type];
    wire.blobs[at + 1] = blob.offset - start;
    wire.blobs[at + 2] = blob.length;
    wire.blobs[at + 3] = blob.rawLength;
    wire.blobs[at + 4] = blob.writes.length;
    wire.ids.set(blob.id, i * 32);
    for (const write of blob.writes) {
      wire.writes[w++] = write.fd;
      wire.writes[w++] = write.position;
    }
  });
  return wire;
}

function cancelledResult(run: WireRun): WireResult {
  return { status: new Uint8Array(run.blobs.length / BLOB_FIELDS).fill(STATUS_CANCELLED), errors: {} };
}

function fromWire(result: WireResult, count: number): BlobOutcome[] {
  const out: BlobOutcome[] = [];
  for (let i = 0; i < count; i++) {
    const status = result.status[i];
    out.push(status === 2 ? { error: new Error(result.errors[i] ?? 'blob could not be restored') } : status === STATUS_CANCELLED ? { cancelled: true } : { hole: status === 1 });
  }
  return out;
}
