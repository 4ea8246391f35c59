/**
 * The snapshot file-system view: a repository's snapshots as one read-only directory tree, for
 * `bh mount` (src/browse/fuse-mount.ts) and the web page. It knows nothing of FUSE: it answers
 * "what is entry NAME of this directory", "what does this directory hold", "what are the bytes
 * of this file from OFFSET", and resolves whole paths.
 *
 *   /ids/<short id>/…                 every snapshot by its id (8 hex digits, as `bh snapshots`)
 *   /snapshots/<time>/…, latest       by time (local, restic's form 2006-01-02T15:04:05Z07:00;
 *                                     "-1", "-2" … after a time taken twice); latest → the newest
 *   /hosts/<host>/<time>/…, latest    the same, per host
 *   /tags/<tag>/<time>/…, latest      the same, per tag
 *
 * A snapshot's directory is its root tree, so it shows the paths it backed up as restic's mount
 * does (/snapshots/latest/home/alice/…). Trees load when a directory is first looked into
 * (TreeReader, which keeps recently decoded trees and goes through the repository's tree-pack
 * cache); names are found by binary search (entries are sorted by name bytes, FORMAT.md §6).
 * File reads fetch only the blobs that cover the range asked for, through a bounded LRU of
 * decrypted blobs that concurrent readers share (src/browse/blob-cache.ts), from the
 * repository's BlobLoader (src/repo/blob-reader.ts: the blob codec on worker threads, so that
 * decryption neither holds up the answers to the kernel nor leaves the other core idle).
 *
 * The snapshot list is read again when a top-level directory is looked at and the last reading
 * is older than `refreshMs`: new snapshots appear without remounting, forgotten ones go. The
 * index is loaded again after a listing that changed (read order, FORMAT.md §10).
 */
import { MissingBlobError } from '../repo/errors.js';
import { BlobLoader } from '../repo/blob-reader.js';
import type { BlobType } from '../repo/crypto.js';
import type { IndexedRepository, Repository } from '../repo/repository.js';
import { type Snapshot, loadSnapshots } from '../snapshot/snapshot.js';
import { type NodeType, type TreeNode, type Xattr, compareNames, isSafeName } from '../snapshot/tree.js';
import { TreeReader, splitSnapshotPath } from '../snapshot/walk.js';
import { BlobCache } from './blob-cache.js';

/** A directory made by the view (root, ids, snapshots, hosts/<host>, ...), not stored in a tree. */
export interface VirtualDirectory {
  kind: 'virtual';
  name: Buffer;
  /** Its place in the layout: '' (root), 'ids', 'snapshots', 'hosts', 'hosts/<host>', 'tags', 'tags/<tag>'. */
  key: string;
  mtimeNs: bigint;
}

/** `latest`: a symbolic link to the name of the newest snapshot beside it. */
export interface LatestLink {
  kind: 'latest';
  name: Buffer;
  target: Buffer;
  mtimeNs: bigint;
}

/** The directory of one snapshot: its root tree. */
export interface SnapshotRoot {
  kind: 'snapshot';
  name: Buffer;
  snapshot: Snapshot;
  mtimeNs: bigint;
}

/** An entry stored in a snapshot's trees. */
export interface SnapshotEntry {
  kind: 'entry';
  node: TreeNode;
  snapshot: Snapshot;
}

/** What the view's own directories hold. */
type LayoutNode = VirtualDirectory | LatestLink | SnapshotRoot;
export type BrowseNode = LayoutNode | SnapshotEntry;
export type BrowseDirectory = VirtualDirectory | SnapshotRoot | (SnapshotEntry & { node: { type: 'dir' } });

/** What stat(2) shows of a node. Times are nanoseconds since the epoch. */
export interface BrowseStat {
  type: NodeType;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  links: number;
  rdev: bigint;
}

export interface ViewOptions {
  /** Show every entry as owned by root (uid and gid 0), as restic's --owner-root. */
  ownerRoot?: boolean | undefined;
  /** Owner of the view's own directories (default: this process's). */
  uid?: number;
  gid?: number;
  /** The snapshot list is read again at most this often (ms). */
  refreshMs?: number;
  /** Bytes of decrypted blobs kept for reads. */
  blobCacheBytes?: number;
  /** A snapshot file that cannot be read (left out). */
  onDamagedSnapshot?: (id: string, error: Error) => void;
  onWarning?: (message: string) => void;
}

