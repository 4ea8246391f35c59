/**
 * The restorer: recreates a snapshot's tree under a target directory.
 *
 * Safety rules (docs/FORMAT.md §6, README "Restore"):
 * - every name comes from decodeTree, which refuses "", ".", "..", "/" and NUL, so a path is
 *   always target + "/" + safe components and cannot leave the target;
 * - nothing already inside the target is followed: files are created with O_EXCL|O_NOFOLLOW, an
 *   existing symlink or file where a directory must go is never descended into;
 * - what is already in the target follows one rule (README "What restore guarantees"): an
 *   existing directory where the snapshot has one is filled; an existing non-directory
 *   where the snapshot has a non-directory is replaced, or kept and counted as skipped, as
 *   --overwrite says. An entry of the other kind (a directory where the snapshot has none, or a
 *   non-directory where it has one) is replaced, except that --overwrite never keeps it and a
 *   non-empty directory is kept unless overwriteDirs; such a kept entry is an error, since the
 *   snapshot's entry (with everything in it) is not restored;
 * - every blob re-hashes to its id before its bytes are written (BlobRunWriter, like
 *   IndexedRepository.loadBlob); a damaged blob fails its file loudly, and the partial file is
 *   removed.
 * Metadata goes on after content, in the order the kernel needs: owner (root only), then xattrs
 * (chown would clear security.capability; a read-only mode would forbid user.* xattrs), then mode
 * (chown clears setuid/setgid), and times last; directories get theirs after their
 * children, so a read-only directory is still filled and its mtime is not disturbed.
 *
 * How it goes fast. The tree is walked in order on the calling thread, creating directories and
 * entries as it goes, optimistically (create first; look at what is there only when the name is
 * taken) and with synchronous calls (each a single fast syscall: a thread-pool round trip costs
 * more). A regular file is created (O_EXCL|O_NOFOLLOW) and its chunks queued; queued chunks are
 * grouped by pack and planned into runs (one ranged read for neighbouring blobs of one pack,
 * shared by every file of the batch that needs them), and the runs are read, decrypted, checked
 * and written by a worker thread (src/repo/blob-reader.ts) while the walk goes on; when the walk
 * has to wait, this thread does queued runs itself, so both cores work. Entries in flight are
 * bounded (MAX_ACTIVE: each open file holds a descriptor), and so are bytes (MAX_IN_FLIGHT_BYTES
 * when runs are read here and held in memory; MAX_QUEUED_BYTES when the workers read local packs
 * themselves, queued runs holding no memory). A file is finished (truncated to its size when it
 * ends in a hole, --verify, metadata, closed) once all its chunks are settled; a directory once
 * all its entries are; a further name of a hardlinked inode is linked once its first name is
 * finished. Ctrl-C drops what is queued, gives up the reads under way and stops the workers
 * before their next blob (BlobRunWriter), removes every file not finished, and ends in
 * AbortedError.
 */
