/**
 * The content pipeline of a restore: the regular files the walk created get their content here.
 * A file's chunks are queued; queued chunks are grouped by pack and planned into runs (one
 * ranged read for neighbouring blobs of one pack, shared by every file of the batch that needs
 * them), and the runs are read, verified and written by the worker threads
 * (src/snapshot/restore/content-writer.ts) while the walk goes on; when the walk has to wait,
 * the calling thread does queued runs itself, so both cores work. Bytes in flight are bounded
 * (MAX_IN_FLIGHT_BYTES when runs are read on this thread and held in memory; MAX_QUEUED_BYTES
 * when the workers read local packs themselves, queued runs holding no memory). A file is
 * finished once all its chunks are settled: truncated to its size when it ends in a hole,
 * checked (--verify), its metadata put on, closed; or removed, when any chunk failed or the
 * restore is stopping.
 */
import { createHash } from 'node:crypto';
import { closeSync, ftruncateSync, readSync } from 'node:fs';
import { planRuns, type PlannedRun } from '../../repo/blob-reader.js';
import { MissingBlobError } from '../../repo/errors.js';
import type { BlobLocation } from '../../repo/master-index.js';
import type { IndexedRepository } from '../../repo/repository.js';
import { AbortedError } from '../archiver.js';
import type { TreeNode } from '../tree.js';
import { type BlobOutcome, ContentWriters, type RunRequest } from './content-writer.js';
import { applyFileMetadata, discardFile } from './fs-ops.js';
import type { RestoreState } from './state.js';

/** Stored bytes read (or queued to be read) and not written yet: bounds memory. */
const MAX_IN_FLIGHT_BYTES = 32 * 1024 * 1024;
/**
 * The same bound when the workers read the packs themselves (local repositories): a queued run
 * holds no memory then, so the walk may run further ahead (creating files while the workers
 * decrypt); memory stays bounded by the workers' buffers.
 */
const MAX_QUEUED_BYTES = 256 * 1024 * 1024;
/** Stored bytes collected before they are planned into reads. */
const BATCH_BYTES = 4 * 1024 * 1024;
/**
 * Files collected before their blobs are planned into reads. Every batch is one message to a
 * worker and one answer: 64 made 2,400 of them for the Linux tree (postMessage alone was ~7 %
 * of the main thread), 256 about 700.
 */
const BATCH_FILES = 256;
/** Below this many bytes in flight the workers may run dry: queued blobs go out at once. */
const LOW_WATER_BYTES = 8 * 1024 * 1024;
/** Files queued before a low pipeline (below LOW_WATER_BYTES) is fed. */
const MIN_KICK_FILES = 64;
/**
 * Below this many bytes of file content (the snapshot's summary) the restore runs on this thread
 * alone: starting a worker costs ~0.1 s of CPU (a V8 isolate and its modules) and about as much
 * wall time before it takes work, more than it saves on, say, a 22 MB TypeScript release.
 */
const SMALL_RESTORE_BYTES = 64 * 1024 * 1024;
/** Bytes between two wanted blobs of a pack that are read (and dropped) rather than split the read. */
const MAX_GAP = 128 * 1024;
/** Bytes of one ranged read (a single larger blob gets a read of its own). */
const MAX_RUN = 4 * 1024 * 1024;

class VerifyError extends Error {}

/** A regular file whose chunks are queued, in flight or written. */
interface FileJob {
  readonly dest: Buffer;
  readonly node: TreeNode;
  readonly fd: number;
  /** Plaintext bytes of each chunk, in order (for --verify). */
  readonly lengths: number[];
  /** Writes of its chunks not settled yet. */
  pending: number;
  /** All its chunks are queued. */
  sealed: boolean;
  /** The chunk at the end of the file was written (else the file ends in a hole: truncate). */
  tailWritten: boolean;
  failure: unknown;
  resolve: (restored: boolean) => void;
}

/** One place a queued blob goes. */
interface Target {
  job: FileJob;
  position: number;
  /** The blob ends the file. */
  tail: boolean;
}

/** A blob to read, with every place (in the files of this batch) it goes. */
interface QueuedBlob {
  id: Buffer;
  packId: Buffer;
  offset: number;
  length: number;
  rawLength: number;
  targets: Target[];
}

