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
import { compareNames, type NodeType, type TreeNode } from './tree.js';
import { PathBuilder, repeatedTreeWarning, type TreeReader, walkTree } from './walk.js';

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

/** Two trees being merged: their entries, how far the merge got in each, and the length of their path. */
interface DiffFrame {
  a: TreeNode[];
  b: TreeNode[];
  i: number;
  j: number;
  pathLength: number;
  /** The two tree ids, as the key of this pair on the current path. */
  pair: string;
}

export class TreeDiff {
  private readonly counts: Record<Category, DiffCounts> = { files: newCounts(), dirs: newCounts(), others: newCounts() };
  private readonly before = new BlobSet();
  private readonly after = new BlobSet();

  constructor(
    private readonly repo: IndexedRepository,
    private readonly trees: TreeReader,
  ) {}

  /**
   * Every change from the tree `from` to the tree `to`, in path order. The merge is a loop over
   * a stack of tree pairs (as walkTree is), so the depth of the trees costs no call stack; a
   * pair already open on the current path is not merged again (see walk.ts).
   */
  async *changes(from: Buffer, to: Buffer): AsyncGenerator<DiffChange> {
    if (from.equals(to)) return;
    this.before.add('tree', from);
    this.after.add('tree', to);
    const path = new PathBuilder();
    const open = new Set<string>();
    const stack = [await this.frame(from, to, 0, open)];
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const { a, b } = frame;
      if (frame.i === a.length && frame.j === b.length) {
        stack.pop();
        open.delete(frame.pair);
        continue;
      }
      await this.trees.checkpoint();
      const order = frame.i === a.length ? 1 : frame.j === b.length ? -1 : compareNames(a[frame.i]!.name, b[frame.j]!.name);
      if (order < 0) {
        const node = a[frame.i++]!;
        yield* this.whole('-', path.enter(frame.pathLength, node.name), node);
        continue;
      }
      if (order > 0) {
        const node = b[frame.j++]!;
        yield* this.whole('+', path.enter(frame.pathLength, node.name), node);
        continue;
      }
      const before = a[frame.i++]!;
      const after = b[frame.j++]!;
      const pathBytes = path.enter(frame.pathLength, after.name);
      yield* this.pair(pathBytes, before, after);
      if (before.type !== 'dir' || after.type !== 'dir' || !before.subtree || !after.subtree || before.subtree.equals(after.subtree)) continue;
      this.before.add('tree', before.subtree);
      this.after.add('tree', after.subtree);
      const pair = pairKey(before.subtree, after.subtree);
      if (open.has(pair)) this.trees.warn(repeatedTreeWarning(pathBytes.toString('utf8'), after.subtree.toString('hex')));
      else stack.push(await this.frame(before.subtree, after.subtree, pathBytes.length, open));
    }
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

  private async frame(from: Buffer, to: Buffer, pathLength: number, open: Set<string>): Promise<DiffFrame> {
    const pair = pairKey(from, to);
    const frame = { a: await this.trees.read(from), b: await this.trees.read(to), i: 0, j: 0, pathLength, pair };
    open.add(pair);
    return frame;
  }

  /** An added or removed entry, with everything below it. */
  private async *whole(modifier: '+' | '-', pathBytes: Buffer, node: TreeNode): AsyncGenerator<DiffChange> {
    yield this.note(modifier, pathBytes, node);
    if (node.type !== 'dir' || !node.subtree) return;
    for await (const entry of walkTree(this.trees, node.subtree, { prefix: pathBytes })) {
      yield this.note(modifier, entry.pathBytes, entry.node);
    }
  }

  private note(modifier: '+' | '-', pathBytes: Buffer, node: TreeNode): DiffChange {
    this.counts[category(node.type)][modifier === '+' ? 'added' : 'removed']++;
    (modifier === '+' ? this.after : this.before).addNode(node);
    return { modifier, path: pathBytes.toString('utf8'), pathBytes, node };
  }

  /** The change of an entry present on both sides (none when it is the same), not what is below it. */
  private async *pair(pathBytes: Buffer, a: TreeNode, b: TreeNode): AsyncGenerator<DiffChange> {
    const path = pathBytes.toString('utf8');
    if (a.type !== b.type) {
      // Type changed: one "M" line; what the old directory held is removed, what the new one holds is added.
      this.counts[category(b.type)].modified++;
      this.before.addNode(a);
      this.after.addNode(b);
      yield { modifier: 'M', path, pathBytes, node: b, previousType: a.type };
      if (a.type === 'dir' && a.subtree) {
        for await (const entry of walkTree(this.trees, a.subtree, { prefix: pathBytes })) yield this.note('-', entry.pathBytes, entry.node);
      }
      if (b.type === 'dir' && b.subtree) {
        for await (const entry of walkTree(this.trees, b.subtree, { prefix: pathBytes })) yield this.note('+', entry.pathBytes, entry.node);
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
  }
}

function pairKey(a: Buffer, b: Buffer): string {
  return `${a.toString('hex')}:${b.toString('hex')}`;
}
