import { Command, Option } from 'clipanion';
import type { Repository } from '../repo/repository.js';
import { STALE_AGE_TEXT } from '../repo/temporaries.js';
import { DEFAULT_PRUNE_OPTIONS, type PruneOptions, type PruneStep, type PruneSummary, runPrune } from '../snapshot/prune.js';
import { RepositoryCommand, UserError, parseElapsed, parseSize } from './base.js';
import { formatBytes, type Report } from './report.js';

export class PruneCommand extends RepositoryCommand {
  static override paths = [['prune']];
  static override usage = Command.Usage({
    description: 'remove data no snapshot uses',
    details: `
      Finds the blobs the snapshots still use, then: packs with no used blob are condemned
      (backups stop deduplicating against them; they stay readable), packs condemned by an
      earlier prune at least --delete-after ago (default 2h) are deleted, and packs that are
      partly used are repacked (their used blobs copied to new packs, the old ones condemned)
      until the unused space left is within --max-unused. The index is rewritten. Temporary
      files of interrupted writes (\`.tmp-…\`) last written over 30 minutes ago are removed.

      Backups of other hosts may run meanwhile: prune takes a prune lock, which excludes only
      other prunes and exclusive work. A condemned pack is not deleted while a lock holder that
      started before its condemnation still runs, and is revived when a snapshot uses it again.
      Space is therefore freed by the second prune after forget, once the margin has passed.

      --dry-run prints the plan and changes nothing. A prune killed at any point loses nothing
      a snapshot uses; the next prune finishes the job.
    `,
    examples: [
      ['See what prune would do', 'bh prune -r /srv/backup --dry-run'],
      ['Prune, repacking at most 2 GiB', 'bh prune -r /srv/backup --max-repack-size 2G'],
    ],
  });

  dryRun = Option.Boolean('-n,--dry-run', false, { description: 'Only print the plan' });
  maxUnused = Option.String('--max-unused', '5%', { description: 'Unused space allowed to remain in kept packs (percent of the repository), or "unlimited"' });
  maxRepackSize = Option.String('--max-repack-size', { description: 'Repack at most this much (e.g. 500M, 2G)' });
  deleteAfter = Option.String('--delete-after', { description: 'Safety margin between condemning a pack and deleting it (default 2h)' });

  async run(): Promise<number> {
    const options = {
      maxUnused: this.maxUnusedFraction(),
      maxRepackBytes: this.maxRepackSize === undefined ? Infinity : parseSize(this.maxRepackSize, '--max-repack-size'),
      deleteAfterMs: this.deleteAfter === undefined ? DEFAULT_PRUNE_OPTIONS.deleteAfterMs : parseElapsed(this.deleteAfter, '--delete-after'),
    };
    const repo = await this.openRepository(this.dryRun ? 'shared' : 'prune');
    await reportedPrune(this.report, repo, { ...options, ownLock: this.heldLock }, this.dryRun);
    return 0;
  }

  private maxUnusedFraction(): number {
    if (this.maxUnused === 'unlimited') return 1;
    const match = /^(\d+(?:\.\d+)?)%?$/.exec(this.maxUnused);
    const percent = match ? Number(match[1]) : NaN;
    if (!(percent >= 0 && percent <= 100)) throw new UserError(`--max-unused '${this.maxUnused}' is not a percentage from 0% to 100% (or "unlimited")`);
    return percent / 100;
  }
}

/**
 * runPrune() with the plan and the result printed; the caller holds a prune (or exclusive) lock,
 * or a shared one for a dry run. Also used by `forget --prune`.
 */
export async function reportedPrune(report: Report, repo: Repository, options: PruneOptions, dryRun: boolean): Promise<void> {
  report.line('loading snapshots and index, finding used blobs');
  const summary = await runPrune(
    repo,
    { onWarning: (message) => report.warn(`warning: ${message}`), ...options, dryRun },
    { onPlan: (planned) => printPlan(report, planned, dryRun), onStep: testPause, onProgress: (text) => report.progress(text) },
  );
  report.jsonLine({ message_type: 'summary', dry_run: dryRun, ...summary });
  if (!dryRun) report.line(`wrote ${summary.packs_written} packs and ${summary.index_files_written} index files, removed ${summary.index_files_removed} index files, ${summary.delete.length} packs and ${summary.temporaries.length} temporary files (${formatBytes(summary.bytes_deleted + summary.bytes_temporaries)} freed)`);
}

function printPlan(report: Report, s: PruneSummary, dryRun: boolean): void {
  const would = dryRun ? 'would ' : '';
  report.line(`${s.snapshots} snapshots use ${s.used_blobs} blobs (${formatBytes(s.used_bytes)}); ${s.packs} packs, ${formatBytes(s.unused_bytes)} unused`);
  report.line(`${would}delete ${s.delete.length} packs condemned earlier (${formatBytes(s.bytes_deleted)})`);
  report.line(`${would}condemn ${s.condemn.length + s.unindexed.length} unused packs (${formatBytes(s.bytes_condemned)}; ${s.unindexed.length} listed by no index), deleted by a later prune`);
  report.line(`${would}repack ${s.repack.length} partly used packs (${formatBytes(s.bytes_repacked)}); unused space left ${formatBytes(s.unused_bytes_after)}`);
  if (s.revive.length > 0) report.line(`${would}revive ${s.revive.length} condemned packs that snapshots use again`);
  if (s.waiting.length > 0) report.line(`${s.waiting.length} condemned packs wait for the safety margin or for running lock holders`);
  for (const holder of s.blocking_locks) report.line(`  waiting for ${holder}`);
  if (s.missing.length > 0) report.line(`${would}drop ${s.missing.length} packs from the index that are gone from the repository (no snapshot needs them)`);
  if (s.temporaries.length > 0) report.line(`${would}remove ${s.temporaries.length} temporary files of interrupted writes (${formatBytes(s.bytes_temporaries)})`);
  if (s.temporaries_young.length > 0) report.line(`${s.temporaries_young.length} temporary files younger than ${STALE_AGE_TEXT} are left alone (a write may still be running)`);
}

/**
 * Test hook: BH_TEST_PAUSE_AT=<step> stops the process (SIGSTOP) at that step of the execution,
 * after saying so on stderr, so a test can kill it exactly there.
 */
async function testPause(step: PruneStep): Promise<void> {
  if (process.env['BH_TEST_PAUSE_AT'] !== step) return;
  await new Promise<void>((resolve) => process.stderr.write(`bh: test pause at ${step}\n`, () => resolve()));
  process.kill(process.pid, 'SIGSTOP');
}
