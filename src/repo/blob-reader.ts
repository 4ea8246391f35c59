/**
 * Reading blobs in bulk, for restore and check: a run of blobs of one pack is read with one
 * ranged read, then each blob of it is opened by the blob codec (authenticated, decoded,
 * re-hashed against its id, src/repo/blob-codec.ts) and handed on as verified plaintext; a blob
 * that fails any check is never handed on, and its error names the pack. What becomes of the
 * plaintext is the caller's: restore writes it into files
 * (src/snapshot/restore/content-writer.ts).
 *
 * A RunReader does the work, on whichever thread it lives: restore's worker threads have one
 * each, the calling thread one more. Runs cross threads as numbers and bytes (WireRun). When the
 * backend keeps packs as files on this machine (Backend.localPath: the local backend, not
 * throttled), a run carries its pack's path, and the thread that processes it reads it there
 * (synchronous positional reads into a reused buffer, pack files kept open): no buffer per read
 * to allocate, fault in and hand over, no thread-pool round trip. Otherwise RunSource reads the
 * run through the backend on the calling thread (its retries, bandwidth limit and errors apply),
 * and the bytes travel with the run.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import { NotFoundError, ShortReadError } from '../backends/backend.js';
import { BlobOpener, atLeast } from './blob-codec.js';
import type { CompressionSettings } from './compression.js';
import { type BlobType, BlobTypeCode, MasterKeys } from './crypto.js';
import { DamagedFileError, MissingBlobError } from './errors.js';
import { RequestPool, movable, workerCount, workerScript } from './worker-pool.js';
import type { IndexedRepository } from './repository.js';

/** One blob of a run: its place in the pack, from the index. */
export interface RunBlob {
  type: BlobType;
  id: Buffer;
  /** Offset of the envelope in the pack. */
  offset: number;
  /** Bytes of the envelope. */
  length: number;
  rawLength: number;
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

/** A run as it crosses to another thread: numbers and bytes only. */
export interface WireRun {
  packHex: string;
  /** Where the pack is on this machine (Backend.localPath), when the backend keeps it so: read by the thread that processes the run. */
  path?: string | undefined;
  /** Offset of the run in the pack. */
  start: number;
  length: number;
  /** The run's bytes, when they were read on the calling thread (RunSource.fetch). */
  bytes?: Uint8Array;
  /** Per blob: type code, offset in the run, envelope length, raw length. */
  blobs: Float64Array;
  /** Per blob: 32 bytes of id. */
  ids: Uint8Array;
}

const BLOB_FIELDS = 4;
const TYPES_BY_CODE: BlobType[] = ['data', 'tree'];

/** Blobs in a wire run. */
export function runBlobCount(run: WireRun): number {
  return run.blobs.length / BLOB_FIELDS;
}

/** What a RunReader hands on, blob by blob, in the run's order. */
export interface RunVisitor {
  /** Blob `index` is verified: its plaintext as pieces, valid during this call only. A throw fails the blob (failed() is told). */
  verified(index: number, parts: readonly Buffer[]): void;
  /** Blob `index` could not be read, did not verify, or verified() threw. */
  failed(index: number, error: Error): void;
  /** The reader was cancelled: the blobs from `index` on are not read. */
  cancelled(index: number): void;
}

/** Pack files a RunReader keeps open. */
const MAX_OPEN_PACKS = 32;

/**
 * Reads runs on one thread and opens their blobs, with buffers reused from run to run (only one
 * run is processed at a time on a thread). Pack files read through their local path stay open,
 * up to MAX_OPEN_PACKS. A non-zero `cancelled[0]` (shared memory, set by whoever stops the work)
 * stops the reading before the next blob.
 */
export class RunReader {
  private readonly opener: BlobOpener;
  private readBuf = Buffer.alloc(0);
  /** Open pack files by path, most recently used last. */
  private readonly packs = new Map<string, number>();

