/**
 * The archiver: walks the file system, cuts files into chunks, saves new chunks and trees, and
 * returns the root tree of a new snapshot.
 *
 * - Streaming: a file is read in 1 MiB pieces and never held whole; memory is bounded by the
 *   chunker's max chunk plus the open packs.
 * - Change detection: a regular file whose type, size, mtime, ctime and inode equal its node in
 *   the parent snapshot (and whose blobs the index still has) reuses the parent's chunk list
 *   without being read.
 * - Errors on single entries (unreadable file, vanished directory, a file that became a FIFO)
 *   are reported and the entry is left out; the snapshot is still made.
 * - The virtual root mirrors absolute paths: backing up /srv/www gives root → srv → www, as restic
 *   does, so several paths share one tree and a restore recreates them under the target.
 *   Overlapping paths give their union, each entry once (see virtualRoot).
 * - Streams (standard input, commands, database dumps: streams.ts) become files of their own tree.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readlinkSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { chunkStream, gearTable } from '../chunker/index.js';
import type { BlobType } from '../repo/crypto.js';
import { AbortedError } from '../repo/errors.js';
import { WorkerFailedError } from '../repo/worker-pool.js';
import { type IndexedRepository, mapLimit } from '../repo/repository.js';
import { type EntryStat, entryStatOf, entryType, getXattr, listXattrs, scanDir } from '../fsx/index.js';
import type { PathMatcher } from './exclude.js';
import { FileChunkerPool } from './file-chunker.js';
import { KnownBlobFilter } from './known-blobs.js';
import { type StoredStream, type StreamSource, saveStreamTree, streamFileNode, streamPathNames } from './streams.js';
import { type NodeType, type TreeNode, decodeTree, encodeTree, sameNode } from './tree.js';
import type { SnapshotSummary } from './snapshot.js';

export interface ArchiveProgress {
  files: number;
  dirs: number;
  bytesRead: number;
  bytesAdded: number;
  current: string;
}

export interface ArchiveError {
  path: string;
  message: string;
}

export interface ArchiveOptions {
  /** Absolute paths to back up. */
  paths: string[];
  /**
   * Read the paths below this directory instead of below `/`, and record them as given (an
   * import stages an old backup's files there: `/srv/www` is read at `<root>/srv/www`).
   */
  root?: string | undefined;
  exclude: PathMatcher;
  /** Root tree of the parent snapshot, for change detection. */
  parentTree?: Buffer | undefined;
  /** Compute everything, store nothing. */
  dryRun?: boolean;
  onProgress?: (progress: ArchiveProgress) => void;
  onError?: (error: ArchiveError) => void;
  signal?: AbortSignal;
}

export type Counters = Omit<SnapshotSummary, 'backup_start' | 'backup_end'>;

export interface ArchiveResult {
  tree: Buffer;
  counters: Counters;
  errors: ArchiveError[];
}

/** Where the layers above look for it; the repository layer raises it too (saving a snapshot). */
export { AbortedError } from '../repo/errors.js';

/**
 * Entries of one directory handled at once: subdirectories (each walked with its own entries at
 * once, so few) and the rest, mostly files, many, so that the workers always have files queued
 * behind the one they read (a small file takes them less time than a message round trip).
 */
const DIR_CONCURRENCY = 2;
const ENTRY_CONCURRENCY = 32;
/** Files with the workers at once across the whole walk (a few per worker keeps them busy). */
const FILES_IN_FLIGHT = 128;
const SLASH = Buffer.from('/');

function newCounters(): Counters {
  return { files_new: 0, files_changed: 0, files_unmodified: 0, dirs_new: 0, dirs_changed: 0, dirs_unmodified: 0, bytes_read: 0, bytes_added: 0, total_bytes: 0, total_files: 0, errors: 0 };
}

function nodeType(st: EntryStat): NodeType {
  return entryType(st.mode);
}

