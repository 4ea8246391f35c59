import { lstat, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, Option } from 'clipanion';
import * as t from 'typanion';
import { compilePatterns, parsePatternFile } from '../snapshot/exclude.js';
import { runBackup } from '../snapshot/backup.js';
import type { BackupMode } from '../snapshot/snapshot.js';
import type { StreamSource } from '../snapshot/streams.js';
import { commandSource, standardInput } from '../sources/command.js';
import { mysqlSource } from '../sources/mysql.js';
import { postgresSource } from '../sources/postgres.js';
import { databaseList, mysqlConnection, mysqlHostOption, mysqlPortOption, mysqlSocketOption, mysqlUserOption, postgresConnection, postgresHostOption, postgresPortOption, postgresUserOption } from './database-options.js';
import { ExitCode, RepositoryCommand, UserError, parseTimeOption } from './base.js';
import { formatBytes, formatDuration } from './report.js';

export class BackupCommand extends RepositoryCommand {
  static override paths = [['backup']];
  static override usage = Command.Usage({
    description: 'back up files and directories into a new snapshot',
    details: `
      Reads the given paths and stores what is new in the repository. Every snapshot restores
      on its own; --mode only chooses the parent used to skip unchanged files:

      - \`incremental\` (default): the latest snapshot of the same host and paths;
      - \`differential\`: the latest *full* snapshot of the same host and paths;
      - \`full\`: none, every file is read and hashed again.

      A backup that finds no parent reads everything and is recorded as full.

      A file that cannot be read is reported and left out; the snapshot is still saved and the
      exit code is 3. With --json, progress and the summary are JSON lines on stdout.

      Streams instead of paths (each backup of a stream is a full one; consecutive ones still
      deduplicate): --stdin; --stdin-from-command -- CMD ARGS… (run without a shell, its output
      stored as --stdin-filename); --mysql DB… (one file /mysql/DB.sql per database, tagged
      mysql; \`*\` for every database but the system schemas; password in BH_MYSQL_PASSWORD);
      --postgres DB… (/postgres/DB.sql each, and /postgres/globals.sql; password in
      BH_POSTGRES_PASSWORD). A command or dump tool that exits non-zero, dies, or (dump tools)
      leaves out its closing "dump completed" line fails the backup: exit 1, no snapshot.
    `,
    examples: [
      ['Back up /etc and /home', 'bh backup -r /srv/backup /etc /home'],
      ['A full backup, tagged', 'bh backup -r /srv/backup --mode full --tag weekly /srv/www'],
      ['Back up a database dump from standard input', 'mysqldump app | bh backup -r /srv/backup --stdin --stdin-filename app.sql'],
      ['Back up a command\'s output (its exit status is checked)', 'bh backup -r /srv/backup --stdin-filename ldap.ldif --stdin-from-command -- slapcat -n 1'],
      ['Dump two MariaDB databases with their binlog position', 'BH_MYSQL_PASSWORD=… bh backup -r /srv/backup --mysql app,shop --mysql-user backup --mysql-binlog-position'],
      ['Dump every PostgreSQL database', 'BH_POSTGRES_PASSWORD=… bh backup -r /srv/backup --postgres \'*\' --postgres-host 127.0.0.1 --postgres-user backup'],
    ],
  });

  sources = Option.Rest({ name: 'path' });
  mode = Option.String('--mode', 'incremental', { description: 'full, incremental or differential', validator: t.isEnum(['full', 'incremental', 'differential']) });
  excludes = Option.Array('--exclude', [], { description: 'Leave out entries matching this glob (repeatable)' });
  excludeFiles = Option.Array('--exclude-file', [], { description: 'Read exclude patterns from this file, one a line' });
  tags = Option.Array('--tag', [], { description: 'Tag the snapshot (repeatable)' });
  host = Option.String('--host', { description: 'Record this host name instead of this machine’s' });
  time = Option.String('--time', { description: 'Record this local time ("YYYY-MM-DD HH:MM:SS" or YYYYMMDD_HHMMSS) instead of now' });
  dryRun = Option.Boolean('--dry-run', false, { description: 'Read and chunk everything, store nothing' });
  stdin = Option.Boolean('--stdin', false, { description: 'Back up standard input as one file' });
  stdinFilename = Option.String('--stdin-filename', 'stdin', { description: 'Name of the file made from standard input or --stdin-from-command' });
  stdinFromCommand = Option.Boolean('--stdin-from-command', false, { description: 'Back up the output of the command given after --' });
  mysql = Option.Array('--mysql', [], { description: 'Dump this MySQL/MariaDB database (repeatable, comma-separated; * for all)' });
  mysqlHost = mysqlHostOption();
  mysqlPort = mysqlPortOption();
  mysqlUser = mysqlUserOption();
  mysqlSocket = mysqlSocketOption();
  mysqlBinlogPosition = Option.Boolean('--mysql-binlog-position', false, { description: 'Record the binary log position of each dump (needs log_bin and the RELOAD privilege)' });
  postgres = Option.Array('--postgres', [], { description: 'Dump this PostgreSQL database (repeatable, comma-separated; * for all)' });
  postgresHost = postgresHostOption();
  postgresPort = postgresPortOption();
  postgresUser = postgresUserOption();

