import { Command } from 'clipanion';
import { matchesFilter } from '../snapshot/snapshot.js';
import { RepositoryCommand } from './base.js';
import { hostFilter, pathFilter, snapshotFilter, tagFilter } from './snapshot-filter.js';
import { formatBytes } from './report.js';

export class SnapshotsCommand extends RepositoryCommand {
  static override paths = [['snapshots']];
  static override usage = Command.Usage({
    description: 'list snapshots',
    details: 'Lists the snapshots in the repository, oldest first, optionally filtered by host, tag and path.',
    examples: [
      ['List every snapshot', 'bh snapshots -r /srv/backup'],
      ['Snapshots of one host as JSON', 'bh snapshots -r /srv/backup --host web1 --json'],
    ],
  });

  hosts = hostFilter('snapshots');
  tags = tagFilter('snapshots');
  filterPaths = pathFilter('snapshots');

  async run(): Promise<number> {
    const repo = await this.openRepository();
    const snapshots = (await this.loadSnapshots(repo)).filter((s) => matchesFilter(s.record, snapshotFilter(this)));
    if (this.json) {
      this.report.json(
        snapshots.map(({ id, record }) => ({ id, short_id: id.slice(0, 8), time: record.time, host: record.host, username: record.username, paths: record.paths, tags: record.tags, mode: record.mode, parent: record.parent, tree: record.tree, summary: record.summary ?? null, ...(record.dump ? { dump: record.dump } : {}) })),
      );
      return 0;
    }
    this.report.table(
      ['ID', 'Time', 'Host', 'Mode', 'Tags', 'Size', 'Paths'],
      snapshots.map(({ id, record }) => [id.slice(0, 8), new Date(record.time).toLocaleString('sv-SE'), record.host, record.mode, record.tags.join(','), record.summary ? formatBytes(record.summary.total_bytes) : '', record.paths.join(', ')]),
    );
    this.report.line(`${snapshots.length} snapshots`);
    return 0;
  }
}