/** The node of an entry, from its lstat: every field but content, subtree, link target, rdev and xattrs. */
export function baseNode(name: Buffer, st: EntryStat): TreeNode {
  const type = nodeType(st);
  return {
    name,
    type,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    inode: st.ino,
    device: st.dev,
    links: st.nlink,
    size: type === 'file' ? st.size : 0,
  };
}

function joinPath(dir: Buffer, name: Buffer): Buffer {
  return dir.length === 1 && dir[0] === 0x2f ? Buffer.concat([dir, name]) : Buffer.concat([dir, SLASH, name]);
}

/**
 * An entry of the virtual root: a backup path, or a directory on the way to one. Below a backup
 * path, the backup paths inside it are kept too: its walk may leave them out (an excluded
 * directory on the way), and then they add what the walk left out.
 */
interface VirtualEntry {
  /** The absolute path, normalized. */
  path: Buffer;
  /** Given to back up: the entry is walked whole. Otherwise only a directory on the way. */
  given: boolean;
  /** By name bytes as latin1 (one char a byte, so every name is its own key). */
  children: Map<string, VirtualEntry>;
}

/**
 * The tree the backup paths make. Each path is normalized as text (`.`, `..`, repeated and
 * trailing slashes, as restic's filepath.Clean; symlinks are not resolved), so a path given
 * twice, or spelled two ways, is one entry; a path below another one is a child of it.
 */
function virtualRoot(paths: string[], base: Buffer): VirtualEntry {
  const root: VirtualEntry = { path: base, given: false, children: new Map() };
  for (const path of paths) {
    let entry = root;
    for (const part of posix.resolve(path).split('/')) {
      if (part === '') continue;
      const name = Buffer.from(part);
      const key = name.toString('latin1');
      let next = entry.children.get(key);
      if (!next) {
        next = { path: joinPath(entry.path, name), given: false, children: new Map() };
        entry.children.set(key, next);
      }
      entry = next;
    }
    entry.given = true;
  }
  return root;
}

/** The backup paths at or below `entry`, outermost only (the others are inside them). */
function outermostGiven(entry: VirtualEntry): VirtualEntry[] {
  return entry.given ? [entry] : [...entry.children.values()].flatMap(outermostGiven);
}

export class Archiver {
  private readonly counters = newCounters();
  private readonly errors: ArchiveError[] = [];
  private readonly gear: Uint32Array;
  private lastProgress = 0;
  private current = '';
  private chunkerPool: FileChunkerPool | undefined;
  /** Files handed to the workers and not finished: bounds the nodes and pieces held at once. */
  private readonly fileSlots = new Semaphore(FILES_IN_FLIGHT);

  constructor(private readonly repo: IndexedRepository, private readonly options: ArchiveOptions) {
    this.gear = gearTable(repo.keys.chunkerSeed);
    // An interrupt does not wait for the files the workers are reading.
    options.signal?.addEventListener('abort', () => this.chunkerPool?.cancel(new AbortedError()), { once: true });
  }

  /**
   * Worker threads that read and seal files: started with the first file, or at once when there
   * is no parent (every file will be read, and their start-up then overlaps the walk's).
   */
  private get chunker(): FileChunkerPool {
    const { min, avg, max } = this.repo.repo.config.chunker;
    this.chunkerPool ??= new FileChunkerPool(this.repo.keys, this.repo.repo.config.compression, { min, avg, max }, KnownBlobFilter.ofIndex(this.repo.index));
    return this.chunkerPool;
  }

  /** Stops the worker threads. */
  async close(): Promise<void> {
    await this.chunkerPool?.close();
    this.chunkerPool = undefined;
  }

