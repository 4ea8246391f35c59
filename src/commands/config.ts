/**
 * `bh config check|example|init-key`: validate a job and show it resolved (secrets masked, the
 * old --show-setup), print a commented example, create a raw key file. One class per subcommand.
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'clipanion';
import { formatTimeOfDay } from '../jobs/config.js';
import { alertingSummary } from '../jobs/alerting.js';
import { describeDatabaseJob } from '../jobs/database-config.js';
import { EXAMPLE_CONFIG } from '../jobs/example.js';
import { parseIni } from '../jobs/ini.js';
import { mysqlServerName } from '../sources/mysql.js';
import { postgresServerName } from '../sources/postgres.js';
import { maskedSettings } from '../jobs/config.js';
import { writeRawKeyFile } from '../jobs/raw-key.js';
import { BhCommand } from './base.js';
import { JobCommand } from './job-options.js';

export class ConfigCheckCommand extends JobCommand {
  static override paths = [['config', 'check']];
  static override usage = Command.Usage({
    description: 'validate a job config and print it resolved, secrets masked',
    details: `
      Reads the config file as \`bh run\` would and lists every problem at once (file, line,
      section, key, what is wrong and what to do); exit 1 if there is any. Then prints the
      destinations (repositories) the job writes to, and every setting with secrets masked.
      Warnings name what is read but not applied by bh.
    `,
    examples: [
      ['Check config/config.ini', 'bh config check'],
      ['Check a profile', 'bh config check --profile staging'],
    ],
  });

  async run(): Promise<number> {
    const job = this.loadJob();
    const settings = maskedSettings(parseIni(readFileSync(job.file, 'utf8'), job.file));
    const alerting = alertingSummary(job);
    const report = this.report;
    report.jsonLine({
      message_type: 'config',
      file: job.file,
      source: job.source,
      mode: job.mode,
      excludes: job.excludes,
      destinations: job.destinations.map((d) => ({ kind: d.kind, location: d.location })),
      secret: job.secret.kind === 'keyFile' ? { kind: 'key_file', path: job.secret.path } : { kind: 'passphrase' },
      schedule: job.schedule.map(formatTimeOfDay),
      retention: job.retention ?? null,
      hooks: { pre_backup: job.hooks.pre !== undefined, post_backup: job.hooks.post !== undefined, timeout_seconds: job.hooks.timeoutSeconds },
      heartbeat: job.heartbeat !== undefined,
      alerting,
      databases: describeDatabaseJob(job.databases),
      warnings: job.warnings,
      settings,
    });
    report.line(`${job.file}: OK`);
    report.line(`source:       ${job.source} (${job.mode})`);
    report.line(`unlocked by:  ${job.secret.kind === 'keyFile' ? `key file ${job.secret.path}` : 'passphrase (masked)'}; every repository is encrypted`);
    report.line(`schedule:     ${job.schedule.length > 0 ? job.schedule.map(formatTimeOfDay).join(', ') : '(none)'}`);
    report.line(`retention:    ${job.retention ? `after each complete backup, forget this job's snapshots beyond max_count ${job.retention.maxCount} / max_age_days ${job.retention.maxAgeDays} (0: off; the newest is always kept)${job.retention.prune ? ', then prune' : ', no prune'}` : 'keep every snapshot'}`);
    report.line(`notify:       ${alerting.channels.length > 0 ? `${alerting.channels.join('; ')} (on ${alerting.notifyOn.join(', ')})` : '(no channel)'}`);
    report.line(`log:          ${alerting.log}`);
    if (alerting.metrics) report.line(`metrics:      ${alerting.metrics}`);
    report.line('destinations (one repository each, created on first use; backed up into the first, copied to the others):');
    for (const d of job.destinations) report.line(`  ${d.kind.padEnd(5)}  ${d.location}`);
    const { mysql, postgres } = job.databases;
    if (mysql) report.line(`mysql dumps:  ${mysql.databases.join(', ')} on ${mysqlServerName(mysql)} as ${mysql.user ?? 'root'}${mysql.binlogPosition ? ', with binlog position' : ''} (snapshot /mysql)`);
    if (postgres) report.line(`postgres dumps: ${postgres.databases.join(', ')} on ${postgresServerName(postgres)} as ${postgres.user ?? '(default user)'} (snapshot /postgres)`);
    report.line('');
    report.table(['section', 'key', 'value'], settings.map((s) => [`[${s.section}]`, s.key, s.value]));
    return 0;
  }
}

export class ConfigExampleCommand extends BhCommand {
  static override paths = [['config', 'example']];
  static override usage = Command.Usage({
    description: 'print a commented example config.ini',
    examples: [['Start a new job config', 'mkdir -p config && bh config example > config/config.ini']],
  });

  async run(): Promise<number> {
    this.report.raw(EXAMPLE_CONFIG);
    return 0;
  }
}

export class ConfigInitKeyCommand extends BhCommand {
  static override paths = [['config', 'init-key']];
  static override usage = Command.Usage({
    description: 'create a new 32-byte key file for [ENCRYPTION] key_file',
    details: `
      Writes 32 random bytes to PATH (default config/bh.key), readable by its owner only
      (mode 0600). Refuses to overwrite an existing file. Keep a copy somewhere safe and
      offline: every repository the key opens is unreadable without it.
    `,
    examples: [['Create /etc/bh/backup.key', 'bh config init-key /etc/bh/backup.key']],
  });

  keyPath = Option.String({ required: false, name: 'path' });

  async run(): Promise<number> {
    const path = await writeRawKeyFile(this.keyPath ?? 'config/bh.key');
    this.report.jsonLine({ message_type: 'key_file', path });
    this.report.line(`wrote a new 32-byte key to ${path} (mode 0600)`);
    this.report.line(`add to the [ENCRYPTION] section:  key_file = ${path}`);
    this.report.warn('warning: losing this file loses every backup it encrypts: keep a copy somewhere safe and offline');
    return 0;
  }
}
