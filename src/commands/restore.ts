import { Command, Option } from 'clipanion';
import * as t from 'typanion';
import { compilePatterns } from '../snapshot/exclude.js';
import { Restorer, type OverwritePolicy } from '../snapshot/restore/index.js';
import { findSnapshot } from '../snapshot/snapshot.js';
import { ExitCode, RepositoryCommand, UserError, parseTimeOption } from './base.js';
import { hostFilter, pathFilter, snapshotFilter, tagFilter } from './snapshot-filter.js';
import { formatBytes } from './report.js';

export class RestoreCommand extends RepositoryCommand {
  static override paths = [['restore']];
  static override usage = Command.Usage({
    description: 'restore a snapshot into a directory',
    details: `
      Recreates the snapshot under --target, with every path as it was backed up (a backup of
      /srv/www restores to TARGET/srv/www). \`latest\` picks the newest snapshot that matches
      --host, --tag and --path; --time picks the newest one taken at or before that moment.

      Content, permissions (setuid/setgid/sticky too), owner and group (when run as root),
      nanosecond mtimes, user xattrs, symlinks, hardlinks, FIFOs and device nodes are restored.
      Nothing is written outside the target, and no symlink inside it is followed.

      What is already in the target: a directory where the snapshot has one is restored into.
      Where both are non-directories (files, symlinks, FIFOs, device nodes), --overwrite decides:
      always replaces, if-changed replaces unless a file has the snapshot's size and mtime, never
      keeps; a kept entry counts as skipped (exit 0). Where one is a directory and the other is
      not, always and if-changed replace the existing entry, except a directory that is not
      empty, which only --overwrite-dirs deletes (with everything in it); never keeps it. Such a
      kept entry is reported, and the snapshot's entry (with all below it) is not restored: exit 3.

      Ctrl-C or SIGTERM stops the restore within one blob: exit 130. Finished files stay, complete;
      files being written are removed; directories not finished keep mode 0700 and none of their
      recorded metadata. Run the restore again with --overwrite if-changed to complete it.
    `,
    examples: [
      ['Restore the latest snapshot', 'bh restore -r /srv/backup latest --target /tmp/restore'],
      ['Restore one directory of a snapshot as it was on 1 March', 'bh restore -r /srv/backup latest --time 20260301_000000 --include "/srv/www/**" --target /tmp/www'],
    ],
  });

  snapshot = Option.String({ name: 'snapshot' });
  target = Option.String('--target,-t', { required: true, description: 'Directory to restore into (created if missing)' });
  hosts = hostFilter('latest');
  tags = tagFilter('latest');
  filterPaths = pathFilter('latest');
  includes = Option.Array('--include', [], { description: 'Restore only entries matching this glob' });
  excludes = Option.Array('--exclude', [], { description: 'Leave out entries matching this glob' });
  time = Option.String('--time', { description: 'Point in time, local (YYYYMMDD_HHMMSS or "YYYY-MM-DD HH:MM:SS"): newest snapshot at or before it' });
  dryRun = Option.Boolean('--dry-run', false, { description: 'Show what would be restored, write nothing' });
  verify = Option.Boolean('--verify', false, { description: 'Read every restored file back and check it against the snapshot' });
  overwrite = Option.String('--overwrite', 'always', { description: 'always, if-changed or never', validator: t.isEnum(['always', 'if-changed', 'never']) });
  overwriteDirs = Option.Boolean('--overwrite-dirs', false, { description: 'Also delete a non-empty directory, with everything in it, where the snapshot has a file (not with --overwrite never)' });

  async run(): Promise<number> {
    if (this.overwriteDirs && this.overwrite === 'never') throw new UserError('--overwrite-dirs replaces directories and --overwrite never replaces nothing: use one of them');
    const before = this.time === undefined ? undefined : parseTimeOption(this.time, '--time');
    const include = this.includes.length > 0 ? compilePatterns(this.includes) : undefined;
    const exclude = compilePatterns(this.excludes);
    const repo = await this.openRepository();
    const snapshots = await this.loadSnapshots(repo);
    const snapshot = findSnapshot(snapshots, this.snapshot, snapshotFilter(this), before);
    const indexed = await repo.loadIndex(snapshots.listing);
    const report = this.report;
    report.line(`restoring snapshot ${snapshot.id.slice(0, 8)} of ${snapshot.record.paths.join(', ')} at ${snapshot.record.time} to ${this.target}`);
    const restorer = new Restorer(indexed, {
      target: this.target,
      include,
      exclude,
      overwrite: this.overwrite as OverwritePolicy,
      overwriteDirs: this.overwriteDirs,
      dryRun: this.dryRun,
      verify: this.verify,
      expectedBytes: snapshot.record.summary?.total_bytes,
      signal: this.interruptSignal(),
      onProgress: (p) => report.progress(`${p.files} files, ${formatBytes(p.bytes)} restored`),
      onError: (e) => {
        report.warn(`error: ${e.path}: ${e.message}`);
        report.jsonLine({ message_type: 'error', path: e.path, error: e.message });
      },
    });
    const result = await restorer.run(Buffer.from(snapshot.record.tree, 'hex'));
    report.jsonLine({ message_type: 'summary', snapshot_id: snapshot.id, dry_run: this.dryRun, files_restored: result.files, dirs_restored: result.dirs, hardlinks: result.links, special_files: result.special, bytes_restored: result.bytes, skipped: result.skipped, verified: result.verified, errors: result.errors.length });
    report.line(`${this.dryRun ? 'would restore' : 'restored'} ${result.files} files (${formatBytes(result.bytes)}), ${result.dirs} dirs, ${result.links} hardlinks, ${result.special} other entries; ${result.skipped} skipped`);
    if (this.verify) report.line(`verified ${result.verified} files against the snapshot`);
    if (result.errors.length > 0) {
      report.warn(`warning: ${result.errors.length} entries could not be restored`);
      return ExitCode.incomplete;
    }
    return ExitCode.ok;
  }
}
