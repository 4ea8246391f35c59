import { Command, Option } from 'clipanion';
import * as t from 'typanion';
import { type ExportFormat, EXPORT_FORMATS, ExportError, exportSnapshot } from '../legacy/export.js';
import { encSecretOf } from '../legacy/enc.js';
import { compilePatterns } from '../snapshot/exclude.js';
import { findSnapshot } from '../snapshot/snapshot.js';
import { ExitCode, RepositoryCommand, UserError, readKeyFileSecret, readPasswordFileSecret } from './base.js';
import { formatBytes } from './report.js';
import { hostFilter, pathFilter, snapshotFilter, tagFilter } from './snapshot-filter.js';

export class ExportCommand extends RepositoryCommand {
  static override paths = [['export']];
  static override usage = Command.Usage({
    description: 'write a snapshot out as plain files, old .enc files, a ZIP or an AES ZIP',
    details: `
      Writes the snapshot (or what --include/--exclude select, as in restore) for tools that
      do not read bh repositories. Paths are relative to the snapshot's backup path (with
      several, to their common directory), as the old Backup Handler mirrored its source.

      - \`plain\`: files, directories and symlinks with their modes and mtimes, into --target
        DIR (new or empty). Owners, xattrs, hard links and special files are left out: use
        \`bh restore\` for a faithful copy.
      - \`enc\`: the old tool's encrypted folder: every file as NAME.enc (16-byte salt, 12-byte
        nonce, AES-256-GCM ciphertext and tag), with a key from --passphrase-file (PBKDF2-SHA256,
        600 000 iterations, a fresh salt per file, run on all cores) or --legacy-key-file (32
        raw bytes, zero salt), plus backup_manifest_<time>.json listing every file's size and
        SHA-256, so the old tool's --verify and --restore accept the folder. Symlinks and
        special files are left out, with a warning. Files the old tool cannot handle (names
        with [ ] * ?, files of 2 GiB or more) are written, with a warning.
      - \`zip\`: one ZIP file at --target FILE (new), streamed: deflate, ZIP64 where needed,
        UTF-8 names, Unix modes and mtimes, symlinks as links.
      - \`zip-aes\`: the same, every entry encrypted with WinZip AE-2 AES-256 (7-Zip, WinZip,
        Python's pyzipper and most unzip tools read it), password from --passphrase-file.
        bh never writes ZipCrypto (the old tool's zip_pw): that cipher is broken, and its
        archives open without the password with known-plaintext attacks.

      Memory stays bounded whatever the file sizes (one chunk of a file at a time). Every
      file's content is checked against its recorded SHA-256 as it is written.
      --key-file and --password-file open the repository, as everywhere.
    `,
    examples: [
      ['Old-style encrypted folder of the latest snapshot', 'bh export -r /srv/backup latest --format enc --passphrase-file ~/.old-pass --target /mnt/usb/docs'],
      ['An AES ZIP of one directory', 'bh export -r /srv/backup latest --format zip-aes --passphrase-file zip.pass --include "/home/alice/photos/**" --target photos.zip'],
    ],
  });

  snapshot = Option.String({ name: 'snapshot' });
  target = Option.String('--target,-t', { required: true, description: 'Directory (plain, enc) or ZIP file (zip, zip-aes) to create' });
  format = Option.String('--format', { required: true, description: 'plain, enc, zip or zip-aes', validator: t.isEnum(EXPORT_FORMATS) });
  passphraseFile = Option.String('--passphrase-file', { description: 'enc: the passphrase; zip-aes: the ZIP password (one final newline is not part of it)' });
  legacyKeyFile = Option.String('--legacy-key-file', { description: 'enc: a 32-byte raw key file, as the old [ENCRYPTION] key_file' });
  includes = Option.Array('--include', [], { description: 'Export only entries matching this glob' });
  excludes = Option.Array('--exclude', [], { description: 'Leave out entries matching this glob' });
  hosts = hostFilter('latest');
  tags = tagFilter('latest');
  filterPaths = pathFilter('latest');

  async run(): Promise<number> {
    const format = this.format as ExportFormat;
    if (this.passphraseFile && this.legacyKeyFile) throw new UserError('give --passphrase-file or --legacy-key-file, not both');
    if (format === 'enc' && !this.passphraseFile && !this.legacyKeyFile) throw new UserError('--format enc needs --passphrase-file FILE or --legacy-key-file FILE');
    if (format === 'zip-aes' && !this.passphraseFile) throw new UserError('--format zip-aes needs --passphrase-file FILE (the ZIP password)');
    if ((format === 'plain' || format === 'zip') && (this.passphraseFile || this.legacyKeyFile)) throw new UserError(`--format ${format} is not encrypted: leave out --passphrase-file/--legacy-key-file, or use --format ${format === 'zip' ? 'zip-aes' : 'enc'}`);
    if (format === 'zip-aes' && this.legacyKeyFile) throw new UserError('--format zip-aes takes a password (--passphrase-file), not a key file');
    const secret = this.legacyKeyFile ? await readKeyFileSecret(this.legacyKeyFile, 'legacy key file') : this.passphraseFile ? await readPasswordFileSecret(this.passphraseFile, 'passphrase file') : undefined;
    const include = this.includes.length > 0 ? compilePatterns(this.includes) : undefined;
    const exclude = compilePatterns(this.excludes);

    const repo = await this.openRepository();
    const snapshots = await this.loadSnapshots(repo);
    const snapshot = findSnapshot(snapshots, this.snapshot, snapshotFilter(this));
    const indexed = await repo.loadIndex(snapshots.listing);
    const signal = this.interruptSignal();
    const report = this.report;
    let warnings = 0;
    report.line(`exporting snapshot ${snapshot.id.slice(0, 8)} of ${snapshot.record.paths.join(', ')} as ${format} to ${this.target}`);
    try {
      const summary = await exportSnapshot(indexed, this.treeReader(indexed, signal), snapshot, {
        format,
        target: this.target,
        include,
        exclude,
        encSecret: format === 'enc' && secret ? encSecretOf(secret) : undefined,
        zipPassword: format === 'zip-aes' && secret?.kind === 'password' ? secret.password.toString('utf8') : undefined,
        signal,
        onWarning: (message) => {
          warnings++;
          report.warn(`warning: ${message}`);
          report.jsonLine({ message_type: 'warning', message });
        },
        onProgress: (p) => report.progress(`${p.files} files, ${formatBytes(p.bytes)} exported`),
      });
      report.jsonLine({ message_type: 'summary', snapshot_id: snapshot.id, format, target: this.target, files: summary.files, dirs: summary.dirs, symlinks: summary.symlinks, bytes: summary.bytes, skipped: summary.skipped, warnings, manifest: summary.manifest ?? null });
      report.line(`exported ${summary.files} files (${formatBytes(summary.bytes)}), ${summary.dirs} dirs, ${summary.symlinks} symlinks; ${summary.skipped} entries left out${summary.manifest ? `; manifest ${summary.manifest}` : ''}`);
      return ExitCode.ok;
    } catch (error) {
      if (error instanceof ExportError) throw new UserError(error.message);
      throw error;
    }
  }
}
