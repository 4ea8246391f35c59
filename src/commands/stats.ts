import { Command, Option } from 'clipanion';
import * as t from 'typanion';
import { selectSnapshots } from '../snapshot/snapshot.js';
import { RawDataCounter, RestoreSizeCounter } from '../snapshot/stats.js';
import { RepositoryCommand } from './base.js';
import { hostFilter, pathFilter, snapshotFilter, tagFilter } from './snapshot-filter.js';
import { formatBytes } from './report.js';

export class StatsCommand extends RepositoryCommand {
  static override paths = [['stats']];
  static override usage = Command.Usage({
    description: 'show how much data snapshots hold',
    details: `
      Counts over the given snapshots (ids, id prefixes or \`latest\`), or over every snapshot
      matching --host, --tag and --path when none is given:

      - \`restore-size\` (default): what restoring the snapshots would write, summed over them. As restic does, "Total File Count" counts every entry (files, directories, symlinks, …; the JSON breaks it down as files, dirs, others), and a hardlinked file's size counts once per snapshot, since a restore writes it once and links the other names.
      - \`raw-data\`: the distinct blobs the snapshots reference (data and tree blobs, each counted once however many files and snapshots share it): their raw (uncompressed) size, their stored size in the repository (compressed and encrypted) and the ratio of the two.

      With --json, one JSON object with restic's field names (total_size, total_file_count,
      total_blob_count, total_uncompressed_size, compression_ratio, snapshots_count, …).
    `,
    examples: [
      ['Restore size of the latest snapshot', 'bh stats -r /srv/backup latest'],
      ['What the repository really stores for one host', 'bh stats -r /srv/backup --mode raw-data --host web1'],
    ],
  });

  snapshotRefs = Option.Rest({ name: 'snapshot' });
  mode = Option.String('--mode', 'restore-size', { description: 'restore-size or raw-data', validator: t.isEnum(['restore-size', 'raw-data']) });
  hosts = hostFilter('snapshots');
  tags = tagFilter('snapshots');
  filterPaths = pathFilter('snapshots');

  async run(): Promise<number> {
    const repo = await this.openRepository();
    const all = await this.loadSnapshots(repo);
    const filter = snapshotFilter(this);
    const selected = selectSnapshots(all, this.snapshotRefs, filter);
    const indexed = await repo.loadIndex(all.listing);
    const trees = this.treeReader(indexed, this.interruptSignal());
    const counter = this.mode === 'raw-data' ? new RawDataCounter(indexed, trees) : new RestoreSizeCounter(trees);
    for (const [i, snapshot] of selected.entries()) {
      this.report.progress(`${i}/${selected.length} snapshots, now ${snapshot.id.slice(0, 8)}`);
      await counter.addSnapshot(Buffer.from(snapshot.record.tree, 'hex'));
    }
    this.report.clearProgress();
    const report = this.report;
    if (counter instanceof RawDataCounter) {
      const s = counter.result();
      if (this.json) report.json({ mode: this.mode, ...s });
      report.line('Stats in raw-data mode:');
      report.line(`     Snapshots processed:  ${s.snapshots_count}`);
      report.line(`        Total Blob Count:  ${s.total_blob_count} (${s.data_blobs} data, ${s.tree_blobs} tree)`);
      report.line(` Total Uncompressed Size:  ${formatBytes(s.total_uncompressed_size)}`);
      report.line(`              Total Size:  ${formatBytes(s.total_size)}`);
      report.line(`       Compression Ratio:  ${s.compression_ratio.toFixed(2)}x`);
      report.line(`Compression Space Saving:  ${s.compression_space_saving.toFixed(2)}%`);
      if (s.missing_blobs > 0) report.warn(`warning: ${s.missing_blobs} referenced blobs are in no index; run 'bh check'`);
    } else {
      const s = counter.result();
      if (this.json) report.json({ mode: this.mode, ...s });
      report.line('Stats in restore-size mode:');
      report.line(`     Snapshots processed:  ${s.snapshots_count}`);
      report.line(`        Total File Count:  ${s.total_file_count} (${s.files} files, ${s.dirs} dirs, ${s.others} others)`);
      report.line(`              Total Size:  ${formatBytes(s.total_size)}`);
    }
    return 0;
  }
}
