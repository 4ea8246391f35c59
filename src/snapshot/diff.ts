/**
 * Differences between two snapshots (`bh diff`), restic-style.
 *
 * The two root trees are merged entry by entry (both are sorted by name bytes). A directory whose
 * subtree id is the same on both sides is identical all the way down and is skipped without
 * being read; only differing subtrees are loaded. Each difference is one change:
 *
 *   +  the entry was added              -  the entry was removed
 *   M  its content changed (file chunks, symlink target, device number) or its type changed
 *   U  only its metadata changed: mode, uid, gid, mtime or xattrs
 *
 * A directory is never "M" for what is inside it: its added, removed and changed entries are
 * listed instead (it is "U" when its own metadata changed, e.g. its mtime after an entry was
 * added). Everything inside an added or removed directory is listed too.
 *
 * Blob counts and bytes (raw, uncompressed lengths, from the index) cover the blobs that the
 * differing entries hold on one side and not on the other, data and tree blobs alike, as
 * restic's "Added"/"Removed" do; blobs of identical subtrees are never looked at.
 */
import type { BlobType } from '../repo/crypto.js';
import type { IndexedRepository } from '../repo/repository.js';
import { AbortedError } from './archiver.js';
import { compareNames, type NodeType, type TreeNode } from './tree.js';
import { childPath, loadTree, walkTree } from './walk.js';

export type DiffModifier = '+' | '-' | 'M' | 'U';

export interface DiffChange {
  modifier: DiffModifier;
  /** Display path (lossy for names that are not valid UTF-8). */
  path: string;
  pathBytes: Buffer;
  /** The entry as it is in the second snapshot (the first for "-"). */
  node: TreeNode;
  /** Set for "M" when the entry's type changed. */
  previousType?: NodeType;
}

export interface DiffCounts {
  added: number;
  removed: number;
  /** Content or type changed ("M"). */
  modified: number;
  /** Only metadata changed ("U"). */
  metadata: number;
}

export interface BlobDelta {
  data_blobs: number;
  tree_blobs: number;
  /** Raw (uncompressed plaintext) bytes of those blobs. */
  bytes: number;
}

export interface DiffSummary {
  files: DiffCounts;
  dirs: DiffCounts;
  /** Symlinks, FIFOs, devices, sockets. */
  others: DiffCounts;
  added: BlobDelta;
  removed: BlobDelta;
}

type Category = 'files' | 'dirs' | 'others';

function category(type: NodeType): Category {
  return type === 'file' ? 'files' : type === 'dir' ? 'dirs' : 'others';
}

function newCounts(): DiffCounts {
  return { added: 0, removed: 0, modified: 0, metadata: 0 };
}

class BlobSet {
  readonly data = new Set<string>();
  readonly tree = new Set<string>();

  add(type: BlobType, id: Buffer): void {
    this[type].add(id.toString('hex'));
  }

  addNode(node: TreeNode): void {
    for (const id of node.content ?? []) this.add('data', id);
    if (node.subtree) this.add('tree', node.subtree);
  }
}

