import { Command, Option } from 'clipanion';
import { rebuildIndex } from '../repo/repair-index.js';
import { repairSnapshots } from '../snapshot/repair.js';
import { ExitCode, RepositoryCommand } from './base.js';

export class RepairIndexCommand extends RepositoryCommand {
  static override paths = [['repair', 'index']];
  static override usage = Command.Usage({
    category: 'Repair',
    description: 'rebuild the index from the packs',
    details: `
      Reads the header of every pack and writes a fresh index from them; the old index files
      are removed only once the new ones are stored. Use it when index files are lost or
      damaged. Packs whose header cannot be read are reported and left out: run
      \`bh repair snapshots\` afterwards to rewrite the snapshots that needed them.
      Takes an exclusive lock.
    `,
    examples: [['Rebuild the index', 'bh repair index -r /srv/backup']],
  });

  async run(): Promise<number> {
    const repo = await this.openRepository('exclusive');
    const result = await rebuildIndex(repo, (done, total) => this.report.progress(`reading pack headers: ${done}/${total}`));
    for (const { pack, error } of result.unreadable) this.report.warn(`warning: data/${pack}: header unreadable, pack left out of the index: ${error}`);
    this.report.jsonLine({ message_type: 'summary', packs: result.packs, blobs: result.blobs, unreadable: result.unreadable, index_files_written: result.indexFilesWritten, index_files_removed: result.indexFilesRemoved });
    this.report.line(`indexed ${result.blobs} blobs in ${result.packs} packs; wrote ${result.indexFilesWritten} index files, removed ${result.indexFilesRemoved}`);
    if (result.unreadable.length > 0) this.report.line(`${result.unreadable.length} packs could not be read: run 'bh repair snapshots' next`);
    return result.unreadable.length > 0 ? ExitCode.incomplete : ExitCode.ok;
  }
}

export class RepairSnapshotsCommand extends RepositoryCommand {
  static override paths = [['repair', 'snapshots']];
  static override usage = Command.Usage({
    category: 'Repair',
    description: 'rewrite snapshots without the data that is gone',
    details: `
      Finds the snapshots whose files or directories need blobs that are gone (a lost or
      damaged pack, lost index entries) and writes each again without them: a file missing any
      of its data is left out, a directory whose tree is gone is left out, and a warning names
      each one. The new snapshot keeps time, host and paths, gets the tag \`repaired\`, and
      replaces the old one; packs gone from the repository leave the index. A snapshot whose
      root tree is gone cannot be repaired and is left as is (remove it with forget).
      --dry-run only reports. Takes an exclusive lock.
    `,
    examples: [
      ['See what would be lost', 'bh repair snapshots -r /srv/backup --dry-run'],
      ['Repair', 'bh repair snapshots -r /srv/backup'],
    ],
  });

  dryRun = Option.Boolean('-n,--dry-run', false, { description: 'Only report what would be rewritten' });

  async run(): Promise<number> {
    const repo = await this.openRepository(this.dryRun ? 'shared' : 'exclusive');
    const would = this.dryRun ? 'would be ' : '';
    const result = await repairSnapshots(repo, {
      dryRun: this.dryRun,
      onDamagedSnapshot: this.warnDamagedSnapshot,
      onLost: (snapshot, path, what) => {
        const short = snapshot.id.slice(0, 8);
        this.report.warn(what === 'root' ? `warning: snapshot ${short}: its root tree is gone; it cannot be repaired (remove it with forget)` : `warning: snapshot ${short}: ${what} ${path} ${would}left out: its data is gone`);
        this.report.jsonLine({ message_type: 'lost', snapshot: snapshot.id, path, what });
      },
    });
    for (const { original, id } of result.repaired) {
      this.report.line(id ? `snapshot ${original.slice(0, 8)} replaced by ${id.slice(0, 8)} (tag repaired)` : `snapshot ${original.slice(0, 8)} would be rewritten`);
    }
    this.report.jsonLine({ message_type: 'summary', dry_run: this.dryRun, snapshots: result.snapshots, repaired: result.repaired, unrepairable: result.unrepairable, vanished_packs: result.vanishedPacks });
    this.report.line(`${result.repaired.length} of ${result.snapshots} snapshots ${this.dryRun ? 'need repair' : 'repaired'}${result.unrepairable.length > 0 ? `, ${result.unrepairable.length} cannot be repaired` : ''}`);
    return result.unrepairable.length > 0 ? ExitCode.incomplete : ExitCode.ok;
  }
}