export const DEFAULT_REFRESH_MS = 5000;
export const DEFAULT_BLOB_CACHE_BYTES = 128 * 1024 * 1024;

const VIRTUAL_MODE = 0o555;
const LATEST = Buffer.from('latest');

/** The directories and names of one reading of the snapshot list. */
interface Layout {
  snapshots: readonly Snapshot[];
  /** Every virtual directory's children by name (hex of the bytes), sorted by name. */
  directories: Map<string, Map<string, LayoutNode>>;
  directoryNodes: Map<string, VirtualDirectory>;
}

export class SnapshotView {
  private layout: Layout | undefined;
  private indexed: IndexedRepository | undefined;
  /** Data blobs, looked up in `indexed` and opened on worker threads (small ones here). */
  private dataBlobs: BlobLoader | undefined;
  private loadedAt = 0;
  private indexLoadedAt = 0;
  private reindexing: Promise<void> | undefined;
  private refreshing: Promise<Layout> | undefined;
  readonly trees: TreeReader;
  readonly blobs: BlobCache;
  private readonly listings = new WeakMap<TreeNode[], SnapshotEntry[]>();
  readonly uid: number;
  readonly gid: number;

  constructor(
    private readonly repo: Repository,
    private readonly options: ViewOptions = {},
  ) {
    const current = (): IndexedRepository => {
      if (!this.indexed) throw new Error('the snapshot view is not loaded yet');
      return this.indexed;
    };
    const source = { loadBlob: (type: BlobType, id: Uint8Array) => this.loadBlob(current, type, id) };
    this.trees = new TreeReader(source, { onWarning: options.onWarning });
    this.blobs = new BlobCache(() => source, options.blobCacheBytes ?? DEFAULT_BLOB_CACHE_BYTES);
    this.uid = options.ownerRoot ? 0 : (options.uid ?? process.getuid?.() ?? 0);
    this.gid = options.ownerRoot ? 0 : (options.gid ?? process.getgid?.() ?? 0);
  }

  /** The snapshots as last read (oldest first); reads them when the reading is stale. */
  async snapshots(): Promise<readonly Snapshot[]> {
    return (await this.current()).snapshots;
  }

  /** The root directory. */
  async root(): Promise<VirtualDirectory> {
    return (await this.current()).directoryNodes.get('')!;
  }

  /** Reads the snapshot list (and the index, when the list changed) now. */
  async refresh(): Promise<void> {
    this.loadedAt = 0;
    await this.current();
  }