function sameIds(a: readonly Buffer[] | undefined, b: readonly Buffer[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length && x.every((id, i) => id.equals(y[i]!));
}

function sameXattrs(a: TreeNode, b: TreeNode): boolean {
  const x = a.xattrs ?? [];
  const y = b.xattrs ?? [];
  return x.length === y.length && x.every((v, i) => v.name === y[i]!.name && v.value.equals(y[i]!.value));
}

/** Content in the `M` sense; both nodes have the same type. */
function contentDiffers(a: TreeNode, b: TreeNode): boolean {
  switch (a.type) {
    case 'file':
      return a.size !== b.size || !sameIds(a.content, b.content);
    case 'symlink':
      return !(a.linkTarget ?? Buffer.alloc(0)).equals(b.linkTarget ?? Buffer.alloc(0));
    case 'chardev':
    case 'blockdev':
      return a.rdev !== b.rdev;
    default:
      return false;
  }
}

function metadataDiffers(a: TreeNode, b: TreeNode): boolean {
  return a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || a.mtimeNs !== b.mtimeNs || !sameXattrs(a, b);
}

export class TreeDiff {
  private readonly counts: Record<Category, DiffCounts> = { files: newCounts(), dirs: newCounts(), others: newCounts() };
  private readonly before = new BlobSet();
  private readonly after = new BlobSet();

  constructor(private readonly repo: IndexedRepository, private readonly signal?: AbortSignal) {}

  /** Every change from the tree `from` to the tree `to`, in path order. */
  async *changes(from: Buffer, to: Buffer): AsyncGenerator<DiffChange> {
    if (from.equals(to)) return;
    this.before.add('tree', from);
    this.after.add('tree', to);
    yield* this.diffTrees(from, to, Buffer.alloc(0));
  }

  /** Totals; complete once `changes()` has been iterated to its end. */
  summary(): DiffSummary {
    return { ...this.counts, added: this.delta(this.after, this.before), removed: this.delta(this.before, this.after) };
  }

  private delta(side: BlobSet, other: BlobSet): BlobDelta {
    const out: BlobDelta = { data_blobs: 0, tree_blobs: 0, bytes: 0 };
    for (const type of ['data', 'tree'] as const) {
      for (const hex of side[type]) {
        if (other[type].has(hex)) continue;
        if (type === 'data') out.data_blobs++;
        else out.tree_blobs++;
        out.bytes += this.repo.index.lookup(type, Buffer.from(hex, 'hex'))?.rawLength ?? 0;
      }
    }
    return out;
  }

  private async *diffTrees(from: Buffer, to: Buffer, prefix: Buffer): AsyncGenerator<DiffChange> {
    if (this.signal?.aborted) throw new AbortedError();
    const a = await loadTree(this.repo, from);
    const b = await loadTree(this.repo, to);
    let i = 0;
    let j = 0;
    while (i < a.length || j < b.length) {
      const order = i >= a.length ? 1 : j >= b.length ? -1 : compareNames(a[i]!.name, b[j]!.name);
      if (order < 0) yield* this.whole('-', prefix, a[i++]!);
      else if (order > 0) yield* this.whole('+', prefix, b[j++]!);
      else yield* this.pair(prefix, a[i++]!, b[j++]!);
    }
  }

  /** An added or removed entry, with everything below it. */
  private async *whole(modifier: '+' | '-', prefix: Buffer, node: TreeNode): AsyncGenerator<DiffChange> {
    const pathBytes = childPath(prefix, node.name);
    yield this.note(modifier, pathBytes, node);
    if (node.type !== 'dir' || !node.subtree) return;
    for await (const entry of walkTree(this.repo, node.subtree, { prefix: pathBytes, signal: this.signal })) {
      yield this.note(modifier, entry.pathBytes, entry.node);
    }
  }

  private note(modifier: '+' | '-', pathBytes: Buffer, node: TreeNode): DiffChange {
    this.counts[category(node.type)][modifier === '+' ? 'added' : 'removed']++;
    (modifier === '+' ? this.after : this.before).addNode(node);
    return { modifier, path: pathBytes.toString('utf8'), pathBytes, node };
  }

  private async *pair(prefix: Buffer, a: TreeNode, b: TreeNode): AsyncGenerator<DiffChange> {
    const pathBytes = childPath(prefix, b.name);
    const path = pathBytes.toString('utf8');
    if (a.type !== b.type) {
      // Type changed: one "M" line; what the old directory held is removed, what the new one holds is added.
      this.counts[category(b.type)].modified++;
      this.before.addNode(a);
      this.after.addNode(b);
      yield { modifier: 'M', path, pathBytes, node: b, previousType: a.type };
      if (a.type === 'dir' && a.subtree) {
        for await (const entry of walkTree(this.repo, a.subtree, { prefix: pathBytes, signal: this.signal })) yield this.note('-', entry.pathBytes, entry.node);
      }
      if (b.type === 'dir' && b.subtree) {
        for await (const entry of walkTree(this.repo, b.subtree, { prefix: pathBytes, signal: this.signal })) yield this.note('+', entry.pathBytes, entry.node);
      }
      return;
    }
    if (contentDiffers(a, b)) {
      this.counts[category(b.type)].modified++;
      this.before.addNode(a);
      this.after.addNode(b);
      yield { modifier: 'M', path, pathBytes, node: b };
    } else if (metadataDiffers(a, b)) {
      this.counts[category(b.type)].metadata++;
      yield { modifier: 'U', path, pathBytes, node: b };
    }
    if (a.type === 'dir' && a.subtree && b.subtree && !a.subtree.equals(b.subtree)) {
      this.before.add('tree', a.subtree);
      this.after.add('tree', b.subtree);
      yield* this.diffTrees(a.subtree, b.subtree, pathBytes);
    }
  }
}