  async run(): Promise<ArchiveResult> {
    if (!this.options.parentTree) void this.chunker;
    const root = virtualRoot(this.options.paths, this.options.root === undefined ? SLASH : Buffer.from(posix.resolve(this.options.root)));
    let tree: Buffer;
    if (root.given) {
      // "/" itself: the root tree is the root directory's listing (every other path is inside it).
      const node = baseNode(SLASH, entryStatOf(lstatSync(root.path, { bigint: true })));
      const parent = this.options.parentTree ? { ...node, subtree: this.options.parentTree } : undefined;
      await this.saveDir(root.path, node, parent, root.children);
      tree = node.subtree!;
    } else {
      tree = await this.saveVirtualChildren(root, await this.loadParentNodes(this.options.parentTree));
    }
    this.report(true);
    return { tree, counters: this.counters, errors: this.errors };
  }

  /**
   * Stores the files of a stream source (standard input, a command's output, database dumps),
   * each verified right after it is stored; a failed check throws and no tree is made.
   */
  async runStreams(source: StreamSource): Promise<ArchiveResult> {
    const nowNs = BigInt(Date.now()) * 1_000_000n;
    const stored: StoredStream[] = [];
    for await (const file of source.files(this.options.signal)) {
      const names = streamPathNames(file.path);
      this.current = file.path;
      const { content, size, sha256 } = await this.saveContent(file.data);
      // Interrupted: the producer died of our signal, which is no failure of its own.
      this.throwIfAborted();
      await file.verify();
      this.counters.files_new++;
      this.counters.total_files++;
      this.counters.total_bytes += size;
      stored.push({ names, node: { ...streamFileNode(names[names.length - 1]!, file, content, size, nowNs), sha256 } });
    }
    const tree = await saveStreamTree(stored, source.dirMode ?? 0o755, nowNs, (nodes) => this.saveTree(nodes), () => this.counters.dirs_new++);
    this.report(true);
    return { tree, counters: this.counters, errors: this.errors };
  }

  /** The tree of a directory on the way to backup paths: the entries that lead to them, nothing else. */
  private async saveVirtualChildren(dir: VirtualEntry, parentNodes: Map<string, TreeNode>): Promise<Buffer> {
    const nodes: TreeNode[] = [];
    for (const [key, child] of dir.children) {
      const node = await this.saveVirtual(child, Buffer.from(key, 'latin1'), parentNodes.get(key));
      if (node) nodes.push(node);
    }
    return this.saveTree(nodes);
  }

  /** A backup path (walked whole), or a directory on the way to backup paths (only what leads to them). */
  private async saveVirtual(entry: VirtualEntry, name: Buffer, parentNode: TreeNode | undefined): Promise<TreeNode | undefined> {
    if (entry.given) {
      // The path as given: its last component is not followed.
      let st: EntryStat;
      try {
        st = entryStatOf(lstatSync(entry.path, { bigint: true }));
      } catch (error) {
        this.reportError(entry.path, error);
        return undefined;
      }
      return this.saveEntry(entry.path, name, parentNode, st, entry.children);
    }
    // On the way to a backup path a symlink is followed, as the kernel follows it to reach the
    // path; the directory it leads to is recorded here, as restic does.
    let st: EntryStat;
    try {
      st = entryStatOf(statSync(entry.path, { bigint: true }));
    } catch (error) {
      this.reportUnreachable(entry, (error as Error).message);
      return undefined;
    }
    if (nodeType(st) !== 'dir') {
      this.reportUnreachable(entry, `${entry.path.toString()} is not a directory`);
      return undefined;
    }
    const node = baseNode(name, st);
    node.subtree = await this.saveVirtualChildren(entry, await this.loadParentNodes(parentNode?.type === 'dir' ? parentNode.subtree : undefined));
    return node;
  }

  /** Reports each backup path at or below `entry` as left out, and why. */
  private reportUnreachable(entry: VirtualEntry, why: string): void {
    for (const given of outermostGiven(entry)) this.reportError(given.path, new Error(`not backed up: ${why}`));
  }