  /** The entry `name` of `directory`, or undefined when it has none. */
  async lookup(directory: BrowseDirectory, name: Buffer): Promise<BrowseNode | undefined> {
    if (directory.kind === 'virtual') {
      const layout = await this.current();
      return layout.directories.get(directory.key)?.get(name.toString('hex'));
    }
    const entries = await this.entries(directory);
    let low = 0;
    let high = entries.length - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const order = compareNames(entries[middle]!.node.name, name);
      if (order === 0) return entries[middle];
      if (order < 0) low = middle + 1;
      else high = middle - 1;
    }
    return undefined;
  }

  /** What `directory` holds, sorted by name. The array is shared: callers must not change it. */
  async list(directory: BrowseDirectory): Promise<readonly BrowseNode[]> {
    if (directory.kind === 'virtual') {
      const layout = await this.current();
      return [...(layout.directories.get(directory.key)?.values() ?? [])];
    }
    return this.entries(directory);
  }

  /** The node at `path` ("/snapshots/latest/etc/hosts"), following `latest` links; undefined when there is none. */
  async resolve(path: string): Promise<BrowseNode | undefined> {
    let node: BrowseNode = await this.root();
    for (const name of splitSnapshotPath(path)) {
      if (!isDirectory(node)) return undefined;
      let next = await this.lookup(node, name);
      if (next?.kind === 'latest') next = await this.lookup(node, next.target);
      if (!next) return undefined;
      node = next;
    }
    return node;
  }

  /** stat(2) of a node. */
  stat(node: BrowseNode): BrowseStat {
    switch (node.kind) {
      case 'virtual':
      case 'snapshot':
        return { type: 'dir', mode: VIRTUAL_MODE, uid: this.uid, gid: this.gid, size: 0, mtimeNs: node.mtimeNs, ctimeNs: node.mtimeNs, links: 2, rdev: 0n };
      case 'latest':
        return { type: 'symlink', mode: 0o777, uid: this.uid, gid: this.gid, size: node.target.length, mtimeNs: node.mtimeNs, ctimeNs: node.mtimeNs, links: 1, rdev: 0n };
      case 'entry': {
        const n = node.node;
        const owner = this.options.ownerRoot ? 0 : undefined;
        const size = n.type === 'file' ? n.size : n.type === 'symlink' ? (n.linkTarget?.length ?? 0) : 0;
        return { type: n.type, mode: n.mode & 0o7777, uid: owner ?? n.uid, gid: owner ?? n.gid, size, mtimeNs: n.mtimeNs, ctimeNs: n.ctimeNs, links: Math.max(1, n.links), rdev: n.rdev ?? 0n };
      }
    }
  }

  /** A symbolic link's target. */
  linkTarget(node: BrowseNode): Buffer | undefined {
    if (node.kind === 'latest') return node.target;
    if (node.kind === 'entry' && node.node.type === 'symlink') return node.node.linkTarget ?? Buffer.alloc(0);
    return undefined;
  }

  /** A node's extended attributes (the view's own directories have none). */
  xattrs(node: BrowseNode): readonly Xattr[] {
    return node.kind === 'entry' ? (node.node.xattrs ?? []) : [];
  }

  /** A reader of a regular file's bytes. */
  async openFile(node: BrowseNode): Promise<FileReader> {
    if (node.kind !== 'entry' || node.node.type !== 'file') throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
    await this.current();
    return new FileReader(node.node, this.indexed!, this.blobs);
  }

  private async entries(directory: SnapshotRoot | SnapshotEntry): Promise<SnapshotEntry[]> {
    const treeId = directory.kind === 'snapshot' ? Buffer.from(directory.snapshot.record.tree, 'hex') : directory.node.subtree;
    if (!treeId) return [];
    if (!this.indexed) await this.current();
    const nodes = await this.trees.read(treeId);
    let entries = this.listings.get(nodes);
    if (!entries) {
      const snapshot = directory.snapshot;
      entries = nodes.map((node) => ({ kind: 'entry', node, snapshot }));
      this.listings.set(nodes, entries);
    }
    return entries;
  }

  /**
   * A blob through the current index. When it is not found there (prune moved it to another
   * pack and removed the old one, while we kept an older index), the index is read again, once
   * per blob and at most every refreshMs, and the blob looked up in it.
   */
  private async loadBlob(current: () => IndexedRepository, type: BlobType, id: Uint8Array): Promise<Buffer> {
    const indexed = current();
    const read = (): Promise<Buffer> => (type === 'data' ? this.dataBlobs!.loadBlob(type, Buffer.from(id)) : this.indexed!.loadBlob(type, id));
    try {
      return await read();
    } catch (error) {
      if (!(error instanceof MissingBlobError)) throw error;
      if (this.indexed === indexed) {
        if (Date.now() - this.indexLoadedAt < (this.options.refreshMs ?? DEFAULT_REFRESH_MS)) throw error;
        this.reindexing ??= this.reloadIndex().finally(() => (this.reindexing = undefined));
      }
      await this.reindexing;
      return read();
    }
  }

  private async reloadIndex(): Promise<void> {
    const snapshots = await loadSnapshots(this.repo, this.options.onDamagedSnapshot ?? (() => undefined));
    this.useIndex(await this.repo.loadIndex(snapshots.listing));
    if (!this.layout || !sameIds(this.layout.snapshots, snapshots)) this.layout = buildLayout(snapshots);
    this.loadedAt = Date.now();
  }

  private useIndex(indexed: IndexedRepository): void {
    this.indexed = indexed;
    // One loader for the view's life: it looks blobs up in whichever index is current.
    this.dataBlobs ??= new BlobLoader(() => this.indexed!);
    this.indexLoadedAt = Date.now();
  }

  /** Stops the blob loader's workers and closes the pack files reads keep open. */
  async close(): Promise<void> {
    await this.dataBlobs?.close();
  }

  /** The layout of the current snapshot list, read again when stale (one reading at a time). */
  private async current(): Promise<Layout> {
    const refreshMs = this.options.refreshMs ?? DEFAULT_REFRESH_MS;
    if (this.layout && Date.now() - this.loadedAt < refreshMs) return this.layout;
    this.refreshing ??= this.load().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async load(): Promise<Layout> {
    const snapshots = await loadSnapshots(this.repo, this.options.onDamagedSnapshot ?? (() => undefined));
    const same = this.layout !== undefined && sameIds(this.layout.snapshots, snapshots);
    if (!same || !this.indexed) this.useIndex(await this.repo.loadIndex(snapshots.listing));
    if (!same || !this.layout) this.layout = buildLayout(snapshots);
    this.loadedAt = Date.now();
    return this.layout;
  }
}