export class ContentPipeline {
  /** Reads, checks and writes runs; drops its queue and stops writing at once when the signal aborts. */
  private readonly writers: ContentWriters;
  /** Blobs queued and not planned into reads yet, by pack:offset. */
  private batch = new Map<string, QueuedBlob>();
  private batchBytes = 0;
  private batchFiles = 0;
  private inFlightBytes = 0;
  /** The walk is over: queued blobs are read at once. */
  private walked = false;

  constructor(
    private readonly state: RestoreState,
    private readonly repo: IndexedRepository,
  ) {
    this.writers = new ContentWriters(repo, state.options.signal);
  }

  /** Starts the worker threads, which boot while the first trees are read; a small restore is done without them. */
  start(): void {
    const expected = this.state.options.expectedBytes;
    this.writers.start(expected !== undefined && expected < SMALL_RESTORE_BYTES ? 0 : undefined);
  }

  /** A tree's plaintext, checked (from a local repository read right here). */
  loadTree(id: Buffer): Promise<Buffer> {
    return this.writers.source.loadBlob('tree', id);
  }

  /** Whether enough is queued or in flight that the walk should wait before starting another file. */
  get full(): boolean {
    const maxBytes = this.writers.readsInWorkers ? MAX_QUEUED_BYTES : MAX_IN_FLIGHT_BYTES;
    return this.inFlightBytes + this.batchBytes >= maxBytes;
  }

  /** The walk is over: what is queued goes out now. */
  walkDone(): void {
    this.walked = true;
    this.dispatch();
  }

  /** Does one queued job of the workers on this thread; false when none waits. */
  helpOnce(): boolean {
    return this.writers.helpOnce();
  }

  /** Stops the worker threads and closes pack files (after every run has settled). */
  close(): Promise<void> {
    return this.writers.close();
  }

  /** Queues the chunks of a file just created; resolves once it is finished (dest) or removed (undefined). */
  writeFile(node: TreeNode, dest: Buffer, fd: number): Promise<Buffer | undefined> {
    let resolve!: (restored: boolean) => void;
    const finished = new Promise<boolean>((r) => (resolve = r));
    this.queue({ dest, node, fd, lengths: [], pending: 0, sealed: false, tailWritten: false, failure: undefined, resolve });
    return finished.then((ok) => (ok ? dest : undefined));
  }

  /** Queues every chunk of the file; a file whose chunks cannot all be found fails before any is written. */
  private queue(job: FileJob): void {
    const { node } = job;
    const content = node.content ?? [];
    const where: BlobLocation[] = [];
    let size = 0;
    try {
      for (const id of content) {
        const location = this.repo.index.lookup('data', id);
        if (!location) throw MissingBlobError.notIndexed('data', id);
        where.push(location);
        size += location.rawLength;
        job.lengths.push(location.rawLength);
      }
      if (size !== node.size) throw new Error(`content adds up to ${size} bytes but the snapshot records ${node.size}`);
    } catch (error) {
      job.failure = error;
    }
    if (job.failure === undefined) {
      let position = 0;
      for (let i = 0; i < where.length; i++) {
        const location = where[i]!;
        const key = `${location.packId.toString('hex')}:${location.offset}`;
        let blob = this.batch.get(key);
        if (!blob) {
          blob = { id: content[i]!, packId: location.packId, offset: location.offset, length: location.length, rawLength: location.rawLength, targets: [] };
          this.batch.set(key, blob);
          this.batchBytes += location.length;
        }
        blob.targets.push({ job, position, tail: position + location.rawLength === node.size });
        job.pending++;
        position += location.rawLength;
        if (this.batchBytes >= BATCH_BYTES) this.dispatch();
      }
      this.batchFiles++;
    }
    job.sealed = true;
    if (job.pending === 0) this.finishFile(job);
    else if (this.shouldDispatch()) this.dispatch();
  }

  /**
   * Whether queued blobs go out now: when the batch is big enough, when the workers have little
   * or nothing to do, and always once the walk is over (nothing else would send them).
   */
  private shouldDispatch(): boolean {
    return (
      this.walked ||
      this.state.stopping ||
      this.batchBytes >= BATCH_BYTES ||
      this.batchFiles >= BATCH_FILES ||
      this.inFlightBytes === 0 ||
      (this.inFlightBytes < LOW_WATER_BYTES && this.batchFiles >= MIN_KICK_FILES)
    );
  }

