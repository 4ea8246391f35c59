import { Command, Option } from 'clipanion';
import { TreeDiff, type DiffCounts } from '../snapshot/diff.js';
import { findSnapshot } from '../snapshot/snapshot.js';
import { pathFields } from '../snapshot/walk.js';
import { RepositoryCommand } from './base.js';
import { hostFilter, pathFilter, snapshotFilter, tagFilter } from './snapshot-filter.js';
import { formatBytes } from './report.js';

export class DiffCommand extends RepositoryCommand {
  static override paths = [['diff']];
  static override usage = Command.Usage({
    description: 'show what changed between two snapshots',
    details: `
      Lists the entries that differ from the first snapshot to the second, restic-style, one per
      line (directories end with "/"):

      - \`+\` added, \`-\` removed (everything inside an added or removed directory is listed too);
      - \`M\` modified: a file's content, a symlink's target or a device number changed, or the entry's type changed (the old directory's entries are then listed as removed, the new one's as added);
      - \`U\` only metadata changed: mode, owner, mtime or xattrs. Unlike restic, which shows these only with --metadata, bh always shows them.

      Subtrees whose tree ids are equal are identical and are skipped without being read, so
      diffing two snapshots of a large, mostly unchanged tree is fast. The summary counts files,
      directories and other entries, and the data and tree blobs (with their raw sizes) that the
      differing entries hold in one snapshot and not the other — restic's "Added"/"Removed".

      \`latest\` picks the newest snapshot (matching --host, --tag and --path). --json prints one
      JSON line per change ({"message_type":"change","path","modifier","type"}) and a final
      {"message_type":"statistics"} line.
    `,
    examples: [
      ['What changed since a snapshot', 'bh diff -r /srv/backup 1a2b3c4d latest'],
      ['As JSON', 'bh diff -r /srv/backup 1a2b3c4d 5e6f7a8b --json'],
    ],
  });

  first = Option.String({ name: 'snapshot-1' });
  second = Option.String({ name: 'snapshot-2' });
  hosts = hostFilter('latest');
  tags = tagFilter('latest');
  filterPaths = pathFilter('latest');

  async run(): Promise<number> {
    const repo = await this.openRepository();
    const snapshots = await this.loadSnapshots(repo);
    const filter = snapshotFilter(this);
    const from = findSnapshot(snapshots, this.first, filter);
    const to = findSnapshot(snapshots, this.second, filter);
    const indexed = await repo.loadIndex(snapshots.listing);
    const report = this.report;
    report.line(`comparing snapshot ${from.id.slice(0, 8)} to ${to.id.slice(0, 8)}:`);
    report.line('');
    const signal = this.interruptSignal();
    const diff = new TreeDiff(indexed, this.treeReader(indexed, signal));
    for await (const change of diff.changes(Buffer.from(from.record.tree, 'hex'), Buffer.from(to.record.tree, 'hex'))) {
      report.jsonLine({ message_type: 'change', ...pathFields(change.pathBytes), modifier: change.modifier, type: change.node.type, ...(change.previousType ? { previous_type: change.previousType } : {}) });
      report.line(`${change.modifier.padEnd(5)}${change.path}${change.node.type === 'dir' ? '/' : ''}`);
      await report.drain(signal);
    }
    const s = diff.summary();
    report.jsonLine({ message_type: 'statistics', source_snapshot: from.id, target_snapshot: to.id, files: s.files, dirs: s.dirs, others: s.others, added: s.added, removed: s.removed });
    const counts = (c: DiffCounts): string => `${c.added} new, ${c.removed} removed, ${c.modified} changed, ${c.metadata} metadata only`;
    report.line('');
    report.line(`Files:       ${counts(s.files)}`);
    report.line(`Dirs:        ${counts(s.dirs)}`);
    report.line(`Others:      ${counts(s.others)}`);
    report.line(`Data blobs:  ${s.added.data_blobs} new, ${s.removed.data_blobs} removed`);
    report.line(`Tree blobs:  ${s.added.tree_blobs} new, ${s.removed.tree_blobs} removed`);
    report.line(`  Added:     ${formatBytes(s.added.bytes)}`);
    report.line(`  Removed:   ${formatBytes(s.removed.bytes)}`);
    return 0;
  }
}