/** The node's name in its directory (the root's is empty). */
export function nameOf(node: BrowseNode): Buffer {
  return node.kind === 'entry' ? node.node.name : node.name;
}

export function isDirectory(node: BrowseNode): node is BrowseDirectory {
  return node.kind === 'virtual' || node.kind === 'snapshot' || (node.kind === 'entry' && node.node.type === 'dir');
}

/** Reads one file of a snapshot: the blobs that cover each range asked for, nothing else. */
export class FileReader {
  /** Where each chunk starts in the file, and one more entry: the file's end. */
  private readonly starts: number[];
  /** End of the last read, to tell a sequential reader (who gets the blobs of the next READ_AHEAD_BYTES fetched ahead). */
  private lastEnd = -1;
  private missing: MissingBlobError | undefined;

  constructor(
    readonly node: TreeNode,
    indexed: IndexedRepository,
    private readonly blobs: BlobCache,
  ) {
    const content = node.content ?? [];
    this.starts = new Array<number>(content.length + 1);
    let position = 0;
    for (let i = 0; i < content.length; i++) {
      this.starts[i] = position;
      const where = indexed.index.lookup('data', content[i]!);
      // A blob the index lacks fails the file's reads (EIO), not the open, nor other files.
      if (!where) this.missing ??= MissingBlobError.notIndexed('data', content[i]!);
      position += where?.rawLength ?? 0;
    }
    this.starts[content.length] = position;
  }

  /** The file's size as its chunks add up (the node's size, in a sound repository). */
  get size(): number {
    return this.starts[this.starts.length - 1]!;
  }

  /** Up to `length` bytes from `offset` (fewer at the end of the file). */
  async read(offset: number, length: number): Promise<Buffer> {
    if (this.missing) throw this.missing;
    const end = Math.min(offset + length, this.size);
    if (offset >= end) return Buffer.alloc(0);
    const content = this.node.content!;
    const first = this.chunkAt(offset);
    let last = first;
    while (this.starts[last + 1]! < end) last++;
    const wanted = Promise.all(content.slice(first, last + 1).map((id) => this.blobs.get(id)));
    if (offset === this.lastEnd) {
      // A sequential reader: the blobs it reads next are opened meanwhile, on the other workers.
      for (let next = last + 1; next < content.length && this.starts[next]! < end + READ_AHEAD_BYTES; next++) this.blobs.prefetch(content[next]!);
    }
    this.lastEnd = end;
    const pieces = await wanted;
    if (first === last) {
      const start = offset - this.starts[first]!;
      return pieces[0]!.subarray(start, start + (end - offset));
    }
    const out = Buffer.allocUnsafe(end - offset);
    let written = 0;
    for (let i = first; i <= last; i++) {
      const blob = pieces[i - first]!;
      const from = Math.max(0, offset - this.starts[i]!);
      const to = Math.min(blob.length, end - this.starts[i]!);
      written += blob.copy(out, written, from, to);
    }
    return out;
  }

  /** The chunk that holds byte `offset` (binary search over the starts). */
  private chunkAt(offset: number): number {
    let low = 0;
    let high = this.starts.length - 2;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if (this.starts[middle]! <= offset) low = middle;
      else high = middle - 1;
    }
    return low;
  }
}

/** How far ahead of a sequential reader blobs are fetched. */
const READ_AHEAD_BYTES = 4 * 1024 * 1024;

function sameIds(a: readonly Snapshot[], b: readonly Snapshot[]): boolean {
  return a.length === b.length && a.every((snapshot, i) => snapshot.id === b[i]!.id);
}

