import { Command, Option } from 'clipanion';
import { findSnapshot } from '../snapshot/snapshot.js';
import { type LiveChange, verifyLive } from '../snapshot/verify-live.js';
import { ExitCode, RepositoryCommand } from './base.js';
import { formatBytes } from './report.js';
import { hostFilter, pathFilter, snapshotFilter, tagFilter } from './snapshot-filter.js';

const MARK: Record<LiveChange, string> = { missing: '-', added: '+', type: 'T', modified: 'M', content: '!', unreadable: '?' };

export class VerifyLiveCommand extends RepositoryCommand {
  static override paths = [['verify-live']];
  static override usage = Command.Usage({
    description: 'compare the live files with a snapshot: what changed, and what rotted',
    details: `
      Looks up every entry of the snapshot (below the given snapshot PATHs, else all of it) on
      this machine and lists what differs, one line each:

      - \`-\` missing, \`+\` added (inside the backed-up paths, not in the snapshot and not
        excluded by its --exclude patterns), \`T\` another type, \`?\` unreadable;
      - \`M\` modified: another size or mtime (files), another target (symlinks);
      - \`!\` content differs although size and mtime did not change: bit rot, or a change
        made to hide itself. Found by reading each file whose metadata is unchanged and
        comparing its SHA-256 with the one the snapshot recorded.

      --fast compares metadata only and reads no file. Files backed up before bh recorded
      SHA-256s (bh 0.1.0 and earlier) get the metadata check only; the summary counts them.
      Directory mtimes, owners and modes are not compared.

      Exit 0 when nothing differs, 3 when something does.
    `,
    examples: [
      ['Has anything in /srv/www changed or rotted since the last backup?', 'bh verify-live -r /srv/backup latest /srv/www'],
      ['Metadata only, as JSON lines', 'bh verify-live -r /srv/backup latest --fast --json'],
    ],
  });

  snapshot = Option.String({ name: 'snapshot' });
  livePaths = Option.Rest({ name: 'path' });
  fast = Option.Boolean('--fast', false, { description: 'Compare size, mtime and type only; read no file' });
  hosts = hostFilter('latest');
  tags = tagFilter('latest');
  filterPaths = pathFilter('latest');

  async run(): Promise<number> {
    const repo = await this.openRepository();
    const snapshots = await this.loadSnapshots(repo);
    const snapshot = findSnapshot(snapshots, this.snapshot, snapshotFilter(this));
    const indexed = await repo.loadIndex(snapshots.listing);
    const signal = this.interruptSignal();
    const report = this.report;
    const summary = await verifyLive(this.treeReader(indexed, signal), snapshot, this.livePaths, {
      fast: this.fast,
      signal,
      onDifference: async (d) => {
        report.line(`${MARK[d.change]} ${d.path}: ${d.detail}`);
        report.jsonLine({ message_type: 'difference', path: d.path, change: d.change, detail: d.detail });
        await report.drain(signal);
      },
    });
    report.jsonLine({ message_type: 'summary', snapshot_id: snapshot.id, entries: summary.entries, files_hashed: summary.filesHashed, bytes_hashed: summary.bytesHashed, files_without_hash: summary.filesWithoutHash, differences: summary.differences });
    report.line(`checked ${summary.entries} entries of snapshot ${snapshot.id.slice(0, 8)}; read ${summary.filesHashed} files (${formatBytes(summary.bytesHashed)}); ${summary.differences === 0 ? 'no differences' : `${summary.differences} differences`}`);
    if (summary.filesWithoutHash > 0) report.line(`${summary.filesWithoutHash} files have no recorded SHA-256 (backed up by bh 0.1.0 or earlier): metadata compared only`);
    return summary.differences === 0 ? ExitCode.ok : ExitCode.incomplete;
  }
}
