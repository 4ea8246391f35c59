/**
 * `bh prune` above the pack level: list the snapshots, load the index (read order), mark every
 * blob the snapshots reach, then let src/repo/prune.ts decide and act on packs.
 *
 * Library use (`bh prune`, `bh forget --prune`, a job's [RETENTION]): runPrune() plans and then
 * executes; its parts are
 *   const plan = await planPrune(repo, options);   // changes nothing
 *   const summary = await executePrune(plan, hooks);
 * The caller holds a 'prune' lock (or an exclusive one) for both steps, a shared one for a dry run.
 */
import { DEFAULT_DELETE_AFTER_MS, DEFAULT_MAX_UNUSED, type PruneHooks, type PrunePlan, type PruneOptions, type PruneSummary, UsedBlobs, executePrune, planPackChanges } from '../repo/prune.js';
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
  const trees = new TreeReader(indexed, { cache: false });
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

/** What `bh prune` does without options; `bh forget --prune` and a job's [RETENTION] prune with these. */
export const DEFAULT_PRUNE_OPTIONS: Readonly<Pick<PruneOptions, 'maxUnused' | 'maxRepackBytes' | 'deleteAfterMs'>> = {
  maxUnused: DEFAULT_MAX_UNUSED,
  maxRepackBytes: Infinity,
  deleteAfterMs: DEFAULT_DELETE_AFTER_MS,
};

export interface PruneRunHooks extends PruneHooks {
  /** Told the plan before anything changes. */
  onPlan?: (planned: PruneSummary) => void;
}

/**
 * Plans a prune, tells `hooks.onPlan`, then, unless `dryRun` (only plan: nothing changes),
 * executes it; returns what it did (a dry run: what it would do).
 */
export async function runPrune(repo: Repository, options: PruneOptions & { dryRun?: boolean }, hooks: PruneRunHooks = {}): Promise<PruneSummary> {
  const plan = await planPrune(repo, options);
  hooks.onPlan?.(plan.summary);
  return options.dryRun ? plan.summary : executePrune(plan, hooks);
}