  /**
   * The node for one real entry, or undefined when it is unreadable. `inside` holds the backup
   * paths below it (see VirtualEntry), when it is one or leads to one.
   */
  private async saveEntry(path: Buffer, name: Buffer, parentNode: TreeNode | undefined, st: EntryStat, inside?: Map<string, VirtualEntry>): Promise<TreeNode | undefined> {
    this.throwIfAborted();
    const node = baseNode(name, st);
    this.current = path.toString();
    try {
      // Setting an xattr changes ctime: an entry whose ctime and inode match the parent's keeps its xattrs.
      const asParent = parentNode && parentNode.ctimeNs === node.ctimeNs && parentNode.inode === node.inode && parentNode.type === node.type;
      node.xattrs = asParent ? parentNode.xattrs : st.hasXattrs === false ? undefined : readXattrs(path);
      switch (node.type) {
        case 'file':
          await this.saveFile(path, node, st, parentNode);
          break;
        case 'dir':
          await this.saveDir(path, node, parentNode, inside);
          break;
        case 'symlink':
          node.linkTarget = readlinkSync(path, { encoding: 'buffer' });
          break;
        case 'chardev':
        case 'blockdev':
          node.rdev = st.rdev;
          break;
        default:
          break;
      }
    } catch (error) {
      // Not this entry's problem: an interrupt, or worker threads that died (every later file would fail the same).
      if (error instanceof AbortedError || error instanceof WorkerFailedError) throw error;
      this.reportError(path, error);
      for (const child of inside?.values() ?? []) this.reportUnreachable(child, `${path.toString()} could not be backed up`);
      return undefined;
    }
    if (node.type !== 'dir') {
      // A backup path through a symlink inside another backup path: the snapshot has one entry
      // by that name, and it is what the walk found, which follows no symlink.
      for (const child of inside?.values() ?? []) this.reportUnreachable(child, `it runs through ${path.toString()}, a ${node.type} inside another backup path, which is stored as such and not followed; back it up in a separate run`);
    }
    this.report(false);
    return node;
  }

  /** Walks a directory into `node.subtree`; `inside` holds the backup paths below it (see VirtualEntry). */
  private async saveDir(path: Buffer, node: TreeNode, parentNode: TreeNode | undefined, inside?: Map<string, VirtualEntry>): Promise<void> {
    // Reading the parent's listing overlaps with scanning the directory on the thread pool.
    const [scanned, parentNodes] = await Promise.all([scanDir(path), this.loadParentNodes(parentNode?.type === 'dir' ? parentNode.subtree : undefined)]);
    const entries: { name: Buffer; path: Buffer; stat: EntryStat | Error | undefined; virtual: VirtualEntry | undefined; excluded: boolean }[] = [];
    for (const { name, stat } of scanned) {
      const entryPath = joinPath(path, name);
      const virtual = inside?.get(name.toString('latin1'));
      const excluded = this.options.exclude(entryPath.toString(), name.toString());
      if (!excluded || virtual) entries.push({ name, path: entryPath, stat, virtual, excluded });
    }
    // Backup paths below this directory that its scan did not list: gone since they were given.
    const listed = new Set(scanned.map((e) => e.name.toString('latin1')));
    for (const [key, virtual] of inside ?? []) {
      if (!listed.has(key)) entries.push({ name: Buffer.from(key, 'latin1'), path: virtual.path, stat: undefined, virtual, excluded: false });
    }
    // Several entries at once, so one file's I/O latency overlaps another's work; the tree
    // keeps the sorted order whatever order they finish in.
    const slots = new Array<TreeNode | undefined>(entries.length);
    const save = async (i: number): Promise<void> => {
      const { path: entryPath, name, stat, virtual, excluded } = entries[i]!;
      const before = parentNodes.get(name.toString('latin1'));
      // Not part of this walk (excluded, or not listed), but a backup path is at or below it.
      if (virtual && (stat === undefined || (excluded && !virtual.given))) slots[i] = await this.saveVirtual(virtual, name, before);
      else if (stat instanceof Error) {
        this.reportError(entryPath, stat);
        if (virtual && !virtual.given) this.reportUnreachable(virtual, `${entryPath.toString()} could not be backed up`);
      } else if (stat) slots[i] = await this.saveEntry(entryPath, name, before, stat, virtual?.children);
    };
    const indices = entries.map((_, i) => i);
    await Promise.all([
      mapLimit(indices.filter((i) => isDirectory(entries[i]!.stat)), DIR_CONCURRENCY, save),
      mapLimit(indices.filter((i) => !isDirectory(entries[i]!.stat)), ENTRY_CONCURRENCY, save),
    ]);
    const children = slots.filter((child): child is TreeNode => child !== undefined);
    const parentTree = parentNode?.type === 'dir' ? parentNode.subtree : undefined;
    const asBefore = parentTree !== undefined && children.length === parentNodes.size && children.every((child) => { const before = parentNodes.get(child.name.toString('latin1')); return before !== undefined && sameNode(child, before); }) && this.repo.hasBlob('tree', parentTree);
    node.subtree = asBefore ? parentTree : await this.saveTree(children);
    if (!parentNode || parentNode.type !== 'dir') this.counters.dirs_new++;
    else if (parentNode.subtree?.equals(node.subtree)) this.counters.dirs_unmodified++;
    else this.counters.dirs_changed++;
  }

