/**
 * Prune below the snapshot level (docs/FORMAT.md §5 "Condemned packs" and §10): given which
 * blobs the snapshots use, decide what happens to every pack, then do it in an order that a
 * kill at any instant cannot turn into data loss.
 *
 * Two-phase delete, so that backups of other hosts keep running:
 * - a pack with no used blob is **condemned**: it stays readable and indexed (in a "BHX2" index
 *   file, with the time), but backups no longer deduplicate against it;
 * - a later prune **deletes** it, if it is still unused, was condemned at least `deleteAfterMs`
 *   ago, and no lock holder that started before the condemnation (+ margin + guard) still runs;
 * - a condemned pack that a snapshot uses again (a backup that had deduplicated against it
 *   before the condemnation) is **revived**; a pack some index file lists as live is live.
 *
 * Order of execution: repacked blobs go to new packs → new index files (the last one lists the
 * index files it supersedes) → old index files removed → packs deleted. Before all that, the
 * temporary files of interrupted writes older than the lock stale time go
 * (src/repo/temporaries.ts): no index or snapshot knows of them.
 */
import { describeLock, isStale, type LockRecord } from './lock.js';
import { BlobOpener } from './blob-codec.js';
import type { BlobType } from './crypto.js';
import { DamagedFileError } from './errors.js';
import type { CondemnedPack, IndexedPack } from './index-file.js';
import { IndexRewriter, blobsByPack, removeIndexFiles } from './index-rewrite.js';
import type { MasterIndex } from './master-index.js';
import { PackWriter } from './pack-writer.js';
import type { IndexedRepository, RepositoryLock } from './repository.js';
import type { TemporaryFile } from '../backends/backend.js';
import { findTemporaries } from './temporaries.js';

const TYPES: readonly BlobType[] = ['data', 'tree'];
/**
 * Lock holders that started up to this long after a condemnation still block its deletion: it
 * covers the moments between taking the condemnation time and its index file being visible,
 * and clock skew between hosts. It shrinks with a margin below it (tests use --delete-after 0s).
 */
export const LOCK_GUARD_MS = 60_000;
/** Default share of unused space left in kept packs (`--max-unused 5%`). */
export const DEFAULT_MAX_UNUSED = 0.05;
/** Default safety margin between condemning a pack and deleting it. */
export const DEFAULT_DELETE_AFTER_MS = 2 * 60 * 60 * 1000;

/**
 * The blobs the snapshots use: one bit per index row (the row findRow() picks, which prefers a
 * copy outside condemned packs), so marking millions of blobs costs an eighth of a byte each.
 */
export class UsedBlobs {
  private readonly bits: Record<BlobType, Uint8Array>;
  count = 0;

  constructor(private readonly index: MasterIndex) {
    this.bits = { data: new Uint8Array((index.rowCount('data') + 7) >>> 3), tree: new Uint8Array((index.rowCount('tree') + 7) >>> 3) };
  }

  /** Marks the blob used: 'new' the first time, 'seen' after, 'missing' when no index lists it. */
  mark(type: BlobType, id: Uint8Array): 'new' | 'seen' | 'missing' {
    const row = this.index.findRow(type, id);
    if (row < 0) return 'missing';
    const bits = this.bits[type];
    const bit = 1 << (row & 7);
    if (bits[row >>> 3]! & bit) return 'seen';
    bits[row >>> 3]! |= bit;
    this.count++;
    return 'new';
  }

  isUsedRow(type: BlobType, row: number): boolean {
    return (this.bits[type][row >>> 3]! & (1 << (row & 7))) !== 0;
  }
}

export interface PruneOptions {
  /** Unused space allowed to remain in kept packs, as a fraction of the used space plus it (0.05 = 5%). */
  maxUnused: number;
  /** At most this many bytes of packs are repacked in one run. */
  maxRepackBytes: number;
  /** Safety margin between condemning a pack and deleting it (ms). */
  deleteAfterMs: number;
  /** The prune's own lock (left out of the running-holders rule). */
  ownLock?: RepositoryLock | undefined;
  onWarning?: (message: string) => void;
}

