/**
 * `bh copy`: snapshots from one repository into another, transferring only the blobs the
 * destination lacks.
 *
 * Blobs are never re-chunked: the copy keeps the source's chunks. Unless the two repositories
 * share their chunking keys (`init --copy-chunker-params`), blob ids are keyed differently, so
 * every data blob gets its destination id by re-hashing its plaintext under the destination's
 * id key, and every tree is rewritten with destination ids (which changes its own id). With
 * shared keys ids are equal and trees are stored byte for byte as they are.
 *
 * Re-hashing needs the plaintext, which would mean reading every blob of the source again on
 * every copy. Instead, snapshots copied earlier teach the mapping: for each destination snapshot
 * whose origin (`original`) is also in the source, the two trees are walked side by side (they
 * have the same shape, because chunks carry over unchanged), which pairs every source blob id
 * with its destination id, and marks those destination trees as complete. A later copy then
 * reads from the source only the directories that changed and the data blobs that are new.
 *
 * Order per docs/FORMAT.md §10, for each snapshot: blobs (data, then the trees that name them),
 * then the index (flush), then the snapshot record.
 */
import { type IndexedRepository, type Repository, mapLimit } from '../repo/repository.js';
import { AbortedError } from './archiver.js';
import { type DamagedSnapshotHandler, type Snapshot, type SnapshotFilter, type SnapshotRecord, loadSnapshots, originOf, selectSnapshots } from './snapshot.js';
import { type TreeNode, decodeTree, encodeTree } from './tree.js';
import { loadTree } from './walk.js';

export interface CopyOptions {
  /** Snapshot ids, prefixes or `latest`; empty: every snapshot matching `filter`. */
  refs: readonly string[];
  filter: SnapshotFilter;
  onDamagedSnapshot: DamagedSnapshotHandler;
  /** Told about each selected snapshot before its blobs are copied (or that it is skipped). */
  onSnapshot?: (source: Snapshot, existing: Snapshot | undefined) => void;
  signal?: AbortSignal;
}

export interface CopiedSnapshot {
  source: string;
  copy: string;
}

export interface SkippedSnapshot {
  source: string;
  /** The destination snapshot that already holds it. */
  existing: string;
}

export interface CopyResult {
  copied: CopiedSnapshot[];
  skipped: SkippedSnapshot[];
  /** Whether source and destination share chunking keys (no re-hashing, trees unchanged). */
  sharedChunking: boolean;
  dataBlobsAdded: number;
  treeBlobsAdded: number;
  /** Bytes the copy added to the destination (compressed and encrypted). */
  bytesAdded: number;
  /** Data blobs read from the source (a blob the mapping already knew is not read). */
  dataBlobsRead: number;
}

/** Blob copies of one directory in flight at once. */
const BLOB_CONCURRENCY = 8;

export async function copySnapshots(source: Repository, destination: Repository, options: CopyOptions): Promise<CopyResult> {
  if (source.config.id === destination.config.id) throw new Error(`the source and the destination are the same repository (${source.config.id.slice(0, 10)})`);
  // Read order: snapshots, then the index, on both sides.
  const sourceSnapshots = await loadSnapshots(source, options.onDamagedSnapshot);
  const destinationSnapshots = await loadSnapshots(destination, options.onDamagedSnapshot);
  const selected = selectSnapshots(sourceSnapshots, options.refs, options.filter);
  const copier = new Copier(await source.loadIndex(sourceSnapshots.listing), await destination.loadIndex(destinationSnapshots.listing, { verifyPacks: true }), options.signal);
  try {
    return await copier.run(selected, sourceSnapshots, destinationSnapshots, options.onSnapshot);
  } finally {
    await copier.close();
  }
}