  private async saveFile(path: Buffer, node: TreeNode, st: EntryStat, parentNode: TreeNode | undefined): Promise<void> {
    this.counters.total_files++;
    this.counters.total_bytes += node.size;
    if (parentNode && parentNode.type === 'file' && parentNode.content && unchanged(parentNode, node) && parentNode.content.every((id) => this.repo.hasBlob('data', id))) {
      node.content = parentNode.content;
      // Absent when the parent predates per-file SHA-256: the file gets one when it next changes.
      if (parentNode.sha256) node.sha256 = parentNode.sha256;
      this.counters.files_unmodified++;
      return;
    }
    const content: Buffer[] = [];
    const release = await this.fileSlots.acquire();
    try {
      this.throwIfAborted();
      const outcome = await this.chunker.chunk(path, st, { seal: !this.options.dryRun, noAtime: mayUseNoAtime(st) }, async (piece) => {
        this.throwIfAborted();
        this.counters.bytes_read += piece.rawLength;
        // Sealed by the worker; or passed on unsealed because the repository probably has it,
        // and then sealed by the repository if it has not.
        if (piece.envelope) await this.repo.saveBlob('data', { id: piece.id, envelope: piece.envelope, rawLength: piece.rawLength });
        else if (piece.plaintext) await this.repo.saveBlob('data', piece.plaintext, piece.id);
        else this.countDryRun('data', piece.id, piece.rawLength);
        content.push(piece.id);
        this.report(false);
      });
      // Another regular file renamed over this one since the scan: record the one that was read.
      if (outcome.replacedBy) Object.assign(node, baseNode(node.name, outcome.replacedBy));
      node.size = outcome.size;
      node.sha256 = outcome.sha256;
    } finally {
      release();
    }
    node.content = content;
    if (parentNode && parentNode.type === 'file') this.counters.files_changed++;
    else this.counters.files_new++;
  }

  private async saveContent(input: AsyncIterable<Uint8Array>): Promise<{ content: Buffer[]; size: number; sha256: Buffer }> {
    const { min, avg, max } = this.repo.repo.config.chunker;
    const content: Buffer[] = [];
    const whole = createHash('sha256');
    let size = 0;
    for await (const chunk of chunkStream(input, { min, avg, max }, this.gear)) {
      this.throwIfAborted();
      size += chunk.length;
      whole.update(chunk);
      this.counters.bytes_read += chunk.length;
      content.push(await this.saveBlob('data', chunk));
      this.report(false);
    }
    return { content, size, sha256: whole.digest() };
  }

  private readonly dryRunSeen = new Set<string>();