/** What prune will do (and, after executePrune, did); JSON-ready. */
export interface PruneSummary {
  snapshots: number;
  packs: number;
  used_blobs: number;
  used_bytes: number;
  unused_bytes: number;
  /** Packs that lose their last used blob now: condemned, deleted by a later prune. */
  condemn: string[];
  /** Packs partly used: their used blobs move to new packs, then they are condemned. */
  repack: string[];
  /** Condemned earlier and deletable now. */
  delete: string[];
  /** Condemned earlier, used again by a snapshot: live again. */
  revive: string[];
  /** Condemned, not deletable yet (margin not over, or a lock holder that started before might use them). */
  waiting: string[];
  /** Packs no index lists (left by an interrupted backup or prune): condemned now. */
  unindexed: string[];
  /** Indexed packs missing from the backend that no snapshot needs: dropped from the index. */
  missing: string[];
  /** Temporary files of interrupted writes, older than the lock stale time: removed. */
  temporaries: string[];
  /** Younger temporary files: a write may still be running; left to a later prune. */
  temporaries_young: string[];
  bytes_temporaries: number;
  bytes_deleted: number;
  bytes_condemned: number;
  bytes_repacked: number;
  /** Unused bytes left in live packs once this plan is done. */
  unused_bytes_after: number;
  blocking_locks: string[];
  index_files_written: number;
  index_files_removed: number;
  packs_written: number;
}

interface PackFacts {
  size: number;
  usedBytes: number;
  usedBlobs: number;
  blobs: number;
}

export interface PrunePlan {
  readonly summary: PruneSummary;
  readonly indexed: IndexedRepository;
  readonly used: UsedBlobs;
  /** Pack numbers (of indexed.index) by fate. */
  readonly fate: { keep: number[]; condemn: number[]; repack: number[]; delete: number[]; waiting: number[]; missing: number[] };
  /** Unindexed packs found in the backend, with the blobs their headers list. */
  readonly unindexed: IndexedPack[];
  /** Temporary files old enough to remove. */
  readonly temporaries: TemporaryFile[];
}

/** Steps a test may pause at (BH_TEST_PAUSE_AT) to kill prune there. */
export type PruneStep = 'repacked' | 'index-written' | 'old-index-removed' | 'deleting';

export interface PruneHooks {
  onStep?: (step: PruneStep) => Promise<void>;
  onProgress?: (text: string) => void;
}

/**
 * Decides every pack's fate. `used` must hold every blob of every snapshot listed before the
 * index was loaded (read order). `locks` are the repository's locks, listed now.
 */
