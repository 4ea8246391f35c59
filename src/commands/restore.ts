import { Command, Option } from 'clipanion';
import * as t from 'typanion';
import { compilePatterns } from '../snapshot/exclude.js';
import { Restorer, type OverwritePolicy } from '../snapshot/restorer.js';
import { findSnapshot } from '../snapshot/snapshot.js';
import { ExitCode, RepositoryCommand, parseTimeOption } from './base.js';
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
    `,
    examples: [
      ['Restore the latest snapshot', 'bh restore -r /srv/backup latest --target /tmp/restore'],
      ['Restore one directory of a snapshot as it was on 1 March', 'bh restore -r /srv/backup latest --time 20260301_000000 --include "/srv/www/**" --target /tmp/www'],
    ],
  });

  snapshot = Option.String({ name: 'snapshot' });
  target = Option.String('--target,-t', { required: true, description: 'Directory to restore into (created if missing)' });
  host = Option.String('--host', { description: 'With latest: only snapshots of this host' });
  tags = Option.Array('--tag', [], { description: 'With latest: only snapshots with this tag' });
  filterPaths = Option.Array('--path', [], { description: 'With latest: only snapshots of this path' });
  includes = Option.Array('--include', [], { description: 'Restore only entries matching this glob' });
  excludes = Option.Array('--exclude', [], { description: 'Leave out entries matching this glob' });
  time = Option.String('--time', { description: 'Point in time, local (YYYYMMDD_HHMMSS or "YYYY-MM-DD HH:MM:SS"): newest snapshot at or before it' });
  dryRun = Option.Boolean('--dry-run', false, { description: 'Show what would be restored, write nothing' });
  verify = Option.Boolean('--verify', false, { description: 'Read every restored file back and check it against the snapshot' });
  overwrite = Option.String('--overwrite', 'always', { description: 'always, if-changed or never', validator: t.isEnum(['always', 'if-changed', 'never']) });

  async run(): Promise<number> {
    const before = this.time === undefined ? undefined : parseTimeOption(this.time, '--time');
    const include = this.includes.length > 0 ? compilePatterns(this.includes) : undefined;
    const exclude = compilePatterns(this.excludes);
    const repo = await this.openRepository();
    const snapshots = await this.loadSnapshots(repo);
    const snapshot = findSnapshot(snapshots, this.snapshot, { host: this.host, tags: this.tags, paths: this.filterPaths }, before);
    const indexed = await repo.loadIndex();
    const report = this.report;
    report.line(`restoring snapshot ${snapshot.id.slice(0, 8)} of ${snapshot.record.paths.join(', ')} at ${snapshot.record.time} to ${this.target}`);
    const restorer = new Restorer(indexed, {
      target: this.target,
      include,
      exclude,
      overwrite: this.overwrite as OverwritePolicy,
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
