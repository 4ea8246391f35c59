/**
 * Writing restored content: runs of blobs are read and verified by the repository layer
 * (RunReader, src/repo/blob-reader.ts), and each verified blob is written at its places in the
 * files being restored (descriptor + position, positional writes), unless it is all zeros: then
 * it is left as a hole, so sparse files stay sparse. A blob that fails any check is never
 * written.
 *
 * The costly part (read, decrypt, decompress, hash, write) runs in worker threads (this very
 * module, compiled, on a RequestPool: src/repo/worker-pool.ts), or inline on the calling thread
 * when there are none (BH_WORKERS=0). Either way it is the same code, ContentWriter. A worker writes to descriptors the caller opened: the caller
 * must keep a descriptor open until every run writing to it has settled.
 *
 * When the caller's signal aborts (Ctrl-C during a restore), nothing more is written: reads
 * under way are given up, queued jobs are dropped, and every thread checks a shared flag before
 * each blob, so a worker stops within one blob rather than after the jobs it holds.
 */
import { writeSync, writevSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { isMainThread, workerData } from 'node:worker_threads';
import { type RunBlob, RunReader, RunSource, type WireRun, runBlobCount } from '../../repo/blob-reader.js';
import { RequestPool, answerRequests, workerCount, workerScript } from '../../repo/worker-pool.js';
import type { CompressionSettings } from '../../repo/compression.js';
import { MasterKeys } from '../../repo/crypto.js';
import type { IndexedRepository } from '../../repo/repository.js';

/** Where one blob's plaintext goes. */
export interface BlobWrite {
  fd: number;
  position: number;
}

/** One blob of a run to write: its place in the pack and where its plaintext goes. */
export interface ContentBlob extends RunBlob {
  writes: readonly BlobWrite[];
}

/** One run to read and write: blobs of one pack, sorted by offset. */
export interface RunRequest {
  packId: Buffer;
  blobs: readonly ContentBlob[];
}

/** What became of one blob: written, left out because it is all zeros (`hole`), failed, or not written because the signal aborted (`cancelled`). */
export interface BlobOutcome {
  error?: Error;
  hole?: boolean;
  cancelled?: boolean;
}

// ---- the work itself: the same on a worker and inline ------------------------------------------

/** A run as it crosses to a writing thread: the repository's run, and where each of its blobs goes. */
interface ContentRun {
  run: WireRun;
  /** Per blob, in order: the number n of places it goes, then n × (descriptor, position). */
  writes: Float64Array;
}

interface WireResult {
  /** Per blob: STATUS_WRITTEN, STATUS_HOLE, STATUS_FAILED (the message is in `errors`) or STATUS_CANCELLED. */
  status: Uint8Array;
  errors: Record<number, string>;
}

const STATUS_HOLE = 1;
const STATUS_FAILED = 2;
const STATUS_CANCELLED = 3;

/** Writes the verified blobs of runs on one thread (see the module comment). */
class ContentWriter {
  private zeros = Buffer.alloc(0);

  constructor(private readonly reader: RunReader) {}

  write({ run, writes }: ContentRun): WireResult {
    const count = runBlobCount(run);
    const status = new Uint8Array(count);
    const errors: Record<number, string> = {};
    // Where each blob's places start in `writes`.
    const places = new Uint32Array(count);
    for (let i = 0, at = 0; i < count; i++) {
      places[i] = at;
      at += 1 + 2 * writes[at]!;
    }
    this.reader.read(run, {
      verified: (i, parts) => {
        // Verified: now, and only now, its bytes may be written. All-zero blobs are left as holes.
        if (parts.every((part) => this.isZero(part))) {
          status[i] = STATUS_HOLE;
          return;
        }
        const at = places[i]!;
        for (let k = 0; k < writes[at]!; k++) writeAll(writes[at + 1 + 2 * k]!, parts, writes[at + 2 + 2 * k]!);
      },
      failed: (i, error) => {
        status[i] = STATUS_FAILED;
        errors[i] = error.message;
      },
      cancelled: (i) => void status.fill(STATUS_CANCELLED, i),
    });
    return { status, errors };
  }

  private isZero(data: Buffer): boolean {
    if (data.length === 0 || data[0] !== 0) return false;
    if (this.zeros.length < data.length) this.zeros = Buffer.alloc(data.length);
    return data.equals(this.zeros.subarray(0, data.length));
  }
}

/** Writes `parts` one after the other from `position` (one writev, unless the kernel writes less). */
function writeAll(fd: number, parts: readonly Buffer[], position: number): void {
  let total = 0;
  for (const part of parts) total += part.length;
  let done = parts.length === 1 ? writeSync(fd, parts[0]!, 0, total, position) : writevSync(fd, parts as Buffer[], position);
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
  bhContentWriter: true;
  /** MasterKeys.serialize() of the repository. */
  keys: Uint8Array;
  compression: CompressionSettings;
  location: string;
  /** ContentWriters' cancel flag, on shared memory. */
  cancelled: Int32Array;
}

/** Runs to write, or (from close()) the last request: close the pack files. */
type Request = { runs: ContentRun[] } | { close: true };

interface Response {
  results?: WireResult[];
}

if (!isMainThread && (workerData as Partial<WorkerInit> | undefined)?.bhContentWriter === true) {
  const init = workerData as WorkerInit;
  const reader = new RunReader(MasterKeys.deserialize(init.keys), init.compression, init.location, init.cancelled);
  const writer = new ContentWriter(reader);
  answerRequests((request: Request): Response => {
    if ('close' in request) {
      reader.close();
      return {};
    }
    return { results: request.runs.map((run) => writer.write(run)) };
  });
}

// ---- caller side -------------------------------------------------------------------------------

/** Jobs handed to a worker at once: the one it works on, and the next. */
const JOBS_PER_WORKER = 2;

/** The worker threads (src/repo/worker-pool.ts), each loaded by the bytes of the runs it holds. */
class WorkerRunner {
  private readonly pool: RequestPool<Request, Response>;

  constructor(init: WorkerInit, count: number) {
    this.pool = new RequestPool({ name: 'restore', script: workerScript('snapshot/restore/content-writer.js'), size: count, workerData: () => init, eager: true });
  }

  get threads(): number {
    return this.pool.size;
  }

  /** Has the least loaded worker (by bytes handed over and not answered yet) process `runs`. */
  async runJob(runs: ContentRun[]): Promise<WireResult[]> {
    const bytes = runs.reduce((n, r) => n + r.run.length, 1);
    const transfer: ArrayBuffer[] = [];
    for (const { run, writes } of runs) {
      transfer.push(run.blobs.buffer as ArrayBuffer, run.ids.buffer as ArrayBuffer, writes.buffer as ArrayBuffer);
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

/**
 * Reads runs of blobs and writes their verified plaintext. The runs of one writeRuns call make
 * a job; jobs queue here and go to the worker threads two at a time per worker (the one it works
 * on and the next), and the calling thread takes queued jobs itself when it has nothing better
 * to do (helpOnce).
 */
export class ContentWriters {
  /** Where runs come from; also loads trees on this thread. */
  readonly source: RunSource;
  /** Worker threads, once started; none when running inline. */
  private runner: WorkerRunner | undefined;
  private started = false;
  /** Jobs (the runs of one writeRuns call) not handed to a worker yet. */
  private readonly queue: { runs: ContentRun[]; resolve: (results: WireResult[]) => void; reject: (error: unknown) => void }[] = [];
  /** Jobs handed to workers and not answered yet. */
  private atWorkers = 0;
  private readonly init: WorkerInit;
  /** Writes on the calling thread: the jobs it helps with, every run when inline. */
  private readonly writer: ContentWriter;

  /** Set once `signal` aborts; read by every thread before each blob. */
  private readonly cancelled = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));

  /** Once `signal` aborts, nothing more is written: see the module comment. */
  constructor(repo: IndexedRepository, private readonly signal?: AbortSignal) {
    this.source = new RunSource(repo, this.cancelled);
    this.writer = new ContentWriter(this.source.reader);
    this.init = { bhContentWriter: true, keys: new Uint8Array(repo.keys.serialize()), compression: repo.repo.config.compression, location: repo.repo.location, cancelled: this.cancelled };
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

  /**
   * Whether the workers read the packs themselves (RunSource.local): then a run waiting to be
   * processed holds no memory, only its description; otherwise its bytes are read (and held)
   * when it is handed over.
   */
  get readsInWorkers(): boolean {
    return this.source.local;
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
  private schedule(runs: ContentRun[]): Promise<WireResult[]> {
    this.start();
    if (!this.runner) return Promise.resolve(runs.map((run) => this.writer.write(run)));
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
      job.resolve(job.runs.map((run) => this.writer.write(run)));
    } catch (error) {
      job.reject(error);
    }
    return true;
  }

  /**
   * Reads each run's blobs with one ranged read, from the first blob's offset to the last one's
   * end, and writes each verified blob to its `writes`. The runs are shared out among the
   * workers, one message each. One outcome per blob of each run, in order; never rejects. When
   * a pack ends early, the blobs that were read whole are still written. Once the signal has
   * aborted, blobs not written yet are `cancelled`.
   */
  async writeRuns(requests: readonly RunRequest[]): Promise<BlobOutcome[][]> {
    const runs = requests.map((request) => this.toContentRun(request));
    const outcomes: (BlobOutcome[] | undefined)[] = new Array(requests.length);
    const cancelledOutcomes = (request: RunRequest): BlobOutcome[] => request.blobs.map(() => ({ cancelled: true }));
    if (!this.source.local && !this.isCancelled) {
      // Read on this thread; a run that cannot be read whole is read blob by blob.
      await Promise.all(
        requests.map(async (request, i) => {
          try {
            await this.source.fetch(runs[i]!.run, this.signal);
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
    const todo = runs.map((run, i) => ({ run, i })).filter(({ i }) => outcomes[i] === undefined);
    if (this.isCancelled) for (const { i } of todo) outcomes[i] = cancelledOutcomes(requests[i]!);
    else if (todo.length > 0) {
      try {
        const results = await this.schedule(todo.map(({ run }) => run));
        todo.forEach(({ i }, k) => (outcomes[i] = fromWire(results[k]!, requests[i]!.blobs.length)));
      } catch (error) {
        for (const { i } of todo) outcomes[i] = requests[i]!.blobs.map(() => ({ error: error as Error }));
      }
    }
    return outcomes.map((o) => o!);
  }

  private toContentRun(request: RunRequest): ContentRun {
    let size = 0;
    for (const blob of request.blobs) size += 1 + 2 * blob.writes.length;
    const writes = new Float64Array(size);
    let at = 0;
    for (const blob of request.blobs) {
      writes[at++] = blob.writes.length;
      for (const write of blob.writes) {
        writes[at++] = write.fd;
        writes[at++] = write.position;
      }
    }
    return { run: this.source.wire(request.packId, request.blobs), writes };
  }

  /** Closes pack files and stops the worker threads (after every run has settled). */
  async close(): Promise<void> {
    this.signal?.removeEventListener('abort', this.cancel);
    for (const job of this.queue.splice(0)) job.reject(new Error('the blob reader is closed'));
    await this.runner?.close();
    this.source.close();
  }
}

function cancelledResult({ run }: ContentRun): WireResult {
  return { status: new Uint8Array(runBlobCount(run)).fill(STATUS_CANCELLED), errors: {} };
}

function fromWire(result: WireResult, count: number): BlobOutcome[] {
  const out: BlobOutcome[] = [];
  for (let i = 0; i < count; i++) {
    const status = result.status[i];
    out.push(status === STATUS_FAILED ? { error: new Error(result.errors[i] ?? 'blob could not be restored') } : status === STATUS_CANCELLED ? { cancelled: true } : { hole: status === STATUS_HOLE });
  }
  return out;
}