  /** Dry run: what a blob would add (its plaintext size, once, when the repository lacks it). */
  private countDryRun(type: BlobType, id: Buffer, rawLength: number): void {
    const key = type + id.toString('hex');
    if (this.repo.hasBlob(type, id) || this.dryRunSeen.has(key)) return;
    this.dryRunSeen.add(key);
    this.counters.bytes_added += rawLength;
  }

  private async saveBlob(type: BlobType, data: Uint8Array): Promise<Buffer> {
    if (this.options.dryRun) {
      const id = this.repo.keys.blobId(data);
      this.countDryRun(type, id, data.length);
      return id;
    }
    // Sealing runs behind saveBlob, so bytes_added comes from the repository (see runBackup).
    return (await this.repo.saveBlob(type, data)).id;
  }

  private saveTree(nodes: TreeNode[]): Promise<Buffer> {
    return this.saveBlob('tree', encodeTree(nodes));
  }

  /** The parent's entries of one directory, by name (latin1: one char a byte, so every name is its own key), or an empty map. */
  private async loadParentNodes(treeId: Buffer | undefined): Promise<Map<string, TreeNode>> {
    if (!treeId) return new Map();
    try {
      const nodes = decodeTree(await this.repo.loadBlob('tree', treeId), `tree ${treeId.toString('hex')}`);
      return new Map(nodes.map((n) => [n.name.toString('latin1'), n]));
    } catch (error) {
      // A damaged parent only costs change detection: read everything below it again.
      this.options.onError?.({ path: '(parent snapshot)', message: `ignoring parent tree: ${(error as Error).message}` });
      return new Map();
    }
  }

  private reportError(path: Buffer, error: unknown): void {
    const entry = { path: path.toString(), message: (error as Error).message };
    this.counters.errors++;
    this.errors.push(entry);
    this.options.onError?.(entry);
  }

  private report(force: boolean): void {
    const now = Date.now();
    if (!this.options.onProgress || (!force && now - this.lastProgress < 250)) return;
    this.lastProgress = now;
    const c = this.counters;
    this.options.onProgress({
      files: c.files_new + c.files_changed + c.files_unmodified,
      dirs: c.dirs_new + c.dirs_changed + c.dirs_unmodified,
      bytesRead: c.bytes_read,
      bytesAdded: this.options.dryRun ? c.bytes_added : this.repo.bytesAdded,
      current: this.current,
    });
  }

  private throwIfAborted(): void {
    if (this.options.signal?.aborted) throw new AbortedError();
  }
}

class Semaphore {
  /** Waiters in order from `head` on: thousands may wait in a wide tree, where shift() would cost O(n) each. */
  private waiting: (() => void)[] = [];
  private head = 0;

  constructor(private free: number) {}

  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    return () => this.release();
  }

  private release(): void {
    if (this.head === this.waiting.length) {
      this.free++;
      return;
    }
    const next = this.waiting[this.head++]!;
    if (this.head >= 1024 && this.head * 2 >= this.waiting.length) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
    next();
  }
}

function unchanged(a: TreeNode, b: TreeNode): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.inode === b.inode;
}

/** O_NOATIME is worth trying when we own the file or are root (the kernel refuses it otherwise). */
function mayUseNoAtime(st: EntryStat): boolean {
  const uid = process.getuid?.();
  return uid === 0 || uid === st.uid;
}

function isDirectory(stat: EntryStat | Error | undefined): boolean {
  return stat !== undefined && !(stat instanceof Error) && nodeType(stat) === 'dir';
}

function readXattrs(path: Buffer): TreeNode['xattrs'] {
  let names: string[];
  try {
    names = listXattrs(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTSUP' || code === 'EOPNOTSUPP') return undefined;
    throw error;
  }
  const out = [];
  for (const name of names) {
    try {
      out.push({ name, value: getXattr(path, name) });
    } catch (error) {
      // Removed between list and get: nothing to keep.
      if ((error as NodeJS.ErrnoException).code !== 'ENODATA') throw error;
    }
  }
  return out.length > 0 ? out : undefined;
}
