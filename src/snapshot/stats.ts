/**
 * Size statistics over snapshots (`bh stats`), in restic's two main modes.
 *
 * restore-size: what restoring each snapshot would produce, summed over the snapshots. As in
 * restic, every entry counts (files, directories, symlinks, …), and a hardlinked inode's size
 * counts once per snapshot (links > 1 and the same device and inode), since restoring writes it
 * once. Per-tree totals are remembered, so a tree shared by many snapshots is read once.
 *
 * raw-data: the distinct blobs the snapshots reference, data and tree blobs, each counted once
 * however many files and snapshots use it, with their raw (plaintext) lengths and their stored
 * (compressed and encrypted) lengths from the index. Each distinct tree is read once.
 */
import type { BlobType } from '../repo/crypto.js';
import type { IndexedRepository } from '../repo/repository.js';
import { type Reached, type ReachedBlobs, type TreeReader, walkReachable, walkTree } from './walk.js';

export interface RestoreSizeStats {
  snapshots_count: number;
  /** Bytes a restore writes (hardlinked inodes once per snapshot). */
  total_size: number;
  /** Every entry: files, directories and others (restic's "Total File Count"). */
  total_file_count: number;
  files: number;
  dirs: number;
  others: number;
}

export interface RawDataStats {
  snapshots_count: number;
  total_blob_count: number;
  data_blobs: number;
  tree_blobs: number;
  /** Sum of the blobs' plaintext lengths. */
  total_uncompressed_size: number;
  /** Sum of the blobs' stored lengths (compressed, plus the encryption envelope). */
  total_size: number;
  data_uncompressed_size: number;
  data_size: number;
  /** total_uncompressed_size / total_size (0 when there is nothing). */
  compression_ratio: number;
  /** Percent of the raw size saved: (1 − stored / raw) × 100. */
  compression_space_saving: number;
  /** Blobs a tree names that no index lists (the repository is damaged; run check). */
  missing_blobs: number;
}

interface TreeTotals {
  files: number;
  dirs: number;
  others: number;
  /** Bytes of files that are not hardlinked. */
  size: number;
  /** Hardlinked files below this tree: "device:inode" → size. */
  linked: Map<string, number> | undefined;
}

/** Trees whose totals are remembered at most; past it, trees are read again (correct, slower). */
const MAX_REMEMBERED = 1_000_000;

function noTotals(): TreeTotals {
  return { files: 0, dirs: 0, others: 0, size: 0, linked: undefined };
}

function addTotals(into: TreeTotals, from: TreeTotals): void {
  into.files += from.files;
  into.dirs += from.dirs;
  into.others += from.others;
  into.size += from.size;
  if (!from.linked) return;
  into.linked ??= new Map();
  for (const [inode, size] of from.linked) into.linked.set(inode, size);
}

export class RestoreSizeCounter {
  private readonly remembered = new Map<string, TreeTotals>();
  private readonly stats: RestoreSizeStats = { snapshots_count: 0, total_size: 0, total_file_count: 0, files: 0, dirs: 0, others: 0 };

  constructor(private readonly trees: TreeReader) {}

  async addSnapshot(rootTree: Buffer): Promise<void> {
    const t = await this.totals(rootTree);
    this.stats.snapshots_count++;
    this.stats.files += t.files;
    this.stats.dirs += t.dirs;
    this.stats.others += t.others;
    this.stats.total_file_count += t.files + t.dirs + t.others;
    this.stats.total_size += t.size;
    for (const size of t.linked?.values() ?? []) this.stats.total_size += size;
  }

  result(): RestoreSizeStats {
    return { ...this.stats };
  }

  /** The totals of a tree: one walk, in which every tree whose totals are known is added up, not entered. */
  private async totals(rootTree: Buffer): Promise<TreeTotals> {
    const rootHex = rootTree.toString('hex');
    const known = this.remembered.get(rootHex);
    if (known) return known;
    /** The trees the walk is in, innermost last, each with its totals so far. */
    const open = [{ hex: rootHex, totals: noTotals() }];
    const walk = walkTree(this.trees, rootTree, {
      descend: ({ node }) => {
        const hex = node.subtree!.toString('hex');
        const sub = this.remembered.get(hex);
        if (!sub) open.push({ hex, totals: noTotals() });
        else addTotals(open[open.length - 1]!.totals, sub);
        return !sub;
      },
      leave: () => {
        const done = open.pop()!;
        this.remember(done.hex, done.totals);
        addTotals(open[open.length - 1]!.totals, done.totals);
      },
    });
    for await (const { node } of walk) {
      const t = open[open.length - 1]!.totals;
      if (node.type === 'dir') {
        t.dirs++;
      } else if (node.type === 'file') {
        t.files++;
        if (node.links > 1) (t.linked ??= new Map()).set(`${node.device}:${node.inode}`, node.size);
        else t.size += node.size;
      } else {
        t.others++;
      }
    }
    const root = open.pop()!;
    this.remember(root.hex, root.totals);
    return root.totals;
  }

  private remember(hex: string, totals: TreeTotals): void {
    if (this.remembered.size < MAX_REMEMBERED) this.remembered.set(hex, totals);
  }
}

/** raw-data: a reachability walk (src/snapshot/walk.ts) whose seen-set adds up each blob's lengths the first time. */
export class RawDataCounter implements ReachedBlobs {
  private readonly seen: Record<BlobType, Set<string>> = { data: new Set(), tree: new Set() };
  private snapshots = 0;
  private missing = 0;
  private readonly sums = { data: { count: 0, raw: 0, stored: 0 }, tree: { count: 0, raw: 0, stored: 0 } };

  constructor(
    private readonly repo: IndexedRepository,
    private readonly trees: TreeReader,
  ) {}

  async addSnapshot(rootTree: Buffer): Promise<void> {
    this.snapshots++;
    await walkReachable(this.trees, rootTree, this);
  }

  /** Counts a blob the first time it is reached (a missing one as missing). */
  mark(type: BlobType, id: Buffer): Reached {
    const hex = id.toString('hex');
    if (this.seen[type].has(hex)) return 'seen';
    this.seen[type].add(hex);
    const where = this.repo.index.lookup(type, id);
    if (!where) {
      this.missing++;
      return 'missing';
    }
    this.sums[type].count++;
    this.sums[type].raw += where.rawLength;
    this.sums[type].stored += where.length;
    return 'new';
  }

  result(): RawDataStats {
    const raw = this.sums.data.raw + this.sums.tree.raw;
    const stored = this.sums.data.stored + this.sums.tree.stored;
    const dataBlobs = this.sums.data.count;
    const treeBlobs = this.sums.tree.count;
    return {
      snapshots_count: this.snapshots,
      total_blob_count: dataBlobs + treeBlobs,
      data_blobs: dataBlobs,
      tree_blobs: treeBlobs,
      total_uncompressed_size: raw,
      total_size: stored,
      data_uncompressed_size: this.sums.data.raw,
      data_size: this.sums.data.stored,
      compression_ratio: stored > 0 ? raw / stored : 0,
      compression_space_saving: raw > 0 ? (1 - stored / raw) * 100 : 0,
      missing_blobs: this.missing,
    };
  }
}
