import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, Option } from 'clipanion';
import { formatManifest, manifestFileName, snapshotManifest } from '../legacy/manifest.js';
import { findSnapshot } from '../snapshot/snapshot.js';
import { RepositoryCommand, UserError } from './base.js';
import { hostFilter, pathFilter, snapshotFilter, tagFilter } from './snapshot-filter.js';

export class ManifestCommand extends RepositoryCommand {
  static override paths = [['manifest']];
  static override usage = Command.Usage({
    description: "write a snapshot's file list as a Backup Handler manifest",
    details: `
      Writes the old tool's \`backup_manifest_YYYYMMDD_HHMMSS.json\` for a snapshot: timestamp
      (the snapshot's time, local), mode, duration_seconds, files_copied/skipped/failed,
      total_bytes, and \`copied\` with every regular file of the snapshot (its absolute path, size
      and SHA-256, as if one full run had copied them all; \`skipped\` and \`failed\` are empty).
      Files backed up before bh recorded SHA-256s have no \`checksum\`, as the old tool's
      symlinks had none. The text is what the old tool wrote: JSON, 2-space indent, non-ASCII
      escaped, names that are not UTF-8 as \\udcXX escapes.

      Without --output it goes to standard output; --output FILE writes FILE, and --output DIR
      writes DIR/backup_manifest_<timestamp>.json.
    `,
    examples: [
      ['The manifest of the latest snapshot, on standard output', 'bh manifest -r /srv/backup latest'],
      ['Into a folder, under its old name', 'bh manifest -r /srv/backup 3f9a0c21 --output /mnt/old-backups'],
    ],
  });

  snapshot = Option.String({ name: 'snapshot' });
  output = Option.String('--output,-o', { description: 'File to write, or a directory to write backup_manifest_<timestamp>.json in' });
  hosts = hostFilter('latest');
  tags = tagFilter('latest');
  filterPaths = pathFilter('latest');

  async run(): Promise<number> {
    const repo = await this.openRepository();
    const snapshots = await this.loadSnapshots(repo);
    const snapshot = findSnapshot(snapshots, this.snapshot, snapshotFilter(this));
    const indexed = await repo.loadIndex(snapshots.listing);
    const manifest = await snapshotManifest(this.treeReader(indexed, this.interruptSignal()), snapshot);
    const text = `${formatManifest(manifest)}\n`;
    if (this.output === undefined) {
      this.context.stdout.write(text);
      return 0;
    }
    const isDir = await stat(this.output).then((s) => s.isDirectory(), () => false);
    const file = isDir ? join(this.output, manifestFileName(manifest.timestamp)) : this.output;
    try {
      await writeFile(file, text, { flag: 'wx' });
    } catch (error) {
      throw new UserError(`cannot write the manifest to ${file}: ${(error as Error).message}${(error as NodeJS.ErrnoException).code === 'EEXIST' ? ' (it exists; remove it or choose another name)' : ''}`);
    }
    this.report.line(`wrote ${file}: ${manifest.files_copied} files, ${manifest.total_bytes} bytes`);
    this.report.jsonLine({ message_type: 'summary', file, snapshot_id: snapshot.id, files: manifest.files_copied, total_bytes: manifest.total_bytes });
    return 0;
  }
}
