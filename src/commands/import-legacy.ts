import { Command, Option } from 'clipanion';
import { encSecretOf } from '../legacy/enc.js';
import { LegacyImportError, WrongLegacyKeyError, importLegacy } from '../legacy/import.js';
import { stampOf } from '../legacy/manifest.js';
import { ExitCode, RepositoryCommand, UserError, readKeyFileSecret, readPasswordFileSecret } from './base.js';
import { formatBytes } from './report.js';

export class ImportLegacyCommand extends RepositoryCommand {
  static override paths = [['import-legacy']];
  static override usage = Command.Usage({
    description: "import an old Backup Handler backup folder (or one of its ZIPs) as snapshots",
    details: `
      Reads what the old tool left in a backup directory and writes it into the repository:

      - each top-level backup_manifest_YYYYMMDD_HHMMSS.json becomes one snapshot at the
        manifest's time and mode, holding what the source looked like after that run (a full
        run's copied files; an incremental or differential run's copied and skipped ones), at
        the source directory the manifests name (--source-dir overrides it). The folder holds
        only the newest version of each file: files whose older version is gone are named, and
        left out of that older snapshot;
      - .enc files are decrypted (--passphrase-file, or --legacy-key-file for the old 32-byte
        key_file) and checked against the manifests' SHA-256;
      - backup_YYYYMMDD_HHMMSS.zip (plain, or the old zip_pw ZipCrypto archives with their
        password in --zip-password-file, default the --passphrase-file) become one snapshot
        each; entries with the same name (zip_pw kept only file names) are kept apart as
        "name (2).ext";
      - files no manifest lists become one snapshot at the folder's time.
      DIR|ZIP may also be a single ZIP file. Snapshots are tagged legacy-manifest, legacy-zip or
      legacy-unlisted, plus --tag.

      Everything is read and checked before the first snapshot is written: a wrong passphrase,
      key or ZIP password exits 12 with nothing imported. A file whose content matches no
      checksum of the manifests, a file a manifest lists that is missing, and names that could
      escape a directory (.., absolute names in archives, NUL) are reported and left out; the
      rest is imported and the exit code is 3. --dry-run reads and checks everything the same
      way and lists the snapshots it would write, writing none.

      Staging needs free space in the temporary directory (--temp-dir, default $TMPDIR) of
      the size of the folder's content.
    `,
    examples: [
      ['Import an old destination with encrypted files', 'bh import-legacy -r /srv/bh /mnt/old-backups --passphrase-file ~/.old-pass'],
      ['See what would be imported', 'bh import-legacy -r /srv/bh /mnt/old-backups --legacy-key-file /etc/backup.key --dry-run'],
    ],
  });

  source = Option.String({ name: 'DIR|ZIP' });
  passphraseFile = Option.String('--passphrase-file', { description: 'The old [ENCRYPTION] passphrase (one final newline is not part of it); also the ZIP password' });
  legacyKeyFile = Option.String('--legacy-key-file', { description: 'The old 32-byte [ENCRYPTION] key_file' });
  zipPasswordFile = Option.String('--zip-password-file', { description: 'Password of the old zip_pw archives, when it is not the --passphrase-file' });
  sourceDir = Option.String('--source-dir', { description: 'The source directory the snapshots record (default: inferred from the manifests)' });
  host = Option.String('--host', { description: 'Host name recorded in the snapshots (default: this machine)' });
  tags = Option.Array('--tag', [], { description: 'Add this tag to every snapshot (repeatable)' });
  tempDir = Option.String('--temp-dir', { description: 'Where to stage files while importing (default $TMPDIR)' });
  dryRun = Option.Boolean('--dry-run', false, { description: 'Read and check everything, list the snapshots, write none' });

  async run(): Promise<number> {
    if (this.passphraseFile && this.legacyKeyFile) throw new UserError('give --passphrase-file or --legacy-key-file, not both');
    if (this.sourceDir !== undefined && !this.sourceDir.startsWith('/')) throw new UserError('--source-dir must be an absolute path');
    const secret = this.legacyKeyFile ? await readKeyFileSecret(this.legacyKeyFile, 'legacy key file') : this.passphraseFile ? await readPasswordFileSecret(this.passphraseFile, 'passphrase file') : undefined;
    const zipSecret = this.zipPasswordFile ? await readPasswordFileSecret(this.zipPasswordFile, 'ZIP password file') : secret?.kind === 'password' ? secret : undefined;
    const repo = this.dryRun ? undefined : await this.openRepository();
    const report = this.report;
    try {
      const result = await importLegacy(repo, {
        source: this.source,
        encSecret: secret ? encSecretOf(secret) : undefined,
        zipPassword: zipSecret?.kind === 'password' ? zipSecret.password.toString('utf8') : undefined,
        sourceDir: this.sourceDir,
        host: this.host,
        tags: this.tags,
        dryRun: this.dryRun,
        tempDir: this.tempDir,
        signal: this.interruptSignal(),
        onWarning: (message) => {
          report.warn(`warning: ${message}`);
          report.jsonLine({ message_type: 'warning', message });
        },
        onError: (path, message) => {
          report.warn(`error: ${path}: ${message}`);
          report.jsonLine({ message_type: 'error', path, error: message });
        },
        onDamagedSnapshot: this.warnDamagedSnapshot,
        onSnapshot: (s) => {
          report.line(`${this.dryRun ? 'would write' : `snapshot ${s.id?.slice(0, 8)}`}: ${stampOf(s.time)} ${s.mode} ${s.path}, ${s.files} files (${formatBytes(s.bytes)}) from ${s.origin}${s.notRecovered.length > 0 ? `; ${s.notRecovered.length} files not recoverable in this version` : ''}`);
          report.jsonLine({ message_type: 'snapshot', snapshot_id: s.id ?? null, origin: s.origin, time: s.time.toISOString(), mode: s.mode, path: s.path, files: s.files, bytes: s.bytes, not_recovered: s.notRecovered });
        },
      });
      report.jsonLine({ message_type: 'summary', dry_run: this.dryRun, snapshots: result.snapshots.length, errors: result.errors });
      report.line(`${this.dryRun ? 'would import' : 'imported'} ${result.snapshots.length} snapshots${result.errors > 0 ? `; ${result.errors} errors (see above)` : ''}`);
      return result.errors > 0 ? ExitCode.incomplete : ExitCode.ok;
    } catch (error) {
      if (error instanceof WrongLegacyKeyError) throw new UserError(error.message, ExitCode.wrongPassword);
      if (error instanceof LegacyImportError) throw new UserError(error.message);
      throw error;
    }
  }
}