class Copier {
  private readonly shared: boolean;
  /** Source tree id (hex) → destination tree id, for trees complete in the destination. */
  private readonly trees = new Map<string, Buffer>();
  /** Source data blob id (hex) → destination id (a promise while the blob is being copied). */
  private readonly data = new Map<string, Buffer | Promise<Buffer>>();
  private readonly result: CopyResult;

  constructor(
    private readonly source: IndexedRepository,
    private readonly destination: IndexedRepository,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.shared = source.keys.sharesChunkingWith(destination.keys);
    this.result = { copied: [], skipped: [], sharedChunking: this.shared, dataBlobsAdded: 0, treeBlobsAdded: 0, bytesAdded: 0, dataBlobsRead: 0 };
  }

  async run(selected: Snapshot[], sourceSnapshots: Snapshot[], destinationSnapshots: Snapshot[], onSnapshot: CopyOptions['onSnapshot']): Promise<CopyResult> {
    const existing = new ExistingSnapshots(destinationSnapshots, this.shared);
    const toCopy: Snapshot[] = [];
    for (const snapshot of selected) {
      const there = existing.find(snapshot);
      onSnapshot?.(snapshot, there);
      if (there) this.result.skipped.push({ source: snapshot.id, existing: there.id });
      else toCopy.push(snapshot);
    }
    if (toCopy.length > 0) await this.learnFromEarlierCopies(sourceSnapshots, destinationSnapshots);
    try {
      for (const snapshot of toCopy) {
        const tree = await this.copyTree(Buffer.from(snapshot.record.tree, 'hex'));
        const record: SnapshotRecord = { ...snapshot.record, tree: tree.toString('hex'), parent: existing.copyOf(snapshot.record.parent, sourceSnapshots), original: originOf(snapshot) };
        const id = await this.destination.saveSnapshot(record, this.signal);
        existing.add({ id, record });
        this.result.copied.push({ source: snapshot.id, copy: id });
      }
    } catch (error) {
      // Interrupted: keep what was packed (indexed, without a snapshot), so the next run reuses it.
      if (error instanceof AbortedError) await this.destination.flush();
      throw error;
    }
    this.result.bytesAdded = this.destination.bytesAdded;
    return this.result;
  }

  close(): Promise<void> {
    return this.destination.close();
  }

  /** Pairs the trees of snapshots copied earlier with their source trees (see the top of this file). */
  private async learnFromEarlierCopies(sourceSnapshots: Snapshot[], destinationSnapshots: Snapshot[]): Promise<void> {
    const sourceByOrigin = new Map(sourceSnapshots.map((s) => [originOf(s), s]));
    for (const copy of destinationSnapshots) {
      const from = sourceByOrigin.get(originOf(copy));
      if (from) await this.learn(Buffer.from(from.record.tree, 'hex'), Buffer.from(copy.record.tree, 'hex'));
    }
  }

  private async learn(sourceTree: Buffer, destinationTree: Buffer): Promise<void> {
    const key = sourceTree.toString('hex');
    if (this.trees.has(key) || !this.destination.hasBlob('tree', destinationTree)) return;
    const there = await loadTree(this.destination, destinationTree);
    const here = this.shared && sourceTree.equals(destinationTree) ? there : await loadTree(this.source, sourceTree);
    // Trees of one origin have one shape; anything else (a damaged or foreign copy) teaches nothing.
    if (!sameShape(here, there)) return;
    this.trees.set(key, destinationTree);
    for (let i = 0; i < here.length; i++) {
      const [a, b] = [here[i]!, there[i]!];
      a.content?.forEach((id, j) => this.data.set(id.toString('hex'), b.content![j]!));
      if (a.subtree) await this.learn(a.subtree, b.subtree!);
    }
  }

