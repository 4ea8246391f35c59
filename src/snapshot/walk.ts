/**
 * Walking a snapshot's trees, and describing nodes for people and for JSON: the one tree walker
 * behind `ls`, `find`, `stats` and `diff`, and the one reachability walk (which trees and blobs
 * the snapshots reach) behind `prune`, `check` and `stats --mode raw-data`.
 *
 * Paths are the snapshot's paths ("/srv/www/index.html"): the root tree is the virtual "/"
 * (docs/FORMAT.md §6). Names are bytes; every entry carries its exact path bytes, and a display
 * string that is lossy (U+FFFD) for names that are not valid UTF-8.
 *
 * A repository is input like any other: its trees may nest 100 000 deep, or share subtrees so
 * that a few trees hold 2^40 paths. So walks are loops over an explicit stack (no recursion, no
 * stack overflow), hold one path buffer that grows and shrinks with the walk (not one copy of
 * the path per level: memory is linear in the depth), run through a TreeReader that lets the
 * event loop turn, so that Ctrl-C and SIGTERM are heard even when every tree comes from memory,
 * and never descend into a tree that is already open on the current path (content addressing
 * makes that impossible in a sound repository; a damaged or forged one could loop for ever).
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { BlobType } from '../repo/crypto.js';
import type { IndexedRepository } from '../repo/repository.js';
import { AbortedError } from './archiver.js';
import { type NodeType, type TreeNode, decodeTree } from './tree.js';

export interface WalkEntry {
  /** The path for display: lossy where a name is not valid UTF-8. */
  readonly path: string;
  /** The exact path bytes. */
  pathBytes: Buffer;
  node: TreeNode;
  /** 1 for the entries of the tree the walk started at. */
  depth: number;
}

export interface WalkOptions {
  /** Path of the tree the walk starts at (empty for the snapshot's root). */
  prefix?: Buffer;
  /** Entries deeper than this are not visited (1: only the starting tree's own entries). */
  maxDepth?: number;
  /**
   * Asked for each directory after it was yielded (so after the consumer looked at it), when
   * the walk could go below it: false skips everything below it.
   */
  descend?: (entry: WalkEntry) => boolean;
  /** Called when the walk is done with a directory that `descend` let it enter. */
  leave?: () => void;
}

/** Where trees come from: a repository, or anything else that hands out tree blobs. */
export type TreeSource = Pick<IndexedRepository, 'loadBlob'>;

export interface TreeReaderOptions {
  signal?: AbortSignal | undefined;
  /** A tree that could not be walked into as it is (the walk goes on without it). */
  onWarning?: ((message: string) => void) | undefined;
  /** Milliseconds a walk may run between two turns of the event loop (default TURN_MS): less when other work shares the thread. */
  turnMs?: number | undefined;
  /**
   * Keep recently decoded trees (default true). Walks that read each tree once (a reachability
   * walk with its seen-set) gain nothing from it and pay its memory and garbage collection.
   */
  cache?: boolean | undefined;
}

/** Milliseconds a walk may run between two turns of the event loop (which is where signals are heard). */
const TURN_MS = 10;
/** Decoded tree entries kept in memory, at most: a few tens of MB. */
const CACHED_NODES = 50_000;

/**
 * Reads and decodes trees for walks, and keeps walks interruptible. Trees of a tree pack held in
 * memory load without waiting for I/O, so a walk over them never returns to the event loop by
 * itself: checkpoint() gives it a turn every TURN_MS, and throws AbortedError once the signal
 * fired. Recently used trees are kept decoded, since a tree shared by many paths or snapshots is
 * wanted again and again: in two generations of up to CACHED_NODES / 2 entries each, the older
 * dropped whole when the newer is full (an LRU list evicting one tree at a time costs a scan
 * per eviction in a JavaScript Map). The arrays read() returns are shared: callers must not
 * change them.
 */
export class TreeReader {
  private recent = new Map<string, TreeNode[]>();
  private recentNodes = 0;
  private older = new Map<string, TreeNode[]>();
  private lastTurn = performance.now();

  constructor(
    private readonly source: TreeSource,
    private readonly options: TreeReaderOptions = {},
  ) {}

  async read(id: Buffer): Promise<TreeNode[]> {
    await this.checkpoint();
    if (this.options.cache === false) return loadTree(this.source, id);
    const hex = id.toString('hex');
    const recent = this.recent.get(hex);
    if (recent) return recent;
    const nodes = this.older.get(hex) ?? decodeTree(await this.source.loadBlob('tree', id), `tree ${hex}`);
    if (nodes.length <= CACHED_NODES / 2) {
      this.recent.set(hex, nodes);
      this.recentNodes += nodes.length;
      if (this.recentNodes > CACHED_NODES / 2) {
        this.older = this.recent;
        this.recent = new Map();
        this.recentNodes = 0;
      }
    }
    return nodes;
  }