function timeNs(snapshot: Snapshot): bigint {
  return BigInt(Date.parse(snapshot.record.time)) * 1_000_000n;
}

/** restic's default time template, 2006-01-02T15:04:05Z07:00, in local time. */
export function snapshotTimeName(time: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  const offset = -time.getTimezoneOffset();
  const zone = offset === 0 ? 'Z' : `${offset > 0 ? '+' : '-'}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
  return `${time.getFullYear()}-${pad(time.getMonth() + 1)}-${pad(time.getDate())}T${pad(time.getHours())}:${pad(time.getMinutes())}:${pad(time.getSeconds())}${zone}`;
}

function buildLayout(snapshots: readonly Snapshot[]): Layout {
  const directories = new Map<string, Map<string, LayoutNode>>();
  const directoryNodes = new Map<string, VirtualDirectory>();
  const newest = snapshots.length > 0 ? timeNs(snapshots[snapshots.length - 1]!) : 0n;
  const addDirectory = (key: string, name: string, mtimeNs: bigint): VirtualDirectory => {
    const node: VirtualDirectory = { kind: 'virtual', name: Buffer.from(name), key, mtimeNs };
    directoryNodes.set(key, node);
    directories.set(key, new Map());
    const slash = key.lastIndexOf('/');
    if (key !== '') directories.get(slash < 0 ? '' : key.slice(0, slash))!.set(node.name.toString('hex'), node);
    return node;
  };
  addDirectory('', '', newest);
  for (const top of ['ids', 'snapshots', 'hosts', 'tags']) addDirectory(top, top, newest);

  // ids/: 8 hex digits, or the whole id where two snapshots share them.
  const shortCounts = new Map<string, number>();
  for (const s of snapshots) shortCounts.set(s.id.slice(0, 8), (shortCounts.get(s.id.slice(0, 8)) ?? 0) + 1);
  for (const s of snapshots) {
    const name = Buffer.from(shortCounts.get(s.id.slice(0, 8))! > 1 ? s.id : s.id.slice(0, 8));
    directories.get('ids')!.set(name.toString('hex'), { kind: 'snapshot', name, snapshot: s, mtimeNs: timeNs(s) });
  }

  // snapshots/, hosts/<host>/, tags/<tag>/: by time, with `latest`.
  const byTime = (key: string, members: readonly Snapshot[]): void => {
    const children = directories.get(key)!;
    const used = new Set<string>();
    let latest: SnapshotRoot | undefined;
    for (const s of members) {
      const base = snapshotTimeName(new Date(Date.parse(s.record.time)));
      let name = base;
      for (let n = 1; used.has(name); n++) name = `${base}-${n}`;
      used.add(name);
      latest = { kind: 'snapshot', name: Buffer.from(name), snapshot: s, mtimeNs: timeNs(s) };
      children.set(latest.name.toString('hex'), latest);
    }
    if (latest) children.set(LATEST.toString('hex'), { kind: 'latest', name: LATEST, target: latest.name, mtimeNs: latest.mtimeNs });
  };
  byTime('snapshots', snapshots);
  const groups = (keyOf: (s: Snapshot) => readonly string[]): Map<string, Snapshot[]> => {
    const out = new Map<string, Snapshot[]>();
    for (const s of snapshots) {
      for (const k of keyOf(s)) {
        if (!isSafeName(Buffer.from(k))) continue;
        let list = out.get(k);
        if (!list) out.set(k, (list = []));
        list.push(s);
      }
    }
    return out;
  };
  for (const [kind, grouped] of [['hosts', groups((s) => [s.record.host])], ['tags', groups((s) => s.record.tags)]] as const) {
    for (const [name, members] of [...grouped].sort(([a], [b]) => compareNames(Buffer.from(a), Buffer.from(b)))) {
      addDirectory(`${kind}/${name}`, name, timeNs(members[members.length - 1]!));
      byTime(`${kind}/${name}`, members);
    }
  }
  // Listings in name order, as in a snapshot's own trees.
  for (const [key, children] of directories) directories.set(key, new Map([...children].sort(([, a], [, b]) => compareNames(a.name, b.name))));
  return { snapshots, directories, directoryNodes };
}