  /** Copies one tree and everything below it that the destination lacks; returns its destination id. */
  private async copyTree(sourceId: Buffer): Promise<Buffer> {
    const key = sourceId.toString('hex');
    const known = this.trees.get(key);
    if (known) return known;
    if (this.signal?.aborted) throw new AbortedError();
    const plaintext = await this.source.loadBlob('tree', sourceId);
    const nodes = decodeTree(plaintext, `tree ${key}`);
    const files = nodes.filter((n): n is TreeNode & { content: Buffer[] } => n.content !== undefined && n.content.length > 0);
    const blobIds = files.flatMap((n) => n.content);
    const copied = await mapLimit(blobIds, BLOB_CONCURRENCY, (id) => this.copyData(id));
    let at = 0;
    for (const node of files) node.content = node.content.map(() => copied[at++]!);
    for (const node of nodes) if (node.subtree) node.subtree = await this.copyTree(node.subtree);
    // Shared keys: ids are unchanged, so the tree is stored exactly as it is in the source.
    const bytes = this.shared ? plaintext : encodeTree(nodes);
    const id = this.shared ? sourceId : this.destination.keys.blobId(bytes);
    if ((await this.destination.saveBlob('tree', bytes, id)).added) this.result.treeBlobsAdded++;
    this.trees.set(key, id);
    return id;
  }

  private copyData(sourceId: Buffer): Promise<Buffer> {
    const key = sourceId.toString('hex');
    const known = this.data.get(key);
    if (known instanceof Promise) return known;
    if (known && this.destination.hasBlob('data', known)) return Promise.resolve(known);
    if (this.shared && this.destination.hasBlob('data', sourceId)) return Promise.resolve(sourceId);
    const copying = this.transferData(sourceId).then((id) => {
      this.data.set(key, id);
      return id;
    });
    this.data.set(key, copying);
    return copying;
  }

  private async transferData(sourceId: Buffer): Promise<Buffer> {
    if (this.signal?.aborted) throw new AbortedError();
    const plaintext = await this.source.loadBlob('data', sourceId);
    this.result.dataBlobsRead++;
    const id = this.shared ? sourceId : this.destination.keys.blobId(plaintext);
    if ((await this.destination.saveBlob('data', plaintext, id)).added) this.result.dataBlobsAdded++;
    return id;
  }
}

/** Same entries in the same order, each file with as many chunks: safe to pair id by id. */
function sameShape(a: TreeNode[], b: TreeNode[]): boolean {
  return a.length === b.length && a.every((x, i) => {
    const y = b[i]!;
    return x.name.equals(y.name) && x.type === y.type && x.size === y.size && (x.content?.length ?? -1) === (y.content?.length ?? -1);
  });
}

/**
 * restic's rule for "already copied": a destination snapshot of the same origin (the source
 * snapshot itself, a copy of it, or the snapshot it copies), or, when ids are shared, one with
 * the same tree, time, host and paths.
 */
class ExistingSnapshots {
  private readonly byOrigin = new Map<string, Snapshot>();
  private readonly byContent = new Map<string, Snapshot>();

  constructor(snapshots: Snapshot[], private readonly shared: boolean) {
    for (const s of snapshots) this.add(s);
  }

  add(snapshot: Snapshot): void {
    this.byOrigin.set(originOf(snapshot), snapshot);
    this.byOrigin.set(snapshot.id, snapshot);
    if (this.shared) this.byContent.set(contentKey(snapshot.record), snapshot);
  }

  find(source: Snapshot): Snapshot | undefined {
    return this.byOrigin.get(originOf(source)) ?? this.byOrigin.get(source.id) ?? (this.shared ? this.byContent.get(contentKey(source.record)) : undefined);
  }

  /** The destination copy of the source snapshot `parent`, to keep the parent link; null if not copied. */
  copyOf(parent: string | null, sourceSnapshots: Snapshot[]): string | null {
    const from = parent === null ? undefined : sourceSnapshots.find((s) => s.id === parent);
    return from ? (this.find(from)?.id ?? null) : null;
  }
}

function contentKey(record: SnapshotRecord): string {
  return JSON.stringify([record.tree, record.time, record.host, [...record.paths].sort()]);
}