  /** Throws AbortedError once the signal fired; lets the event loop run when the walk has had TURN_MS. */
  async checkpoint(): Promise<void> {
    if (performance.now() - this.lastTurn >= (this.options.turnMs ?? TURN_MS)) {
      await nextTurn();
      this.lastTurn = performance.now();
    }
    if (this.options.signal?.aborted) throw new AbortedError();
  }

  warn(message: string): void {
    this.options.onWarning?.(message);
  }
}

/** The decoded entries of one tree blob. */
export async function loadTree(repo: TreeSource, id: Buffer): Promise<TreeNode[]> {
  return decodeTree(await repo.loadBlob('tree', id), `tree ${id.toString('hex')}`);
}

const SLASH = 0x2f;

/**
 * The path of the entry a walk is at, in one buffer that grows and is cut back as the walk goes
 * down and up: a walk holds the prefix length of each open directory, not a copy of its path.
 */
export class PathBuilder {
  private bytes: Buffer;

  constructor(prefix: Buffer = Buffer.alloc(0)) {
    this.bytes = Buffer.allocUnsafe(Math.max(256, 2 * prefix.length));
    prefix.copy(this.bytes);
  }

  /**
   * The path of `name` in the directory whose path is the first `prefixLength` bytes of the
   * last path made (a copy, the caller's to keep). What follows those bytes is overwritten.
   */
  enter(prefixLength: number, name: Buffer): Buffer {
    const end = prefixLength + 1 + name.length;
    if (end > this.bytes.length) {
      const larger = Buffer.allocUnsafe(Math.max(end, 2 * this.bytes.length));
      this.bytes.copy(larger, 0, 0, prefixLength);
      this.bytes = larger;
    }
    this.bytes[prefixLength] = SLASH;
    name.copy(this.bytes, prefixLength + 1);
    return Buffer.from(this.bytes.subarray(0, end));
  }
}

/** A WalkEntry whose display path is made on first use: a search looks at most entries by name only. */
class LazyEntry implements WalkEntry {
  private display: string | undefined;

  constructor(
    readonly pathBytes: Buffer,
    readonly node: TreeNode,
    readonly depth: number,
  ) {}

  get path(): string {
    this.display ??= this.pathBytes.toString('utf8');
    return this.display;
  }
}

interface WalkFrame {
  nodes: TreeNode[];
  next: number;
  /** Depth of this tree's entries. */
  depth: number;
  /** Length of this tree's path in the walk's PathBuilder. */
  pathLength: number;
  treeHex: string;
}

/**
 * Depth-first, pre-order (a directory before its entries), entries in name order. A directory
 * whose tree is already open on the way down to it is listed, not entered, with a warning.
 */
export async function* walkTree(trees: TreeReader, treeId: Buffer, options: WalkOptions = {}): AsyncGenerator<WalkEntry> {
  const maxDepth = options.maxDepth ?? Infinity;
  const prefix = options.prefix ?? Buffer.alloc(0);
  const path = new PathBuilder(prefix);
  const rootHex = treeId.toString('hex');
  const open = new Set([rootHex]);
  const stack: WalkFrame[] = [{ nodes: await trees.read(treeId), next: 0, depth: 1, pathLength: prefix.length, treeHex: rootHex }];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.next === frame.nodes.length) {
      stack.pop();
      open.delete(frame.treeHex);
      if (stack.length > 0) options.leave?.();
      continue;
    }
    await trees.checkpoint();
    const node = frame.nodes[frame.next++]!;
    const pathBytes = path.enter(frame.pathLength, node.name);
    const entry = new LazyEntry(pathBytes, node, frame.depth);
    yield entry;
    if (node.type !== 'dir' || !node.subtree || frame.depth >= maxDepth) continue;
    const hex = node.subtree.toString('hex');
    if (open.has(hex)) {
      trees.warn(repeatedTreeWarning(entry.path, hex));
      continue;
    }
    if (!(options.descend?.(entry) ?? true)) continue;
    open.add(hex);
    stack.push({ nodes: await trees.read(node.subtree), next: 0, depth: frame.depth + 1, pathLength: pathBytes.length, treeHex: hex });
  }
}

/** The warning for a directory whose tree is already open above it on the walk's path. */
export function repeatedTreeWarning(path: string, treeHex: string): string {
  return `${path}: its tree ${treeHex.slice(0, 16)}… is also the tree of a directory above it (the repository is damaged or forged; run 'bh check'); not walked into again`;
}

// ---- reachability (prune, check, stats --mode raw-data) --------------------------------------

/** What a reachability walk learns about a blob it reaches: first sight, seen before, or in no index. */
export type Reached = 'new' | 'seen' | 'missing';

