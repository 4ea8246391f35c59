import { Command } from 'clipanion';
import { jobStatus } from '../jobs/overview.js';
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
      A destination that cannot be opened is shown with its error. The first line is the bh
      version and build commit (the \`version\` field of --json, as \`bh version --json\` prints it).
    `,
    examples: [['Status of the job in /etc/bh/config.ini', 'bh status --config /etc/bh/config.ini']],
  });

  async run(): Promise<number> {
    const job = this.loadJob();
    const now = Date.now();
    const status = await jobStatus(job, this.resolvedStateDir(), now);
    const version = await versionInfo();
    const report = this.report;
    report.jsonLine({ ...status, version });
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
    return 0;
  }
}
