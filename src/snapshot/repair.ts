/**
 * `bh repair snapshots`: snapshots whose trees reach blobs that are gone (a lost or damaged pack,
 * an index that lost entries) are rewritten without what is lost. A file with a missing data
 * blob is left out (a file with a hole would restore as something it never was), a directory
 * whose tree is gone is left out, and each one is named in a warning. The repaired snapshot
 * keeps time, host and paths, gets the tag `repaired` and `repaired_from` (the old id), and replaces
 * the old record. A snapshot whose root tree is gone cannot be repaired and is left as is.
 *
 * Order: new trees → their packs and index → the index without vanished packs → new snapshot
 * records → old records removed. A kill at any point leaves both records or the repaired one.
 */
import { dropVanishedPacks } from '../repo/repair-index.js';
import type { BlobType } from '../repo/crypto.js';
import type { IndexedRepository, Repository } from '../repo/repository.js';
import { loadSnapshots, type DamagedSnapshotHandler, type Snapshot, type SnapshotRecord } from './snapshot.js';
import { decodeTree, encodeTree, type TreeNode } from './tree.js';

export const REPAIRED_TAG = 'repaired';

export interface RepairSnapshotsOptions {
  dryRun: boolean;
  /** Told about each file or directory left out, and each snapshot that cannot be repaired. */
  onLost: (snapshot: Snapshot, path: string, what: 'file' | 'directory' | 'root') => void;
  onDamagedSnapshot: DamagedSnapshotHandler;
}

export interface RepairSnapshotsResult {
  snapshots: number;
  /** Old id → new id (undefined in a dry run). */
  repaired: { original: string; id: string | undefined; lost: string[] }[];
  unrepairable: string[];
  /** Packs the index listed that are gone from the repository (dropped from the index). */
  vanishedPacks: string[];
}

interface RewrittenTree {
  /** The tree's id after repair (the same id when nothing below it was lost), or null when the tree itself is lost. */
  id: Buffer | null;
  /** Paths left out, relative to this tree. */
  lost: { path: string; what: 'file' | 'directory' }[];
}

export async function repairSnapshots(repo: Repository, options: RepairSnapshotsOptions): Promise<RepairSnapshotsResult> {
  const snapshots = await loadSnapshots(repo, options.onDamagedSnapshot);
  const indexed = await repo.loadIndex(snapshots.listing);
  const stored = new Set((await repo.list('data')).map((f) => f.name));
  // Packs gone from the backend: marked condemned in memory so that lookups and dedup skip them.
  const vanished = indexed.index.packs().filter((id) => !stored.has(id.toString('hex')));
  for (const packId of vanished) indexed.index.condemn(packId, 0);
  const present = (type: BlobType, id: Buffer): boolean => {
    const where = indexed.index.lookup(type, id);
    return where !== undefined && stored.has(where.packId.toString('hex'));
  };
  const memo = new Map<string, RewrittenTree>();
  const rewrite = async (id: Buffer): Promise<RewrittenTree> => {
    const key = id.toString('hex');
    const known = memo.get(key);
    if (known) return known;
    const result = await rewriteTree(indexed, id, present, rewrite, options.dryRun);
    memo.set(key, result);
    return result;
  };

  const result: RepairSnapshotsResult = { snapshots: snapshots.length, repaired: [], unrepairable: [], vanishedPacks: vanished.map((id) => id.toString('hex')) };
  const replacements: { old: Snapshot; record: SnapshotRecord; lost: string[] }[] = [];
  for (const snapshot of snapshots) {
    const root = Buffer.from(snapshot.record.tree, 'hex');
    const tree = await rewrite(root);
    if (tree.id === null) {
      options.onLost(snapshot, '/', 'root');
      result.unrepairable.push(snapshot.id);
      continue;
    }
    if (tree.id.equals(root)) continue;
    for (const { path, what } of tree.lost) options.onLost(snapshot, path, what);
    const tags = snapshot.record.tags.includes(REPAIRED_TAG) ? snapshot.record.tags : [...snapshot.record.tags, REPAIRED_TAG];
    // The summary described the original backup's files, some of which are gone now.
    const record: SnapshotRecord = { ...snapshot.record, tree: tree.id.toString('hex'), tags, repaired_from: snapshot.id };
    delete record.summary;
    replacements.push({ old: snapshot, record, lost: tree.lost.map((l) => l.path) });
  }
  if (options.dryRun) {
    result.repaired = replacements.map(({ old, lost }) => ({ original: old.id, id: undefined, lost }));
    return result;
  }
  await indexed.flush();
  await indexed.close();
  await dropVanishedPacks(indexed);
  for (const { old, record, lost } of replacements) {
    const id = await repo.saveJson('snapshot', record);
    await repo.removeFile('snapshot', old.id);
    result.repaired.push({ original: old.id, id, lost });
  }
  return result;
}

async function rewriteTree(
  indexed: IndexedRepository,
  id: Buffer,
  present: (type: BlobType, id: Buffer) => boolean,
  rewrite: (id: Buffer) => Promise<RewrittenTree>,
  dryRun: boolean,
): Promise<RewrittenTree> {
  if (!present('tree', id)) return { id: null, lost: [] };
  let nodes: TreeNode[];
  try {
    nodes = decodeTree(await indexed.loadBlob('tree', id), `tree ${id.toString('hex')}`);
  } catch {
    // A damaged tree is as lost as a missing one.
    return { id: null, lost: [] };
  }
  const lost: RewrittenTree['lost'] = [];
  const kept: TreeNode[] = [];
  let changed = false;
  for (const node of nodes) {
    const name = `/${node.name.toString()}`;
    if (node.content && !node.content.every((blob) => present('data', blob))) {
      lost.push({ path: name, what: 'file' });
      changed = true;
    } else if (node.subtree) {
      const sub = await rewrite(node.subtree);
      for (const below of sub.lost) lost.push({ path: name + below.path, what: below.what });
      if (sub.id === null) {
        lost.push({ path: name, what: 'directory' });
        changed = true;
      } else {
        if (!sub.id.equals(node.subtree)) changed = true;
        kept.push({ ...node, subtree: sub.id });
      }
    } else {
      kept.push(node);
    }
  }
  if (!changed) return { id, lost };
  const bytes = encodeTree(kept);
  if (dryRun) return { id: indexed.keys.blobId(bytes), lost };
  return { id: (await indexed.saveBlob('tree', bytes)).id, lost };
}