/**
 * The seen-set of reachability walks, kept across the snapshots walked with it: prune's
 * UsedBlobs (one bit per index row), check's and stats' own. A tree is read only when mark()
 * answers 'new', so mark() must answer 'seen' for a tree it answered 'new' for before: then each
 * tree is read once however many paths and snapshots share it, and a forged tree that holds
 * itself cannot make the walk loop. For data blobs only 'missing' matters.
 */
export interface ReachedBlobs {
  mark(type: BlobType, id: Buffer): Reached;
}

export interface ReachableHandlers {
  /**
   * A blob mark() found in no index. `path()` (call it during the handler) is where the walk
   * reached it: the file's path for a data blob, the directory's for a tree ("/" for the root).
   */
  onMissing?: ((type: BlobType, id: Buffer, path: () => string) => void) | undefined;
  /** A tree that cannot be read or decoded; without this handler the walk throws the error. */
  onUnreadableTree?: ((id: Buffer, path: () => string, error: Error) => void) | undefined;
}

interface ReachFrame {
  nodes: TreeNode[];
  /** The entry after the one the walk is at. */
  next: number;
}

/**
 * Every tree and data blob reachable from `rootTree`, marked in `reached`. Depth-first, entries
 * in name order, over an explicit stack of trees read through `trees` (interruptible, memory
 * linear in the depth). Paths are made only when a handler asks, from the stack.
 */
export async function walkReachable(trees: TreeReader, rootTree: Buffer, reached: ReachedBlobs, handlers: ReachableHandlers = {}): Promise<void> {
  const stack: ReachFrame[] = [];
  /** The path of the entry the walk is at: the current entry of each open tree. */
  const pathHere = (): string => '/' + stack.map((frame) => frame.nodes[frame.next - 1]!.name.toString()).join('/');
  const enter = async (id: Buffer): Promise<void> => {
    const mark = reached.mark('tree', id);
    if (mark === 'seen') return;
    if (mark === 'missing') {
      handlers.onMissing?.('tree', id, pathHere);
      return;
    }
    let nodes: TreeNode[];
    try {
      nodes = await trees.read(id);
    } catch (error) {
      if (!handlers.onUnreadableTree || error instanceof AbortedError) throw error;
      handlers.onUnreadableTree(id, pathHere, error as Error);
      return;
    }
    stack.push({ nodes, next: 0 });
  };
  await enter(rootTree);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.next === frame.nodes.length) {
      stack.pop();
      continue;
    }
    const node = frame.nodes[frame.next++]!;
    for (const blob of node.content ?? []) {
      if (reached.mark('data', blob) === 'missing') handlers.onMissing?.('data', blob, pathHere);
    }
    if (node.subtree) await enter(node.subtree);
  }
}

/**
 * Splits a user-given snapshot path ("/srv/www", "srv/www/", "/") into name components.
 * "." and empty components are dropped; ".." is refused (snapshot paths are absolute and plain).
 */
export function splitSnapshotPath(path: string): Buffer[] {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new Error(`'${path}': '..' is not allowed in a snapshot path`);
  return parts.map((p) => Buffer.from(p, 'utf8'));
}

/**
 * The node at `components` below the root tree, or undefined when there is none. The root itself
 * (no components) has no node: callers treat it as the directory `rootTree`.
 */
export async function resolvePath(trees: TreeReader, rootTree: Buffer, components: Buffer[]): Promise<TreeNode | undefined> {
  let tree: Buffer | undefined = rootTree;
  let found: TreeNode | undefined;
  for (const name of components) {
    if (!tree) return undefined;
    found = (await trees.read(tree)).find((n) => n.name.equals(name));
    if (!found) return undefined;
    tree = found.type === 'dir' ? found.subtree : undefined;
  }
  return found;
}

// ---- describing nodes ------------------------------------------------------------------------

const TYPE_CHAR: Record<NodeType, string> = { file: '-', dir: 'd', symlink: 'l', fifo: 'p', chardev: 'c', blockdev: 'b', socket: 's' };

/** `ls -l` style: "drwxr-xr-x", "-rwsr-x--T". */
export function modeString(type: NodeType, mode: number): string {
  const bit = (mask: number, c: string): string => (mode & mask ? c : '-');
  const special = (exec: number, flag: number, set: string, unset: string): string => (mode & flag ? (mode & exec ? set : unset) : mode & exec ? 'x' : '-');
  return (
    TYPE_CHAR[type] +
    bit(0o400, 'r') + bit(0o200, 'w') + special(0o100, 0o4000, 's', 'S') +
    bit(0o040, 'r') + bit(0o020, 'w') + special(0o010, 0o2000, 's', 'S') +
    bit(0o004, 'r') + bit(0o002, 'w') + special(0o001, 0o1000, 't', 'T')
  );
}