export async function planPackChanges(indexed: IndexedRepository, used: UsedBlobs, snapshots: number, locks: { id: string; lock: LockRecord }[], options: PruneOptions): Promise<PrunePlan> {
  const index = indexed.index;
  const now = Date.now();
  const stored = new Map((await indexed.repo.list('data')).map((f) => [f.name, f.size]));
  const temporaries = await findTemporaries(indexed.repo.backend, now);
  const facts: PackFacts[] = index.packs().map((id) => ({ size: stored.get(id.toString('hex')) ?? -1, usedBytes: 0, usedBlobs: 0, blobs: 0 }));
  for (const type of TYPES) {
    for (let row = 0; row < index.rowCount(type); row++) {
      const pack = facts[index.rowPack(type, row)]!;
      pack.blobs++;
      if (used.isUsedRow(type, row)) {
        pack.usedBlobs++;
        pack.usedBytes += index.rowLength(type, row);
      }
    }
  }

  // Lock holders that might still write a snapshot using a pack condemned while they ran.
  const holders = locks.filter(({ id, lock }) => id !== options.ownLock?.id && !isStale(lock, now));
  const earliestStart = Math.min(...holders.map(({ lock }) => Date.parse(lock.started ?? lock.time)));
  const guard = Math.min(LOCK_GUARD_MS, options.deleteAfterMs);
  const fate: PrunePlan['fate'] = { keep: [], condemn: [], repack: [], delete: [], waiting: [], missing: [] };
  const revive: number[] = [];
  const candidates: number[] = [];
  const blocking = new Set<string>();
  for (const [pack, f] of facts.entries()) {
    const since = index.condemnedSince(pack);
    if (f.size < 0) {
      if (f.usedBlobs > 0) {
        throw new Error(`pack data/${index.packId(pack).toString('hex')} is missing from the repository, but snapshots use ${f.usedBlobs} of its blobs; run 'bh repair snapshots' first`);
      }
      fate.missing.push(pack);
    } else if (since !== undefined && f.usedBlobs > 0) {
      revive.push(pack);
      fate.keep.push(pack);
    } else if (since !== undefined) {
      const marginOver = now - since >= options.deleteAfterMs;
      const holderStartedBefore = earliestStart < since + options.deleteAfterMs + guard;
      if (marginOver && !holderStartedBefore) fate.delete.push(pack);
      else fate.waiting.push(pack);
      if (marginOver && holderStartedBefore) {
        for (const { id, lock } of holders) if (Date.parse(lock.started ?? lock.time) < since + options.deleteAfterMs + guard) blocking.add(describeLock(id, lock));
      }
    } else if (f.usedBlobs === 0) {
      fate.condemn.push(pack);
    } else if (f.usedBlobs < f.blobs) {
      candidates.push(pack);
    } else {
      fate.keep.push(pack);
    }
  }

  // Repack the packs with the most unused space first, until what stays unused is within the limit.
  const usedTotal = facts.reduce((sum, f) => sum + (f.size >= 0 ? f.usedBytes : 0), 0);
  const unusedOf = (f: PackFacts): number => f.size - f.usedBytes;
  let unusedLeft = [...candidates, ...fate.keep].reduce((sum, p) => sum + unusedOf(facts[p]!), 0);
  const allowed = options.maxUnused >= 1 ? Infinity : (usedTotal * options.maxUnused) / (1 - options.maxUnused);
  let repackBytes = 0;
  candidates.sort((a, b) => unusedOf(facts[b]!) / facts[b]!.size - unusedOf(facts[a]!) / facts[a]!.size);
  for (const pack of candidates) {
    const f = facts[pack]!;
    if (unusedLeft > allowed && repackBytes + f.size <= options.maxRepackBytes) {
      fate.repack.push(pack);
      repackBytes += f.size;
      unusedLeft -= unusedOf(f);
    } else {
      fate.keep.push(pack);
    }
  }

  // Packs in the backend that no index lists: their headers say what they hold.
  const unindexed: IndexedPack[] = [];
  for (const [name, size] of stored) {
    const packId = Buffer.from(name, 'hex');
    if (index.hasPack(packId)) continue;
    try {
      unindexed.push({ packId, blobs: await indexed.repo.readPackHeader(name, size) });
    } catch (error) {
      // Unreadable: not ours to delete (check reports it).
      options.onWarning?.(`leaving data/${name} alone: its header cannot be read (${(error as Error).message})`);
    }
  }

  const hex = (packs: number[]): string[] => packs.map((p) => index.packId(p).toString('hex'));
  const bytes = (packs: number[]): number => packs.reduce((sum, p) => sum + facts[p]!.size, 0);
  const summary: PruneSummary = {
    snapshots,
    packs: stored.size,
    used_blobs: used.count,
    used_bytes: usedTotal,
    unused_bytes: [...stored.values()].reduce((a, b) => a + b, 0) - usedTotal,
    condemn: hex(fate.condemn),
    repack: hex(fate.repack),
    delete: hex(fate.delete),
    revive: hex(revive),
    waiting: hex(fate.waiting),
    unindexed: unindexed.map((p) => p.packId.toString('hex')),
    missing: hex(fate.missing),
    temporaries: temporaries.stale.map((f) => f.path),
    temporaries_young: temporaries.young.map((f) => f.path),
    bytes_temporaries: temporaries.stale.reduce((sum, f) => sum + f.size, 0),
    bytes_deleted: bytes(fate.delete),
    bytes_condemned: bytes(fate.condemn) + unindexed.reduce((sum, p) => sum + (stored.get(p.packId.toString('hex')) ?? 0), 0),
    bytes_repacked: repackBytes,
    unused_bytes_after: Math.max(0, unusedLeft),
    blocking_locks: [...blocking],
    index_files_written: 0,
    index_files_removed: 0,
    packs_written: 0,
  };
  return { summary, indexed, used, fate, unindexed, temporaries: temporaries.stale };
}