  /** Plans the queued blobs into reads and starts them (or, when stopping, fails their files). */
  dispatch(): void {
    if (this.batch.size === 0) return;
    const blobs = [...this.batch.values()];
    this.batch = new Map();
    this.batchBytes = 0;
    this.batchFiles = 0;
    if (this.state.stopping || this.state.aborted) {
      this.state.interrupted ||= this.state.aborted;
      for (const blob of blobs) for (const target of blob.targets) this.settleTarget(target, { cancelled: true });
      return;
    }
    const runs = planRuns(blobs, MAX_GAP, MAX_RUN);
    let bytes = 0;
    for (const run of runs) bytes += run.length;
    this.inFlightBytes += bytes;
    this.state.track(this.writeRuns(runs, bytes));
  }

  /** Reads, checks and writes the runs of one batch (on the workers), then settles their files. */
  private async writeRuns(runs: PlannedRun<QueuedBlob>[], bytes: number): Promise<void> {
    const requests: RunRequest[] = runs.map((run) => ({
      packId: run.packId,
      blobs: run.blobs.map((blob) => ({
        type: 'data',
        id: blob.id,
        offset: blob.offset,
        length: blob.length,
        rawLength: blob.rawLength,
        // A file that failed already is not written to any more.
        writes: blob.targets.filter((t) => t.job.failure === undefined).map((t) => ({ fd: t.job.fd, position: t.position })),
      })),
    }));
    let outcomes: BlobOutcome[][];
    try {
      outcomes = await this.writers.writeRuns(requests);
    } catch (error) {
      outcomes = requests.map((r) => r.blobs.map(() => ({ error: error as Error })));
    }
    this.inFlightBytes -= bytes;
    runs.forEach((run, r) =>
      run.blobs.forEach((blob, i) => {
        for (const target of blob.targets) this.settleTarget(target, outcomes[r]?.[i] ?? { error: new Error('no outcome') });
      }),
    );
    this.state.wake();
  }

  private settleTarget(target: Target, outcome: BlobOutcome): void {
    const { job } = target;
    if (outcome.cancelled) job.failure ??= new AbortedError();
    else if (outcome.error !== undefined) job.failure ??= outcome.error;
    else if (target.tail && !outcome.hole) job.tailWritten = true;
    job.pending--;
    if (job.pending === 0 && job.sealed) this.finishFile(job);
  }

  /** Every chunk settled: the file is completed (or removed when anything failed), then closed. */
  private finishFile(job: FileJob): void {
    const { dest, node, fd } = job;
    let open = true;
    const close = (): void => {
      if (!open) return;
      open = false;
      closeSync(fd);
    };
    let restored = false;
    try {
      if (job.failure === undefined) {
        try {
          // All-zero chunks were left as holes; one at the end leaves the file short.
          if (!job.tailWritten && node.size > 0) ftruncateSync(fd, node.size);
          if (this.state.options.verify) this.verifyFile(fd, node, job.lengths);
        } catch (error) {
          job.failure = error;
        }
      }
      if (job.failure !== undefined) {
        discardFile(dest, close);
        if (job.failure instanceof AbortedError) this.state.interrupted = true;
        else this.state.reportError(dest, job.failure);
        return;
      }
      try {
        applyFileMetadata(node, dest, fd, close);
        this.state.count(node);
        restored = true;
      } catch (error) {
        this.state.reportError(dest, error);
      }
    } catch (error) {
      this.state.reportError(dest, error);
    } finally {
      try {
        close();
      } catch {
        // Already reported, or nothing more to be done.
      }
      job.resolve(restored);
      this.state.wake();
    }
  }

  /** Reads the file back: each chunk against its blob id, and the whole against the recorded SHA-256 where the snapshot has one. */
  private verifyFile(fd: number, node: TreeNode, lengths: number[]): void {
    const whole = node.sha256 ? createHash('sha256') : undefined;
    let offset = 0;
    for (let i = 0; i < lengths.length; i++) {
      const buf = Buffer.allocUnsafe(lengths[i]!);
      let got = 0;
      while (got < buf.length) {
        const n = readSync(fd, buf, got, buf.length - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      if (got !== buf.length || !this.repo.keys.blobId(buf).equals(node.content![i]!)) {
        throw new VerifyError(`verification failed: bytes at offset ${offset} do not match chunk ${node.content![i]!.toString('hex')}`);
      }
      whole?.update(buf);
      offset += buf.length;
    }
    if (whole && node.sha256 && !whole.digest().equals(node.sha256)) throw new VerifyError(`verification failed: the file's SHA-256 is not the one recorded (${node.sha256.toString('hex')})`);
    this.state.result.verified++;
  }
}
