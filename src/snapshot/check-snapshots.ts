/**
 * The snapshot half of `check`: every snapshot file reads, every tree it reaches loads and
 * parses, and every blob those trees name is in the index (docs/FORMAT.md §10, first invariant).
 */
import { RunSource } from '../repo/blob-reader.js';
import type { CheckFinding } from '../repo/check.js';
import type { BlobType } from '../repo/crypto.js';
import type { MasterIndex } from '../repo/master-index.js';
import type { IndexedRepository, SnapshotList } from '../repo/repository.js';
import { validateSnapshot, type SnapshotRecord } from './snapshot.js';
import { type Reached, type ReachedBlobs, TreeReader, walkReachable } from './walk.js';

/**
 * Milliseconds of walking between two turns of the event loop: loads from a local repository
 * never wait for it, and what runs beside the walk (check --read-data reading packs, in many
 * small reads) must not starve.
 */
const TURN_MS = 1;

/** Checks the snapshots of `snapshots`, the list `repo`'s index was loaded after (read order, docs/FORMAT.md §10). */
export async function checkSnapshots(repo: IndexedRepository, snapshots: SnapshotList, report: (finding: CheckFinding) => void): Promise<{ snapshots: number; trees: number }> {
  // Trees of a local repository are read and checked right here, from pack files kept open
  // (as restore does); other backends are read through loadBlob.
  const source = new RunSource(repo);
  try {
    const trees = new TreeReader(source, { turnMs: TURN_MS, cache: false });
    const reached = new CheckedBlobs(repo.index);
    for (const name of snapshots.names) {
      const subject = `snapshot ${name}`;
      let record: SnapshotRecord;
      try {
        record = validateSnapshot(await repo.repo.loadJson('snapshot', name), `snapshots/${name}`);
      } catch (error) {
        report({ level: 'error', subject, message: (error as Error).message });
        continue;
      }
      await walkReachable(trees, Buffer.from(record.tree, 'hex'), reached, {
        onMissing: (_type, id, path) => report({ level: 'error', subject, message: `file ${path()}: data blob ${id.toString('hex')} is not in any index` }),
        onUnreadableTree: (id, path, error) => report({ level: 'error', subject, message: `tree ${id.toString('hex')} (${path()}): ${error.message}` }),
      });
    }
    return { snapshots: snapshots.names.length, trees: reached.trees.size };
  } finally {
    source.close();
  }
}

/**
 * check's seen-set. Every tree reached is read, indexed or not: one no index lists fails to
 * load, and that failure is reported with its reason. A data blob no index lists is missing
 * once, so each is reported once, under the first snapshot and file that reach it.
 */
class CheckedBlobs implements ReachedBlobs {
  /** Trees reached (hex ids): the summary's count of trees checked. */
  readonly trees = new Set<string>();
  private readonly missingData = new Set<string>();

  constructor(private readonly index: MasterIndex) {}

  mark(type: BlobType, id: Buffer): Reached {
    if (type === 'tree') {
      const hex = id.toString('hex');
      if (this.trees.has(hex)) return 'seen';
      this.trees.add(hex);
      return 'new';
    }
    // Data blobs that are indexed need no tracking: only a missing one is reported.
    if (this.index.has('data', id)) return 'seen';
    const hex = id.toString('hex');
    if (this.missingData.has(hex)) return 'seen';
    this.missingData.add(hex);
    return 'missing';
  }
}