  constructor(
    keys: MasterKeys,
    compression: CompressionSettings,
    /** The repository's location, for messages. */
    private readonly location: string,
    private readonly cancelled: Int32Array = new Int32Array(1),
  ) {
    this.opener = new BlobOpener(keys, compression);
  }

  /** Reads `run` (from its bytes, or its pack's path) and tells `visitor` about each of its blobs, in order. */
  read(run: WireRun, visitor: RunVisitor): void {
    const count = runBlobCount(run);
    if (Atomics.load(this.cancelled, 0) !== 0) return visitor.cancelled(0);
    let bytes: Uint8Array;
    let got: number;
    try {
      if (run.bytes) {
        bytes = run.bytes;
        got = bytes.length;
      } else {
        ({ bytes, got } = this.readLocal(run.path!, run.packHex, run.start, run.length));
      }
    } catch (error) {
      for (let i = 0; i < count; i++) visitor.failed(i, error as Error);
      return;
    }
    for (let i = 0; i < count; i++) {
      if (Atomics.load(this.cancelled, 0) !== 0) return visitor.cancelled(i);
      const b = i * BLOB_FIELDS;
      const at = run.blobs[b + 1]!;
      const length = run.blobs[b + 2]!;
      const id = Buffer.from(run.ids.buffer, run.ids.byteOffset + i * 32, 32);
      try {
        if (at + length > got) throw new ShortReadError(this.location, { type: 'data', name: run.packHex }, run.start + at + length, run.start + got);
        visitor.verified(i, this.opener.openParts(TYPES_BY_CODE[run.blobs[b]!]!, id, bytes.subarray(at, at + length), run.packHex, run.blobs[b + 3]!));
      } catch (error) {
        visitor.failed(i, error as Error);
      }
    }
  }

  /** One blob of the pack at `path`, read and checked on this thread; the plaintext is the caller's. */
  load(type: BlobType, id: Buffer, packHex: string, path: string, where: { offset: number; length: number; rawLength: number }): Buffer {
    const { bytes, got } = this.readLocal(path, packHex, where.offset, where.length);
    if (got < where.length) throw new ShortReadError(this.location, { type: 'data', name: packHex }, where.offset + where.length, where.offset + got);
    return this.opener.open(type, id, bytes.subarray(0, where.length), packHex, where.rawLength);
  }

  /** Reads [start, start + length) of a pack into the reused buffer; `got` is short when the pack is. */
  private readLocal(path: string, packHex: string, start: number, length: number): { bytes: Buffer; got: number } {
    const fd = this.pack(path, packHex);
    this.readBuf = atLeast(this.readBuf, length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, this.readBuf, got, length - got, start + got);
      if (n === 0) break;
      got += n;
    }
    return { bytes: this.readBuf, got };
  }

  private pack(path: string, packHex: string): number {
    let fd = this.packs.get(path);
    if (fd !== undefined) {
      this.packs.delete(path);
      this.packs.set(path, fd);
      return fd;
    }
    try {
      // O_NONBLOCK: a FIFO planted under a pack's name must not block this thread for ever.
      fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw MissingBlobError.packGone(this.location, packHex, error);
      throw error;
    }
    if (!fstatSync(fd).isFile()) {
      closeSync(fd);
      throw new DamagedFileError(`data/${packHex}`, 'is not a regular file (planted: remove it)');
    }
    this.packs.set(path, fd);
    if (this.packs.size > MAX_OPEN_PACKS) {
      const [oldest, oldFd] = this.packs.entries().next().value as [string, number];
      this.packs.delete(oldest);
      closeSync(oldFd);
    }
    return fd;
  }

  close(): void {
    for (const fd of this.packs.values()) closeSync(fd);
    this.packs.clear();
  }
}

/**
 * Where the runs of one IndexedRepository come from, on the calling thread: runs carry their
 * pack's local path when the backend has one, else their bytes, read here through the backend.
 * Also loads single blobs (trees) the fast way, on this thread.
 */