  async run(): Promise<number> {
    const source = this.streamSource();
    if (!source && this.sources.length === 0) throw new UserError('nothing to back up: give one or more paths, --stdin, --stdin-from-command, --mysql or --postgres');
    const patterns = [...this.excludes];
    for (const file of this.excludeFiles) {
      const text = await readFile(file, 'utf8').catch((error: Error) => {
        throw new UserError(`cannot read exclude file ${file}: ${error.message}`);
      });
      patterns.push(...parsePatternFile(text, file));
    }
    const exclude = compilePatterns(patterns);
    const time = this.time === undefined ? undefined : parseTimeOption(this.time, '--time');
    const paths = source ? [] : [...new Set(this.sources.map((p) => resolve(p)))];
    for (const path of paths) {
      await lstat(path).catch((error: Error) => {
        throw new UserError(`cannot back up ${path}: ${error.message}`);
      });
    }

    const repo = await this.openRepository();
    const signal = this.interruptSignal();
    const started = Date.now();
    const report = this.report;
    const result = await runBackup(repo, {
      paths,
      mode: this.mode as BackupMode,
      exclude,
      excludePatterns: patterns,
      tags: [...this.tags, ...(this.mysql.length > 0 ? ['mysql'] : this.postgres.length > 0 ? ['postgres'] : [])],
      host: this.host,
      time,
      dryRun: this.dryRun,
      source,
      signal,
      onDamagedSnapshot: this.warnDamagedSnapshot,
      onParent: (parent, mode) => report.line(parent ? `using parent snapshot ${parent.id.slice(0, 8)} (${mode})` : `no parent snapshot: reading every file (${mode})`),
      onProgress: (p) => {
        report.progress(`${formatDuration(Date.now() - started)} ${p.files} files, ${formatBytes(p.bytesRead)} read, ${formatBytes(p.bytesAdded)} added  ${p.current}`);
        report.jsonLine({ message_type: 'status', seconds_elapsed: (Date.now() - started) / 1000, files_done: p.files, dirs_done: p.dirs, bytes_read: p.bytesRead, bytes_added: p.bytesAdded, current_file: p.current });
      },
      onWarning: (message) => report.warn(`warning: ${message}`),
      onError: (e) => {
        report.warn(`error: ${e.path}: ${e.message}`);
        report.jsonLine({ message_type: 'error', path: e.path, error: e.message });
      },
    });
    const c = result.counters;
    const elapsed = (Date.now() - started) / 1000;
    report.jsonLine({ message_type: 'summary', snapshot_id: result.snapshotId ?? null, dry_run: this.dryRun, mode: result.record.mode, parent: result.record.parent, ...c, total_duration: elapsed });
    report.line(`Files:       ${c.files_new} new, ${c.files_changed} changed, ${c.files_unmodified} unmodified`);
    report.line(`Dirs:        ${c.dirs_new} new, ${c.dirs_changed} changed, ${c.dirs_unmodified} unmodified`);
    report.line(`Read:        ${formatBytes(c.bytes_read)} of ${formatBytes(c.total_bytes)} in ${c.total_files} files`);
    report.line(`Added:       ${formatBytes(c.bytes_added)} to the repository${this.dryRun ? ' (dry run: nothing stored)' : ''}`);
    report.line(result.snapshotId ? `snapshot ${result.snapshotId.slice(0, 8)} saved in ${formatDuration(elapsed * 1000)}` : 'dry run: no snapshot saved');
    if (result.errors.length > 0) {
      report.warn(`warning: ${result.errors.length} entries could not be read and are missing from the snapshot`);
      return ExitCode.incomplete;
    }
    return ExitCode.ok;
  }

  /** The stream source the options ask for, or undefined for a backup of paths. */
  private streamSource(): StreamSource | undefined {
    const mysql = databaseList(this.mysql);
    const postgres = databaseList(this.postgres);
    const chosen = [this.stdin && '--stdin', this.stdinFromCommand && '--stdin-from-command', mysql.length > 0 && '--mysql', postgres.length > 0 && '--postgres'].filter((x): x is string => typeof x === 'string');
    if (chosen.length > 1) throw new UserError(`${chosen.join(' and ')} cannot be combined: one stream source per backup (run bh backup once for each)`);
    if (chosen.length === 0) return undefined;
    const env = this.context.env;
    if (this.stdinFromCommand) {
      if (this.sources.length === 0) throw new UserError('--stdin-from-command needs the command after --: bh backup --stdin-from-command -- CMD ARGS…');
      checkStreamName(this.stdinFilename);
      return commandSource(this.sources, this.stdinFilename, { env, onStderr: (text) => void this.context.stderr.write(text) });
    }
    if (this.sources.length > 0) throw new UserError(`${chosen[0]} takes no paths`);
    if (this.stdin) {
      checkStreamName(this.stdinFilename);
      return standardInput(this.context.stdin, this.stdinFilename);
    }
    if (mysql.length > 0) return mysqlSource({ ...mysqlConnection(this, env), databases: mysql, singleTransaction: true, binlogPosition: this.mysqlBinlogPosition }, { env });
    return postgresSource({ ...postgresConnection(this, env), databases: postgres }, { env });
  }
}

function checkStreamName(name: string): void {
  if (name.includes('/') || ['', '.', '..'].includes(name)) throw new UserError('--stdin-filename must be a plain file name');
}
