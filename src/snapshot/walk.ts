/**
 * Walking a snapshot's trees, and describing nodes for people and for JSON: the one tree walker
 * behind `ls`, `find`, `stats` and `diff`.
 *
 * Paths are the snapshot's paths ("/srv/www/index.html"): the root tree is the virtual "/"
 * (docs/FORMAT.md §6). Names are bytes; every entry carries its exact path bytes, and a display
 * string that is lossy (U+FFFD) for names that are not valid UTF-8.
 */
import type { IndexedRepository } from '../repo/repository.js';
import { AbortedError } from './archiver.js';
import { type NodeType, type TreeNode, decodeTree } from './tree.js';

export interface WalkEntry {
  /** The path for display: lossy where a name is not valid UTF-8. */
  path: string;
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
   * Asked for each directory after it was yielded (so after the consumer looked at it):
   * false skips everything below it.
   */
  descend?: (entry: WalkEntry) => boolean;
  signal?: AbortSignal | undefined;
}

const SLASH = Buffer.from('/');

/** The decoded entries of one tree blob. */
export async function loadTree(repo: IndexedRepository, id: Buffer): Promise<TreeNode[]> {
  return decodeTree(await repo.loadBlob('tree', id), `tree ${id.toString('hex')}`);
}

export function childPath(prefix: Buffer, name: Buffer): Buffer {
  return Buffer.concat([prefix, SLASH, name]);
}

/** Depth-first, pre-order (a directory before its entries), entries in name order. */
export async function* walkTree(repo: IndexedRepository, treeId: Buffer, options: WalkOptions = {}): AsyncGenerator<WalkEntry> {
  yield* walkLevel(repo, treeId, options.prefix ?? Buffer.alloc(0), 1, options);
}

async function* walkLevel(repo: IndexedRepository, treeId: Buffer, prefix: Buffer, depth: number, options: WalkOptions): AsyncGenerator<WalkEntry> {
  const maxDepth = options.maxDepth ?? Infinity;
  for (const node of await loadTree(repo, treeId)) {
    if (options.signal?.aborted) throw new AbortedError();
    const pathBytes = childPath(prefix, node.name);
    const entry: WalkEntry = { path: pathBytes.toString('utf8'), pathBytes, node, depth };
    yield entry;
    if (node.type === 'dir' && node.subtree && depth < maxDepth && (options.descend?.(entry) ?? true)) {
      yield* walkLevel(repo, node.subtree, pathBytes, depth + 1, options);
    }
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
export async function resolvePath(repo: IndexedRepository, rootTree: Buffer, components: Buffer[]): Promise<TreeNode | undefined> {
  let tree: Buffer | undefined = rootTree;
  let found: TreeNode | undefined;
  for (const name of components) {
    if (!tree) return undefined;
    found = (await loadTree(repo, tree)).find((n) => n.name.equals(name));
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
export async function* listEntries(repo: IndexedRepository, rootTree: Buffer, paths: readonly string[], recursive: boolean, signal?: AbortSignal): AsyncGenerator<WalkEntry> {
  if (paths.length === 0) {
    yield* walkTree(repo, rootTree, { signal });
    return;
  }
  for (const path of paths) {
    const components = splitSnapshotPath(path);
    const prefix = Buffer.concat(components.flatMap((c) => [SLASH, c]));
    let tree = rootTree;
    if (components.length > 0) {
      const node = await resolvePath(repo, rootTree, components);
      if (!node) throw new PathNotInSnapshotError(path);
      yield { path: prefix.toString('utf8'), pathBytes: prefix, node, depth: 0 };
      if (node.type !== 'dir' || !node.subtree) continue;
      tree = node.subtree;
    }
    yield* walkTree(repo, tree, { prefix, maxDepth: recursive ? Infinity : 1, signal });
  }
}
