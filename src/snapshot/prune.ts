/**
 * `bh prune` above the pack level: list the snapshots, load the index (read order), mark every
 * blob the snapshots reach, then let src/repo/prune.ts decide and act on packs.
 *
 * Library use (also for `bh forget --prune`):
 *   const plan = await planPrune(repo, options);   // changes nothing
 *   const summary = await executePrune(plan, hooks);
 * The caller holds a 'prune' lock (or an exclusive one) for both steps.
 */
import { type PrunePlan, type PruneOptions, UsedBlobs, planPackChanges } from '../repo/prune.js';
import type { IndexedRepository, Repository } from '../repo/repository.js';
import { loadSnapshots, type Snapshot } from './snapshot.js';
import { TreeReader, walkReachable } from './walk.js';

export { executePrune, DEFAULT_DELETE_AFTER_MS, DEFAULT_MAX_UNUSED, type PrunePlan, type PruneOptions, type PruneSummary, type PruneHooks, type PruneStep } from '../repo/prune.js';

/**
 * Plans a prune. Refuses (throws) when a snapshot cannot be read or reaches a blob no index
 * lists: pruning then could delete data a snapshot needs, or hide the damage.
 */
export async function planPrune(repo: Repository, options: PruneOptions): Promise<PrunePlan> {
  const snapshots = await loadSnapshots(repo, (id, error) => {
    throw new Error(`snapshots/${id} cannot be read (${error.message}); prune refuses to run, since it cannot tell which data that snapshot needs (run 'bh check', then remove or repair it)`);
  });
  const indexed = await repo.loadIndex(snapshots.listing);
  const used = new UsedBlobs(indexed.index);
  await markReachable(indexed, snapshots, used);
  return planPackChanges(indexed, used, snapshots.length, await repo.listLocks(), options);
}

/** Marks every tree and data blob the snapshots reach; throws naming what is missing. */
export async function markReachable(indexed: IndexedRepository, snapshots: Snapshot[], used: UsedBlobs): Promise<void> {
  const trees = new TreeReader(indexed);
  const missing: string[] = [];
  for (const snapshot of snapshots) {
    const which = `snapshot ${snapshot.id.slice(0, 8)}`;
    await walkReachable(trees, Buffer.from(snapshot.record.tree, 'hex'), used, {
      onMissing: (type, id, path) => missing.push(type === 'tree' ? `${which}: tree ${id.toString('hex')} (${path()})` : `${which}: file ${path()}: data blob ${id.toString('hex')}`),
    });
  }
  if (missing.length > 0) {
    const shown = missing.slice(0, 5).join('; ');
    throw new Error(`${missing.length} blob(s) the snapshots use are in no index (${shown}${missing.length > 5 ? '; …' : ''}); prune refuses to run: try 'bh repair index', then 'bh repair snapshots'`);
  }
}