import {
  constants as fsConstants,
  chmodSync,
  closeSync,
  fchmodSync,
  fchownSync,
  ftruncateSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import type { BlobLocation } from '../repo/master-index.js';
import type { IndexedRepository } from '../repo/repository.js';
import { BlobRunWriter, type BlobOutcome, type PlannedRun, type RunRequest, planRuns } from '../repo/blob-reader.js';
import { lutimesNs, mkfifo, mknod, setXattr } from '../fsx/index.js';
import type { PathMatcher } from './exclude.js';
import { type TreeNode, decodeTree } from './tree.js';
import { AbortedError } from './archiver.js';
import { MissingBlobError } from '../repo/errors.js';

export type OverwritePolicy = 'always' | 'if-changed' | 'never';

export interface RestoreOptions {
  target: string;
  /** When given, only entries matching (or inside a match) are restored. */
  include?: PathMatcher | undefined;
  exclude: PathMatcher;
  overwrite: OverwritePolicy;
  /**
   * With overwrite 'always' or 'if-changed': a non-empty directory where the snapshot has a
   * non-directory is deleted, with everything in it (else it is kept, and that is an error).
   */
  overwriteDirs?: boolean;
  dryRun?: boolean;
  /** Re-read every restored file and check its chunks against their ids. */
  verify?: boolean;
  /** Bytes of file content in the snapshot (its summary), when known: a small restore starts no worker threads. */
  expectedBytes?: number | undefined;
  onProgress?: (progress: RestoreProgress) => void;
  onError?: (error: { path: string; message: string }) => void;
  signal?: AbortSignal;
}

export interface RestoreProgress {
  files: number;
  dirs: number;
  bytes: number;
  current: string;
}

export interface RestoreResult {
  files: number;
  dirs: number;
  links: number;
  special: number;
  bytes: number;
  skipped: number;
  verified: number;
  errors: { path: string; message: string }[];
}

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const SLASH = Buffer.from('/');
const IS_ROOT = process.getuid?.() === 0;
const CREATE_FLAGS = fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

/** Entries being restored at once (a regular file holds a descriptor until it is finished). */
const MAX_ACTIVE = 512;
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
/** Entries walked between two chances for other work (finished reads, signals) to run. */
const YIELD_EVERY = 32;
/** Bytes between two wanted blobs of a pack that are read (and dropped) rather than split the read. */
const MAX_GAP = 128 * 1024;
/** Bytes of one ranged read (a single larger blob gets a read of its own). */
const MAX_RUN = 4 * 1024 * 1024;

class VerifyError extends Error {}

/** A restore step that finishes later; `all` resolves (never rejects) to whether it succeeded. */
interface Pending {
  all: Promise<boolean>;
}

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

export class Restorer {
  private readonly result: RestoreResult = { files: 0, dirs: 0, links: 0, special: 0, bytes: 0, skipped: 0, verified: 0, errors: [] };
  /** First restored path of each hardlinked inode (device:inode), once it is finished; undefined if it failed. */
  private readonly hardlinks = new Map<string, Promise<Buffer | undefined>>();
  private lastProgress = 0;

  private writer!: BlobRunWriter;
  /** Entries walked since the walk last let other work run. */
  private sinceYield = 0;
  /** Blobs queued and not planned into reads yet, by pack:offset. */
  private batch = new Map<string, QueuedBlob>();
  private batchBytes = 0;
  private batchFiles = 0;
  private inFlightBytes = 0;
  /** Entries started and not finished. */
  private active = 0;
  /** Reads and file completions under way. */
  private readonly tasks = new Set<Promise<unknown>>();
  private waiters: (() => void)[] = [];
  /** The walk is over: queued blobs are read at once. */
  private walked = false;
  /** Interrupted or failed: nothing new starts, unfinished files are removed. */
  private stopping = false;
  private interrupted = false;

  constructor(private readonly repo: IndexedRepository, private readonly options: RestoreOptions) {}

  async run(rootTree: Buffer): Promise<RestoreResult> {
    const target = Buffer.from(this.options.target);
    if (!this.options.dryRun) mkdirSync(target, { recursive: true });
    // The writer drops its queue and stops writing at once when the signal aborts.
    this.writer = new BlobRunWriter(this.repo, this.options.signal);
    // Workers boot while the first trees are read; a small restore is done without them.
    const small = this.options.expectedBytes !== undefined && this.options.expectedBytes < SMALL_RESTORE_BYTES;
    if (!this.options.dryRun) this.writer.start(small ? 0 : undefined);
    // Ctrl-C: nothing new starts, nothing more is written (reads under way are given up, the
    // workers stop before their next blob), and every file not finished is removed.
    const onAbort = (): void => {
      this.stopping = true;
      this.interrupted = true;
      this.dispatch();
      this.wake();
    };
    this.options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const root = await this.restoreDir(rootTree, target, '', this.options.include === undefined);
      this.walked = true;
      this.dispatch();
      await this.helpUntil(root.all);
      await this.settle();
    } catch (error) {
      // Stop: queued blobs are not read, reads under way settle, unfinished files are removed.
      this.stopping = true;
      if (error instanceof AbortedError) this.interrupted = true;
      this.dispatch();
      await this.settle();
      throw error;
    } finally {
      this.options.signal?.removeEventListener('abort', onAbort);
      await this.writer.close();
    }
    if (this.interrupted) throw new AbortedError();
    this.report(true);
    return this.result;
  }

  /** Restores the entries of one tree into `dir` (which exists unless dry-running); returns once all are started. */
  private async restoreDir(treeId: Buffer, dir: Buffer, snapshotPath: string, selected: boolean): Promise<Pending> {
    const nodes = decodeTree(await this.writer.loadBlob('tree', treeId), `tree ${treeId.toString('hex')}`);
    const children: Promise<boolean>[] = [];
    for (const node of nodes) {
      // Most of the walk is synchronous: let finished reads, files and signals be handled now and then.
      if (++this.sinceYield >= YIELD_EVERY) {
        this.sinceYield = 0;
          await new Promise<void>((resolve) => setImmediate(resolve));
      }
      if (this.options.signal?.aborted) throw new AbortedError();
      const name = node.name.toString();
      const path = `${snapshotPath}/${name}`;
      if (this.options.exclude(path, name)) continue;
      const isSelected = selected || (this.options.include?.(path, name) ?? true);
      const dest = Buffer.concat([dir, SLASH, node.name]);
      try {
        const pending = node.type === 'dir' ? await this.restoreSubdir(node, dest, path, isSelected) : isSelected ? await this.restoreLeaf(node, dest) : undefined;
        if (pending) children.push(pending.all);
      } catch (error) {
        if (error instanceof AbortedError) throw error;
        this.reportError(dest, error);
      }
    }
    return { all: Promise.all(children).then(() => true) };
  }

  private async restoreSubdir(node: TreeNode, dest: Buffer, path: string, selected: boolean): Promise<Pending | undefined> {
    if (!selected) {
      // Not selected itself, but a descendant may be: descend, creating this directory only if needed.
      if (!this.options.dryRun) {
        if (!(await this.isDirectory(dest)) && !(await this.wouldSelectAny(node.subtree!, path))) return undefined;
        await this.makeDir(dest);
      }
      return this.afterChildren(await this.restoreDir(node.subtree!, dest, path, false), node, dest, false);
    }
    if (!this.options.dryRun) await this.makeDir(dest);
    return this.afterChildren(await this.restoreDir(node.subtree!, dest, path, true), node, dest, true);
  }

  /** A directory's metadata goes on once everything inside it is finished. */
  private afterChildren(children: Pending, node: TreeNode, dest: Buffer, counted: boolean): Pending {
    const all = children.all.then(() => {
      if (this.stopping) return false;
      if (counted) this.result.dirs++;
      if (this.options.dryRun) return true;
      try {
        this.applyMetadata(node, dest);
        return true;
      } catch (error) {
        this.reportError(dest, error);
        return false;
      }
    });
    return { all };
  }

  /** Whether anything below `treeId` matches the include patterns (decides if a directory is needed). */
  private async wouldSelectAny(treeId: Buffer, snapshotPath: string): Promise<boolean> {
    const nodes = decodeTree(await this.writer.loadBlob('tree', treeId), `tree ${treeId.toString('hex')}`);
    for (const node of nodes) {
      const name = node.name.toString();
      const path = `${snapshotPath}/${name}`;
      if (this.options.exclude(path, name)) continue;
      if (this.options.include?.(path, name)) return true;
      if (node.type === 'dir' && (await this.wouldSelectAny(node.subtree!, path))) return true;
    }
    return false;
  }

  private async isDirectory(path: Buffer): Promise<boolean> {
    try {
      return lstatSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
    } catch {
      return false;
    }
  }

  /** A real directory at `path` (never a symlink to one): existing, or made; writable while it is filled. */
  private async makeDir(path: Buffer): Promise<void> {
    try {
      mkdirSync(path, { mode: 0o700 });
      return;
    } catch (error) {
      if (errorCode(error) !== 'EEXIST') throw error;
    }
    let st;
    try {
      st = lstatSync(path, { throwIfNoEntry: false });
    } catch {
      st = undefined;
    }
    if (st?.isDirectory()) {
      // A read-only directory (say, left by an earlier restore of a 0o555 one) cannot be filled
      // without overriding permissions: open it up; its recorded mode goes back on afterwards,
      // with the rest of its metadata. Not ours to chmod: left as it is.
      if ((st.mode & 0o300) !== 0o300) {
        try {
          chmodSync(path, (st.mode & 0o7777) | 0o700);
        } catch {
          // Not ours to chmod: filling it will fail visibly if it must.
        }
      }
      return;
    }
    if (st) {
      if (this.options.overwrite === 'never') {
        throw new Error(`exists and is not a directory: kept (--overwrite never), so the snapshot's directory is not restored (move the entry away, or restore with --overwrite always)`);
      }
      unlinkSync(path);
    }
    mkdirSync(path, { mode: 0o700 });
  }

  /** Starts restoring a non-directory entry: the walk goes on while it is created and written. */
  private async restoreLeaf(node: TreeNode, dest: Buffer): Promise<Pending | undefined> {
    if (this.options.dryRun) {
      this.count(node);
      return undefined;
    }
    await this.admit();
    const linkKey = node.links > 1 ? `${node.device}:${node.inode}` : undefined;
    const first = linkKey ? this.hardlinks.get(linkKey) : undefined;
    this.active++;
    const holder = this.leaf(node, dest, first).finally(() => {
      this.active--;
      this.wake();
    });
    // Later names of this inode wait for this one, and link to whatever holds its content.
    if (linkKey) this.hardlinks.set(linkKey, holder);
    this.track(holder);
    return { all: holder.then(() => true) };
  }

  /**
   * Restores one entry (never rejects: failures are reported). Resolves to the path that now
   * holds the entry's inode (to link more names to), if any. `first` is set when another name of
   * the same inode came before: this one is then a hardlink to it, made once it is finished.
   */
  private async leaf(node: TreeNode, dest: Buffer, first: Promise<Buffer | undefined> | undefined): Promise<Buffer | undefined> {
    try {
      if (this.stopping) return undefined;
      if (node.type === 'socket') {
        // A socket is a live endpoint of a process that is gone: nothing to restore, nothing to replace.
        this.result.skipped++;
        return undefined;
      }
      if (first) {
        if (this.clearExisting(node, dest) !== 'cleared') return await first;
        const firstDest = await first;
        if (this.stopping) return undefined;
        if (firstDest) {
          linkSync(firstDest, dest);
          this.result.links++;
          return firstDest;
        }
        // The first name could not be restored: this one is restored on its own.
        return await this.create(node, dest);
      }
      // Create first; only when the name is taken, look at what is there (most targets are empty).
      try {
        return await this.create(node, dest);
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') throw error;
      }
      const existing = this.clearExisting(node, dest);
      if (existing !== 'cleared') return existing === 'unchanged' ? dest : undefined;
      return await this.create(node, dest);
    } catch (error) {
      if (error instanceof AbortedError) this.interrupted = true;
      else this.reportError(dest, error);
      return undefined;
    }
  }

  /**
   * Makes room for the snapshot's non-directory `node` at `dest` per the overwrite policy:
   * 'cleared' (nothing there any more), or what is there is kept and counted as skipped:
   * 'unchanged' when it is the snapshot's file (so more names of its inode are linked to it
   * rather than restored as copies), else 'kept'. A directory there is kept with an error
   * unless it may go (module comment): an empty one is removed, a full one only with
   * overwriteDirs.
   */
  private clearExisting(node: TreeNode, dest: Buffer): 'cleared' | 'kept' | 'unchanged' {
    let existing;
    try {
      existing = lstatSync(dest, { bigint: true, throwIfNoEntry: false });
    } catch {
      existing = undefined;
    }
    if (!existing) return 'cleared';
    const what = describeType(node);
    if (existing.isDirectory()) {
      if (this.options.overwrite === 'never') {
        throw new Error(`exists and is a directory: kept (--overwrite never), so the snapshot's ${what} is not restored (move the directory away, or restore with --overwrite always)`);
      }
      if (this.options.overwriteDirs) rmSync(dest, { recursive: true });
      else this.removeEmptyDir(dest, what);
      return 'cleared';
    }
    const unchanged = node.type === 'file' && existing.isFile() && Number(existing.size) === node.size && existing.mtimeNs === node.mtimeNs;
    if (this.options.overwrite === 'never' || (this.options.overwrite === 'if-changed' && unchanged)) {
      this.result.skipped++;
      return unchanged ? 'unchanged' : 'kept';
    }
    unlinkSync(dest);
    return 'cleared';
  }

  /** Removes the directory at `dest` if it is empty (rmdir checks, so nothing put in it meanwhile is lost). */
  private removeEmptyDir(dest: Buffer, what: string): void {
    try {
      rmdirSync(dest);
    } catch (error) {
      const code = errorCode(error);
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
      throw new Error(`not replaced: directory is not empty, and the snapshot has a ${what} here (move the directory away, or restore with --overwrite-dirs to delete it with everything in it)`);
    }
  }

  /**
   * Creates a new entry (EEXIST when the name is taken). A regular file is created here, then
   * written and finished by the pipeline: resolves to `dest` once it is, or undefined if it failed.
   */
  private async create(node: TreeNode, dest: Buffer): Promise<Buffer | undefined> {
    switch (node.type) {
      case 'file':
        return this.writeFile(node, dest, openSync(dest, CREATE_FLAGS, 0o600));
      case 'symlink':
        symlinkSync(node.linkTarget!, dest);
        break;
      case 'fifo':
        mkfifo(dest, 0o600);
        break;
      case 'chardev':
      case 'blockdev':
        mknod(dest, (node.type === 'chardev' ? S_IFCHR : S_IFBLK) | 0o600, node.rdev ?? 0n);
        break;
      default:
        throw new Error(`cannot restore entry of type ${node.type}`);
    }
    this.applyMetadata(node, dest);
    this.count(node);
    return dest;
  }

  private count(node: TreeNode): void {
    if (node.type === 'file') {
      this.result.files++;
      this.result.bytes += node.size;
    } else this.result.special++;
    this.report(false);
  }

  // ---- regular files: queued, read in runs, finished ----------------------------------------------

  /** Queues the chunks of a file just created; resolves once it is finished (dest) or removed (undefined). */
  private writeFile(node: TreeNode, dest: Buffer, fd: number): Promise<Buffer | undefined> {
    let resolve!: (restored: boolean) => void;
    const finished = new Promise<boolean>((r) => (resolve = r));
    this.queue({ dest, node, fd, lengths: [], pending: 0, sealed: false, tailWritten: false, failure: undefined, resolve });
    return finished.then((ok) => (ok ? dest : undefined));
  }

  /** Waits until another entry may be started (bounds open files and bytes in flight). */
  private async admit(): Promise<void> {
    const maxBytes = this.writer.readsInWorkers ? MAX_QUEUED_BYTES : MAX_IN_FLIGHT_BYTES;
    const full = (): boolean => this.active >= MAX_ACTIVE || this.inFlightBytes + this.batchBytes >= maxBytes;
    while (full()) {
      if (this.options.signal?.aborted) throw new AbortedError();
      this.dispatch();
      if (!full() || this.tasks.size === 0) return;
      // Rather than wait for the workers, do some of their work.
      if (this.writer.helpOnce()) await new Promise<void>((resolve) => setImmediate(resolve));
      else await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
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
      this.stopping ||
      this.batchBytes >= BATCH_BYTES ||
      this.batchFiles >= BATCH_FILES ||
      this.inFlightBytes === 0 ||
      (this.inFlightBytes < LOW_WATER_BYTES && this.batchFiles >= MIN_KICK_FILES)
    );
  }

  /** Plans the queued blobs into reads and starts them (or, when stopping, fails their files). */
  private dispatch(): void {
    if (this.batch.size === 0) return;
    const blobs = [...this.batch.values()];
    this.batch = new Map();
    this.batchBytes = 0;
    this.batchFiles = 0;
    if (this.stopping || this.options.signal?.aborted) {
      this.interrupted ||= this.options.signal?.aborted === true;
      for (const blob of blobs) for (const target of blob.targets) this.settleTarget(target, { cancelled: true });
      return;
    }
    const runs = planRuns(blobs, MAX_GAP, MAX_RUN);
    let bytes = 0;
    for (const run of runs) bytes += run.length;
    this.inFlightBytes += bytes;
    this.track(this.writeRuns(runs, bytes));
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
      outcomes = await this.writer.writeRuns(requests);
    } catch (error) {
      outcomes = requests.map((r) => r.blobs.map(() => ({ error: error as Error })));
    }
    this.inFlightBytes -= bytes;
    runs.forEach((run, r) =>
      run.blobs.forEach((blob, i) => {
        for (const target of blob.targets) this.settleTarget(target, outcomes[r]?.[i] ?? { error: new Error('no outcome') });
      }),
    );
    this.wake();
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
          if (this.options.verify) this.verifyFile(fd, node, job.lengths);
        } catch (error) {
          job.failure = error;
        }
      }
      if (job.failure !== undefined) {
        close();
        try {
          unlinkSync(dest);
        } catch {
          // Gone already.
        }
        if (job.failure instanceof AbortedError) this.interrupted = true;
        else this.reportError(dest, job.failure);
        return;
      }
      try {
        if (IS_ROOT) fchownSync(fd, node.uid, node.gid);
        this.setXattrs(node, dest);
        fchmodSync(fd, node.mode);
        close();
        lutimesNs(dest, node.mtimeNs, node.mtimeNs);
        this.count(node);
        restored = true;
      } catch (error) {
        this.reportError(dest, error);
      }
    } catch (error) {
      this.reportError(dest, error);
    } finally {
      try {
        close();
      } catch {
        // Already reported, or nothing more to be done.
      }
      job.resolve(restored);
      this.wake();
    }
  }

  private verifyFile(fd: number, node: TreeNode, lengths: number[]): void {
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
      offset += buf.length;
    }
    this.result.verified++;
  }

  private track(task: Promise<unknown>): void {
    this.tasks.add(task);
    const done = (): void => {
      this.tasks.delete(task);
    };
    task.then(done, done);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Waits for `done`, meanwhile doing queued work of the workers on this thread. */
  private async helpUntil(done: Promise<unknown>): Promise<void> {
    let finished = false;
    void done.then(() => (finished = true));
    while (!finished) {
      if (this.writer.helpOnce()) await new Promise<void>((resolve) => setImmediate(resolve));
      else await Promise.race([done, new Promise<void>((resolve) => this.waiters.push(resolve))]);
    }
  }

  /** Waits for every read, file completion and hardlink under way. */
  private async settle(): Promise<void> {
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
  }

  // ---- metadata and reporting --------------------------------------------------------------------

  private setXattrs(node: TreeNode, dest: Buffer): void {
    for (const xattr of node.xattrs ?? []) {
      try {
        setXattr(dest, xattr.name, xattr.value);
      } catch (error) {
        // The kernel allows no user.* xattrs on symlinks; other refusals are worth reporting.
        if (node.type !== 'symlink') throw error;
      }
    }
  }

  private applyMetadata(node: TreeNode, dest: Buffer): void {
    if (IS_ROOT) lchownSync(dest, node.uid, node.gid);
    // Xattrs before the mode: setting a user.* xattr needs write permission, which a read-only
    // mode (0o444, 0o555, 0o000) takes away from anyone who cannot override permissions.
    this.setXattrs(node, dest);
    if (node.type !== 'symlink') chmodSync(dest, node.mode);
    lutimesNs(dest, node.mtimeNs, node.mtimeNs);
  }

  private reportError(path: Buffer, error: unknown): void {
    const entry = { path: path.toString(), message: (error as Error).message };
    this.result.errors.push(entry);
    this.options.onError?.(entry);
  }

  private report(force: boolean): void {
    const now = Date.now();
    if (!this.options.onProgress || (!force && now - this.lastProgress < 250)) return;
    this.lastProgress = now;
    this.options.onProgress({ files: this.result.files, dirs: this.result.dirs, bytes: this.result.bytes, current: '' });
  }
}

/** How a message names the snapshot's entry of this type. */
function describeType(node: TreeNode): string {
  switch (node.type) {
    case 'fifo':
      return 'FIFO';
    case 'chardev':
    case 'blockdev':
      return 'device node';
    default:
      return node.type;
  }
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined;
}