/** Carries out a plan; returns the summary with what was written and removed. */
export async function executePrune(plan: PrunePlan, hooks: PruneHooks = {}): Promise<PruneSummary> {
  const { indexed, used, fate } = plan;
  const index = indexed.index;
  const repo = indexed.repo;
  const summary = { ...plan.summary };
  const s = plan.summary;
  // Temporary files no running write owns go first: nothing below depends on them.
  for (const file of plan.temporaries) await repo.backend.temporaries?.remove(file);
  if ([s.condemn, s.repack, s.delete, s.revive, s.unindexed, s.missing, indexed.supersededFiles].every((list) => list.length === 0)) return summary;
  const blobsOf = blobsByPack(index);

  // 1. Repack: the used blobs of partly used packs go to new packs, verified on the way. One
  //    pack uploads while the next is filled; all are stored before the index names them.
  const written: IndexedPack[] = [];
  const packs = new PackWriter(repo, { concurrency: 1, onStored: (pack) => written.push(pack) });
  const opener = new BlobOpener(repo.keys, repo.config.compression);
  for (const [i, pack] of fate.repack.entries()) {
    hooks.onProgress?.(`repacking ${i + 1}/${fate.repack.length}`);
    const packHex = index.packId(pack).toString('hex');
    // Only the bytes the index says its blobs take: a pack padded with junk costs no more.
    const blobs = blobsOf(pack);
    const bytes = await repo.backend.read({ type: 'data', name: packHex }, { offset: 0, length: blobs.reduce((end, blob) => Math.max(end, blob.offset + blob.length), 0) });
    for (const blob of blobs) {
      const { type } = blob;
      // Only the copy the used-set marked (a blob may have copies in several packs).
      const row = index.findRow(type, blob.id);
      if (!used.isUsedRow(type, row) || index.rowPack(type, row) !== pack) continue;
      const envelope = bytes.subarray(blob.offset, blob.offset + blob.length);
      try {
        opener.openParts(type, blob.id, envelope, packHex, blob.rawLength);
      } catch (error) {
        if (!(error instanceof DamagedFileError)) throw error;
        throw new DamagedFileError(error.file, `${error.detail}; prune stops before copying damage (run 'bh check --read-data')`);
      }
      await packs.add(type, blob.id, Buffer.from(envelope), blob.rawLength);
    }
  }
  await packs.flush();
  summary.packs_written = written.length;
  await hooks.onStep?.('repacked');

  // 2. The new index: live packs first, then the last file with the condemned packs, which
  //    supersedes every index file this prune loaded (src/repo/index-rewrite.ts).
  const rewriter = new IndexRewriter(repo);
  for (const pack of fate.keep) await rewriter.addLive({ packId: index.packId(pack), blobs: blobsOf(pack) });
  for (const pack of written) await rewriter.addLive(pack);
  // A prune that was stopped past its lock's stale time may have been overtaken by another
  // prune: its plan is out of date, so it must not rewrite the index or delete anything.
  repo.assertLocksHeld();
  const since = Date.now();
  const condemned: CondemnedPack[] = [
    ...[...fate.condemn, ...fate.repack].map((pack) => ({ packId: index.packId(pack), blobs: blobsOf(pack), since })),
    ...fate.waiting.map((pack) => ({ packId: index.packId(pack), blobs: blobsOf(pack), since: index.condemnedSince(pack)! })),
    ...plan.unindexed.map((pack) => ({ ...pack, since })),
  ];
  await rewriter.finish(indexed.supersedesOnRewrite, condemned);
  summary.index_files_written = rewriter.filesWritten;
  await hooks.onStep?.('index-written');

  // 3. The superseded index files go; 4. then the packs that left the index.
  const replaced = indexed.replacedIndexFiles;
  repo.assertLocksHeld();
  await removeIndexFiles(repo, replaced);
  summary.index_files_removed = replaced.length;
  await hooks.onStep?.('old-index-removed');
  for (const [i, pack] of fate.delete.entries()) {
    const packHex = index.packId(pack).toString('hex');
    repo.assertLocksHeld();
    await repo.backend.remove({ type: 'data', name: packHex });
    await repo.cache?.remove('data', packHex);
    if (i === 0) await hooks.onStep?.('deleting');
  }
  return summary;
}
