import { Command, Option } from 'clipanion';
import { copySnapshots } from '../snapshot/copy.js';
import { UserError } from './base.js';
import { hostFilter, pathFilter, snapshotFilter, tagFilter } from './snapshot-filter.js';
import { FromRepositoryCommand } from './from-repo.js';
import { formatBytes } from './report.js';

export class CopyCommand extends FromRepositoryCommand {
  static override paths = [['copy']];
  static override usage = Command.Usage({
    description: 'copy snapshots from another repository into this one',
    details: `
      Copies the given snapshots (ids, id prefixes or \`latest\`), or every snapshot matching
      --host, --tag and --path, from the repository given by --from-repo (or BH_FROM_REPO) into
      the one given by -r/--repo (or BH_REPO). Only blobs the destination lacks are transferred;
      they are decrypted with the source's keys and re-encrypted with the destination's. A
      snapshot already in the destination (copied before, or the same backup) is skipped, so
      running copy again is cheap. Each copy records the source snapshot in \`original\`.

      The source password comes from BH_FROM_PASSWORD, BH_FROM_PASSWORD_FILE,
      --from-password-file or --from-key-file (never the command line). Both repositories may be
      on any backend; the backend flags (--ssh-key, --s3-endpoint, …) apply to both.

      Copies dedupe best between repositories that share chunking keys
      (\`bh init --from-repo SRC --copy-chunker-params\`): blob ids and trees are then identical
      and nothing is re-hashed. Otherwise every blob is re-hashed under the destination's id key.

      Takes a shared lock on the source and a backup (shared) lock on the destination.
    `,
    examples: [
      ['Copy every snapshot to a second disk', 'BH_FROM_PASSWORD_FILE=/root/.bh-pass bh copy --from-repo /srv/backup -r /mnt/usb/backup'],
      ['Copy the latest snapshot of one host to an SFTP server', 'bh copy --from-repo /srv/backup -r sftp:bh@vault:/srv/bh --host web1 latest'],
    ],
  });

  snapshotRefs = Option.Rest({ name: 'snapshot' });
  hosts = hostFilter('snapshots');
  tags = tagFilter('snapshots');
  filterPaths = pathFilter('snapshots');

  async run(): Promise<number> {
    const from = this.fromLocation();
    if (!from) throw new UserError('no source repository given: pass --from-repo LOCATION or set BH_FROM_REPO');
    const sourceSession = await this.openSourceRepository(from);
    const source = sourceSession.repo;
    const destination = await this.openRepository();
    await sourceSession.acquireLock('shared', { retryMs: this.retryLockMs() });
    const report = this.report;
    let result;
    try {
      result = await copySnapshots(source, destination, {
        refs: this.snapshotRefs,
        filter: snapshotFilter(this),
        onDamagedSnapshot: this.warnDamagedSnapshot,
        signal: this.interruptSignal(),
        onSnapshot: (snapshot, existing) =>
          report.line(existing ? `snapshot ${snapshot.id.slice(0, 8)} is already in the destination as ${existing.id.slice(0, 8)}: skipped` : `copying snapshot ${snapshot.id.slice(0, 8)} of ${snapshot.record.paths.join(', ')} at ${snapshot.record.time}`),
      });
    } finally {
      await sourceSession.releaseLock();
    }
    report.jsonLine({
      message_type: 'summary',
      copied: result.copied,
      skipped: result.skipped,
      shared_chunking: result.sharedChunking,
      data_blobs_added: result.dataBlobsAdded,
      tree_blobs_added: result.treeBlobsAdded,
      data_blobs_read: result.dataBlobsRead,
      bytes_added: result.bytesAdded,
    });
    report.line(`${result.copied.length} snapshots copied, ${result.skipped.length} already there; ${result.dataBlobsAdded} data and ${result.treeBlobsAdded} tree blobs (${formatBytes(result.bytesAdded)}) added`);
    return 0;
  }
}