/** Nanoseconds since the epoch as ISO 8601 UTC with all nine fraction digits: "2024-05-01T10:00:00.123456789Z". */
export function nsToIso(ns: bigint): string {
  let seconds = ns / 1_000_000_000n;
  let fraction = ns % 1_000_000_000n;
  if (fraction < 0n) {
    fraction += 1_000_000_000n;
    seconds -= 1n;
  }
  const base = new Date(Number(seconds) * 1000).toISOString(); // "…T10:00:00.000Z"
  return `${base.slice(0, -5)}.${fraction.toString().padStart(9, '0')}Z`;
}

/** Local time "YYYY-MM-DD HH:MM:SS" (as `bh snapshots` shows times). */
export function localTime(ms: number): string {
  return new Date(ms).toLocaleString('sv-SE');
}

export function nsToMs(ns: bigint): number {
  return Number(ns / 1_000_000n);
}

export function isUtf8(bytes: Buffer): boolean {
  return Buffer.from(bytes.toString('utf8'), 'utf8').equals(bytes);
}

/** `{path}` for JSON, plus `path_bytes` (base64 of the exact bytes) when the path is not valid UTF-8. */
export function pathFields(pathBytes: Buffer): { path: string; path_bytes?: string } {
  return isUtf8(pathBytes) ? { path: pathBytes.toString('utf8') } : { path: pathBytes.toString('utf8'), path_bytes: pathBytes.toString('base64') };
}

/**
 * One node as JSON (the `ls --json` and `find --json` record). Names and paths that are not
 * valid UTF-8 are given lossily in `name`/`path` and exactly, base64, in `name_bytes`/`path_bytes`.
 */
export function nodeJson(pathBytes: Buffer, node: TreeNode): Record<string, unknown> {
  const out: Record<string, unknown> = {
    path: pathBytes.toString('utf8'),
    name: node.name.toString('utf8'),
    type: node.type,
    mode: node.mode,
    permissions: modeString(node.type, node.mode),
    uid: node.uid,
    gid: node.gid,
    size: node.size,
    mtime: nsToIso(node.mtimeNs),
    ctime: nsToIso(node.ctimeNs),
    inode: node.inode.toString(),
    links: node.links,
  };
  if (!isUtf8(pathBytes)) out['path_bytes'] = pathBytes.toString('base64');
  if (!isUtf8(node.name)) out['name_bytes'] = node.name.toString('base64');
  if (node.linkTarget) {
    out['linktarget'] = node.linkTarget.toString('utf8');
    if (!isUtf8(node.linkTarget)) out['linktarget_bytes'] = node.linkTarget.toString('base64');
  }
  if (node.rdev !== undefined) out['rdev'] = node.rdev.toString();
  if (node.sha256) out['sha256'] = node.sha256.toString('hex');
  if (node.xattrs && node.xattrs.length > 0) out['xattrs'] = node.xattrs.map((x) => ({ name: x.name, value: x.value.toString('base64') }));
  return out;
}

/** restic's `ls -l` line: mode, uid, gid, size, local mtime, path (and " -> target" for a symlink). */
export function longLine(path: string, node: TreeNode): string {
  const target = node.linkTarget ? ` -> ${node.linkTarget.toString('utf8')}` : '';
  return `${modeString(node.type, node.mode)} ${String(node.uid).padStart(5)} ${String(node.gid).padStart(5)} ${String(node.size).padStart(6)} ${localTime(nsToMs(node.mtimeNs))} ${path}${target}`;
}

// ---- listing (`bh ls`) -----------------------------------------------------------------------

export class PathNotInSnapshotError extends Error {
  constructor(path: string) {
    super(`'${path}' does not exist in this snapshot`);
    this.name = 'PathNotInSnapshotError';
  }
}

/**
 * The entries `bh ls` shows, restic's way: without `paths`, every entry of the snapshot,
 * recursively. With paths, each path's own entry followed by its direct children, or its whole
 * subtree when `recursive`. A path that is not in the snapshot throws PathNotInSnapshotError.
 */
export async function* listEntries(trees: TreeReader, rootTree: Buffer, paths: readonly string[], recursive: boolean): AsyncGenerator<WalkEntry> {
  if (paths.length === 0) {
    yield* walkTree(trees, rootTree);
    return;
  }
  for (const path of paths) {
    const components = splitSnapshotPath(path);
    const prefix = Buffer.concat(components.flatMap((c) => [Buffer.of(SLASH), c]));
    let tree = rootTree;
    if (components.length > 0) {
      const node = await resolvePath(trees, rootTree, components);
      if (!node) throw new PathNotInSnapshotError(path);
      yield { path: prefix.toString('utf8'), pathBytes: prefix, node, depth: 0 };
      if (node.type !== 'dir' || !node.subtree) continue;
      tree = node.subtree;
    }
    yield* walkTree(trees, tree, { prefix, maxDepth: recursive ? Infinity : 1 });
  }
}
