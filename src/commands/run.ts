import { Command, Option } from 'clipanion';
import { JobAlerts, alertBrokenConfig } from '../jobs/alerting.js';
import type { Job } from '../jobs/config.js';
import { ConfigError } from '../jobs/ini.js';
import { runJob } from '../jobs/runner.js';
import { exitCodeOfRun } from '../jobs/state.js';
import { isEmailAddress } from '../notify/smtp.js';
import { UserError } from './base.js';
import { StatefulJobCommand } from './job-options.js';
import { formatBytes } from './report.js';

export class RunCommand extends StatefulJobCommand {
  static override paths = [['run']];
  static override usage = Command.Usage({
    description: 'run the backup job of a config.ini once',
    details: `
      Reads the job (Backup Handler's config.ini, schema v3), then: pre-backup hook, a backup of
      source_dir into the first destination ([BACKUPS] dirs, [SSH] servers, [S3] bucket; each a
      repository, created on first use), copied into the others, each followed by [RETENTION]
      (forget); with [MODES] db = True the same for the dumps of [DATABASE] (MySQL/MariaDB) and
      [POSTGRES], one snapshot each (/mysql, /postgres); then the post-backup hook, the [HEARTBEAT]
      ping when every step succeeded, and the notifications ([NOTIFICATIONS] notify_on: failure
      and stale by default) through Telegram, e-mail, local mail and the webhook; a channel that
      fails is a warning and changes no exit code. Every run is logged ([LOGGING]) and, with
      [MONITORING] textfile, leaves Prometheus metrics. One run per job at a time: a second one
      refuses (exit 11).

      Exit codes: 0 every destination succeeded; 1 configuration errors (all listed); 2 the
      pre-backup hook or a pre-flight check failed (nothing was backed up); 3 a destination (or
      the post-backup hook) failed, the others still ran; 11 another run holds the lock; 130
      interrupted. Each run is recorded in the status file (see \`bh status\`).

      --dry-run reads every file and shows what would happen, but stores nothing, runs no hook,
      creates no repository, leaves the status file alone and tells nobody.

      --receiver ADDR (repeatable, or comma-separated) sends this run's e-mail to more
      addresses, through [SMTP].
    `,
    examples: [
      ['Run the job of config/config.ini', 'bh run'],
      ['Run the staging profile (config/config.staging.ini)', 'bh run --profile staging'],
      ['Preview a job', 'bh run --config /etc/bh/config.ini --dry-run'],
      ['Also mail the outcome to someone', 'bh run --receiver ops@example.com'],
    ],
  });

  dryRun = Option.Boolean('--dry-run', false, { description: 'Read everything, store nothing, run no hook' });
  receiver = Option.Array('--receiver', { description: 'Also e-mail this run\'s notifications to ADDR (through [SMTP])' });

  async run(): Promise<number> {
    const receivers = (this.receiver ?? []).flatMap((r) => r.split(',')).map((r) => r.trim()).filter((r) => r !== '');
    for (const address of receivers) if (!isEmailAddress(address)) throw new UserError(`--receiver '${address}' is not an e-mail address; write a plain address such as ops@example.com`);
    const job = await this.loadJobOrAlert(receivers);
    if (receivers.length > 0 && !job.alerting.smtp) throw new UserError(`--receiver needs a mail server: set [SMTP] host (and from_addr) in ${job.file}`);
    const report = this.report;
    const stateDir = this.resolvedStateDir();
    const console = { step: (message: string) => report.line(message), warn: (message: string) => report.warn(`warning: ${message}`) };
    // A dry run tells nobody and leaves the state directory (the default log's place) alone.
    const alerts = this.dryRun ? undefined : JobAlerts.open(job, { stateDir, receivers, warn: console.warn });
    let run;
    try {
      run = await runJob({ job, stateDir, dryRun: this.dryRun, env: this.context.env, signal: this.interruptSignal(), observer: alerts, events: alerts?.events(console) ?? console });
    } finally {
      await alerts?.close();
    }
    const code = exitCodeOfRun(run);
    report.jsonLine({ message_type: 'run', exit_code: code, ...run });
    for (const hook of [run.preHook, run.postHook]) {
      if (hook && hook.output.trim() !== '') report.line(`--- output of ${hook.command}\n${hook.output.trimEnd()}\n---`);
    }
    report.table(
      ['destination', 'result', 'snapshot', 'added'],
      [...run.destinations.map((d) => ({ ...d, what: d.location })), ...(run.dumps ?? []).flatMap((dump) => dump.destinations.map((d) => ({ ...d, what: `${dump.engine} dump → ${d.location}` })))].map((d) => [d.what, d.ok ? ['ok', d.copiedFrom ? 'copied' : '', d.initialized ? 'new repository' : '', d.forgotten?.length ? `forgot ${d.forgotten.length} old` : ''].filter((x) => x !== '').join(', ') : `FAILED: ${d.error ?? ''}`, d.snapshotId?.slice(0, 8) ?? '-', d.bytesAdded === undefined ? '-' : formatBytes(d.bytesAdded)]),
    );
    if (run.heartbeat) report.line(`heartbeat${run.heartbeat.signal === 'fail' ? ' (fail signal)' : ''}: ${run.heartbeat.ok ? 'sent' : 'FAILED'}`);
    for (const n of run.notifications ?? []) report.line(`notification ${n.event} through ${n.channel}: ${n.ok ? 'sent' : `FAILED (${n.error ?? ''})`}`);
    if (run.error) report.warn(`bh: ${run.error}`);
    report.line(`run ${run.state}${this.dryRun ? ' (dry run: nothing stored)' : ''}`);
    return code;
  }

  /** The job; when its config does not validate, its channels still hear of the failed run (if their own sections are sound). */
  private async loadJobOrAlert(receivers: string[]): Promise<Job> {
    const file = this.configPath();
    try {
      return this.loadJob();
    } catch (error) {
      if (error instanceof ConfigError && !this.dryRun) {
        const warn = (message: string): void => this.report.warn(`warning: ${message}`);
        const told = await alertBrokenConfig(file, this.context.env, { stateDir: this.resolvedStateDir(), receivers, warn }, error);
        for (const n of told) this.report.line(`notification ${n.event} through ${n.channel}: ${n.ok ? 'sent' : `FAILED (${n.error ?? ''})`}`);
      }
      throw error;
    }
  }
}