export class RunSource {
  /** This thread's reader: for single blobs, and for runs the caller processes here. */
  readonly reader: RunReader;

  /** `cancelled` stops this thread's reader, as for RunReader. */
  constructor(private readonly repo: IndexedRepository, cancelled?: Int32Array) {
    this.reader = new RunReader(repo.keys, repo.repo.config.compression, repo.repo.location, cancelled);
  }

  /**
   * Whether runs are read by whichever thread processes them, from the pack files: a run waiting
   * to be processed holds no memory then, only its description. Otherwise fetch() reads (and
   * holds) its bytes.
   */
  get local(): boolean {
    return this.repo.repo.backend.localPath !== undefined;
  }

  /** The run of `blobs` (of one pack, sorted by offset) as it crosses threads; without bytes until fetch(). */
  wire(packId: Buffer, blobs: readonly RunBlob[]): WireRun {
    const packHex = packId.toString('hex');
    const start = blobs[0]!.offset;
    let end = start;
    for (const blob of blobs) end = Math.max(end, blob.offset + blob.length);
    const run: WireRun = {
      packHex,
      path: this.repo.repo.backend.localPath?.({ type: 'data', name: packHex }),
      start,
      length: end - start,
      blobs: new Float64Array(blobs.length * BLOB_FIELDS),
      ids: new Uint8Array(blobs.length * 32),
    };
    blobs.forEach((blob, i) => {
      const at = i * BLOB_FIELDS;
      run.blobs[at] = BlobTypeCode[blob.type];
      run.blobs[at + 1] = blob.offset - start;
      run.blobs[at + 2] = blob.length;
      run.blobs[at + 3] = blob.rawLength;
      run.ids.set(blob.id, i * 32);
    });
    return run;
  }

  /** Reads the bytes of a run that has no local path through the backend; `signal` gives the read up. */
  async fetch(run: WireRun, signal?: AbortSignal): Promise<void> {
    let bytes: Buffer;
    try {
      bytes = await this.repo.repo.backend.read({ type: 'data', name: run.packHex }, { offset: run.start, length: run.length }, signal);
    } catch (error) {
      if (error instanceof NotFoundError) throw MissingBlobError.packGone(this.repo.repo.location, run.packHex, error);
      throw error;
    }
    // Moved to a worker when the buffer owns its memory (Buffer.alloc does), else copied once.
    const owned = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && !(bytes.buffer instanceof SharedArrayBuffer);
    run.bytes = owned ? bytes : new Uint8Array(bytes);
  }

  /**
   * A blob's plaintext, authenticated and re-hashed against its id, like
   * IndexedRepository.loadBlob (same errors); from a local pack file it is read and checked
   * right here, without a round trip through the thread pool.
   */
  async loadBlob(type: BlobType, id: Buffer): Promise<Buffer> {
    const backend = this.repo.repo.backend;
    if (!backend.localPath) return this.repo.loadBlob(type, id);
    const where = this.repo.index.lookup(type, id);
    if (!where) throw MissingBlobError.notIndexed(type, id);
    const packHex = where.packId.toString('hex');
    return this.reader.load(type, id, packHex, backend.localPath({ type: 'data', name: packHex }), where);
  }

  /** Closes this thread's pack files. */
  close(): void {
    this.reader.close();
  }
}

/** What a blob-load worker is asked: one blob, from its pack file on this machine or from the bytes read here. */
export interface BlobLoadRequest {
  typeCode: number;
  id: Uint8Array;
  packHex: string;
  /** The pack's local path (the worker reads the blob there), or … */
  path?: string | undefined;
  /** … the blob's envelope, read through the backend on the calling thread. */
  envelope?: Uint8Array | undefined;
  offset: number;
  length: number;
  rawLength: number;
}

/** The worker's answer: the checked plaintext, or why the pack file was not there. */
export type BlobLoadAnswer = { plaintext: Uint8Array } | { packGone: string };

export interface BlobLoadWorkerInit {
  keys: Uint8Array;
  compression: CompressionSettings;
  location: string;
}

