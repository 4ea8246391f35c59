import { Command } from 'clipanion';
import { listSystemSnapshots } from '../system/store.js';
import { SystemRepositoryCommand } from './system-base.js';
import { hostFilter } from './snapshot-filter.js';
import { matchesFilter } from '../snapshot/snapshot.js';

export class SystemListCommand extends SystemRepositoryCommand {
  static override paths = [['system', 'list']];
  static override usage = Command.Usage({
    category: 'System snapshots',
    description: 'list the system snapshots',
    details: 'Lists the snapshots `bh system snapshot` made (tag `system`), oldest first, with host and time.',
    examples: [
      ['Every system snapshot', 'bh system list -r /srv/backup'],
      ['Those of one host, as JSON', 'bh system list -r /srv/backup --host web1 --json'],
    ],
  });

  hosts = hostFilter('snapshots');

  async run(): Promise<number> {
    const repo = await this.openRepository();
    const snapshots = (await listSystemSnapshots(repo, this.warnDamagedSnapshot)).filter((s) => matchesFilter(s.record, { host: this.hosts }));
    if (this.json) {
      this.report.json(snapshots.map(({ id, record }) => ({ id, short_id: id.slice(0, 8), time: record.time, host: record.host, username: record.username })));
      return 0;
    }
    this.report.table(['ID', 'Time', 'Host', 'User'], snapshots.map(({ id, record }) => [id.slice(0, 8), new Date(record.time).toLocaleString('sv-SE'), record.host, record.username]));
    this.report.line(`${snapshots.length} system snapshots`);
    return 0;
  }
}
