import { Command, Option } from 'clipanion';
import { JobAlerts } from '../jobs/alerting.js';
import type { Job } from '../jobs/config.js';
import { jobStatus } from '../jobs/overview.js';
import { ExitCode } from './base.js';
import { versionInfo, versionLine } from '../ops/provenance.js';
import { StatefulJobCommand } from './job-options.js';
import { formatBytes, formatDuration } from './report.js';

export class StatusCommand extends StatefulJobCommand {
  static override paths = [['status']];
  static override usage = Command.Usage({
    description: 'show the last runs of a job and the state of its repositories',
    details: `
      Reads the job's status file (written by \`bh run\` and \`bh schedule\`) and opens every
      destination repository: the last runs, each destination's last success, its snapshot
      count and the bytes it stores, and whether it is stale — its last success older than
      staleness_factor ([PREFLIGHT], default 2) times the longest gap between [SCHEDULE] times.
      A destination that cannot be opened is shown with its error. Notifications that failed
      in the runs shown are counted and listed. The first line is the bh version and build
      commit (the \`version\` field of --json, as \`bh version --json\` prints it).

      --alert is for cron and Nagios-style checks: exit 3 when a destination is stale or the
      last run did not fully succeed, 0 otherwise; destinations newly stale are also sent as a
      job.stale notification (once per stale period, as \`bh run\` does).
    `,
    examples: [
      ['Status of the job in /etc/bh/config.ini', 'bh status --config /etc/bh/config.ini'],
      ['Check from cron every hour, alerting on staleness', 'bh status --config /etc/bh/config.ini --alert'],
    ],
  });

  alert = Option.Boolean('--alert', false, { description: 'Exit 3 when a destination is stale or the last run failed; send stale alerts' });

  async run(): Promise<number> {
    const job = this.loadJob();
    const now = Date.now();
    const status = await jobStatus(job, this.resolvedStateDir(), now);
    const version = await versionInfo();
    const report = this.report;
    const lastRun = status.runs.filter((r) => r.state !== 'started').pop();
    const stale = status.destinations.filter((d) => d.stale === true).map((d) => d.location);
    const alarm = this.alert ? await this.sendStaleAlerts(job, stale, lastRun?.state) : undefined;
    report.jsonLine(alarm ? { ...status, version, alert: alarm } : { ...status, version });
    report.line(versionLine(version));
    report.line(`job ${status.config}`);
    report.line(`status file ${status.statusFile}`);
    report.line('');
    report.table(
      ['started', 'result', 'destinations'],
      status.runs.map((r) => [r.started, r.state + (r.error ? `: ${r.error}` : ''), r.destinations.map((d) => `${d.location} ${d.ok ? 'ok' : 'failed'}`).join(', ')]),
    );
    if (status.runs.length === 0) report.line('(no runs recorded yet)');
    report.line('');
    report.table(
      ['destination', 'last success', 'age', 'stale', 'snapshots', 'stored'],
      status.destinations.map((d) => [
        d.location,
        d.lastSuccess ?? 'never',
        d.ageMs === null ? '-' : formatDuration(d.ageMs),
        d.stale === null ? 'no schedule' : d.stale ? 'STALE' : 'no',
        d.snapshots === null ? `? (${d.error ?? ''})` : String(d.snapshots),
        d.storedBytes === null ? '-' : formatBytes(d.storedBytes),
      ]),
    );
    if (status.failedNotifications.length > 0) {
      report.line('');
      report.line(`notifications that FAILED in these runs: ${status.failedNotifications.length}`);
      for (const n of status.failedNotifications) report.line(`  run ${n.run}: ${n.event} through ${n.channel}: ${n.error}`);
    }
    if (!alarm) return ExitCode.ok;
    for (const reason of alarm.reasons) report.warn(`ALERT: ${reason}`);
    for (const d of alarm.deliveries) report.line(`notification job.stale through ${d.channel}: ${d.ok ? 'sent' : `FAILED (${d.error ?? ''})`}`);
    return alarm.reasons.length > 0 ? ExitCode.incomplete : ExitCode.ok;
  }

  private async sendStaleAlerts(job: Job, stale: string[], lastState: string | undefined): Promise<{ reasons: string[]; deliveries: { channel: string; ok: boolean; error?: string | undefined }[] }> {
    const reasons = stale.map((location) => `${location} is stale`);
    if (lastState !== undefined && lastState !== 'success') reasons.push(`the last run ended ${lastState}`);
    const alerts = JobAlerts.open(job, { stateDir: this.resolvedStateDir(), warn: (message) => this.report.warn(`warning: ${message}`) });
    try {
      const { deliveries } = await alerts.alertStale();
      return { reasons, deliveries };
    } finally {
      await alerts.close();
    }
  }
}