/** Serves one BlobLoadRequest on a worker thread (src/repo/blob-load-worker.ts). */
export function serveBlobLoad(reader: RunReader, opener: BlobOpener, request: BlobLoadRequest): BlobLoadAnswer {
  const type = TYPES_BY_CODE[request.typeCode]!;
  const id = Buffer.from(request.id);
  try {
    const plaintext = request.path
      ? reader.load(type, id, request.packHex, request.path, request)
      : opener.open(type, id, request.envelope!, request.packHex, request.rawLength);
    return { plaintext: movable(plaintext) };
  } catch (error) {
    if (error instanceof MissingBlobError) return { packGone: error.message };
    throw error;
  }
}

/**
 * Single blobs opened on worker threads, many at a time: for a reader that wants the plaintext
 * of many blobs on the calling thread and must not spend that thread on decryption (`bh mount`
 * answers the kernel there). From a local pack file the worker reads the blob itself (pack
 * files kept open there); otherwise the envelope is read here, through the backend, and moved
 * to the worker. Errors are the blob codec's, by message (EIO to a mount's reader); a pack that
 * is gone is a MissingBlobError as with loadBlob. Blobs smaller than INLINE_BLOB_BYTES, and all
 * of them with BH_WORKERS=0, are opened on the calling thread (as RunSource.loadBlob does): for
 * them a round trip to a worker costs more than the work.
 */
export class BlobLoader {
  private readonly pool: RequestPool<BlobLoadRequest, BlobLoadAnswer> | undefined;
  /** This thread's reader, for the small blobs of local pack files. */
  private readonly reader: RunReader;

  /**
   * `current` is the index to look blobs up in: it may be replaced (a reader that reloads the
   * index) without stopping the workers or failing the loads under way.
   */
  constructor(private readonly current: () => IndexedRepository, workers = workerCount()) {
    const repo = current();
    this.reader = new RunReader(repo.keys, repo.repo.config.compression, repo.repo.location);
    const init: BlobLoadWorkerInit = { keys: repo.keys.serialize(), compression: repo.repo.config.compression, location: repo.repo.location };
    if (workers > 0) this.pool = new RequestPool({ name: 'blob loader', script: workerScript('repo/blob-load-worker.js'), size: workers, workerData: () => init });
  }

  async loadBlob(type: BlobType, id: Buffer): Promise<Buffer> {
    const repo = this.current();
    const where = repo.index.lookup(type, id);
    if (!where) throw MissingBlobError.notIndexed(type, id);
    const packHex = where.packId.toString('hex');
    const backend = repo.repo.backend;
    const path = backend.localPath?.({ type: 'data', name: packHex });
    if (!this.pool || where.length < INLINE_BLOB_BYTES) return path ? this.reader.load(type, id, packHex, path, where) : repo.loadBlob(type, id);
    const request: BlobLoadRequest = { typeCode: BlobTypeCode[type], id: new Uint8Array(id), packHex, path, offset: where.offset, length: where.length, rawLength: where.rawLength };
    if (!path) {
      try {
        request.envelope = movable(await backend.read({ type: 'data', name: packHex }, { offset: where.offset, length: where.length }));
      } catch (error) {
        if (error instanceof NotFoundError) throw MissingBlobError.packGone(repo.repo.location, packHex, error);
        throw error;
      }
    }
    const answer = await this.pool.request(request, request.envelope ? [request.envelope.buffer as ArrayBuffer] : [], where.length);
    if ('packGone' in answer) throw MissingBlobError.packGone(repo.repo.location, packHex);
    return Buffer.from(answer.plaintext.buffer, answer.plaintext.byteOffset, answer.plaintext.byteLength);
  }

  async close(): Promise<void> {
    this.reader.close();
    await this.pool?.close();
  }
}

/** Blobs smaller than this are opened on the calling thread by a BlobLoader. */
const INLINE_BLOB_BYTES = 128 * 1024;
