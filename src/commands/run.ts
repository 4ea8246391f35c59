import { Command, Option } from 'clipanion';
import { runJob } from '../jobs/runner.js';
import type { RunRecord } from '../jobs/state.js';
import { ExitCode } from './base.js';
import { StatefulJobCommand } from './job-options.js';
import { formatBytes } from './report.js';

/** The exit code of a finished run (README.md, "Moving from Backup Handler"). */
export function exitCodeOfRun(run: RunRecord): number {
  switch (run.state) {
    case 'success':
      return ExitCode.ok;
    case 'aborted':
      return ExitCode.preflight;
    case 'interrupted':
      return ExitCode.interrupted;
    default:
      return ExitCode.incomplete;
  }
}

export class RunCommand extends StatefulJobCommand {
  static override paths = [['run']];
  static override usage = Command.Usage({
    description: 'run the backup job of a config.ini once',
    details: `
      Reads the job (Backup Handler's config.ini, schema v3), then: pre-backup hook, a backup of
      source_dir into the first destination ([BACKUPS] dirs, [SSH] servers, [S3] bucket; each a
      repository, created on first use), copied into the others, each followed by [RETENTION]
      (forget); with [MODES] db = True the same for the dumps of [DATABASE] (MySQL/MariaDB) and
      [POSTGRES], one snapshot each (/mysql, /postgres); then the post-backup hook, and the [HEARTBEAT] ping when every step succeeded. One run per job at a time: a second one refuses (exit 11).

      Exit codes: 0 every destination succeeded; 1 configuration errors (all listed); 2 the
      pre-backup hook or a pre-flight check failed (nothing was backed up); 3 a destination (or
      the post-backup hook) failed, the others still ran; 11 another run holds the lock; 130
      interrupted. Each run is recorded in the status file (see \`bh status\`).

      --dry-run reads every file and shows what would happen, but stores nothing, runs no hook,
      creates no repository and leaves the status file alone.
    `,
    examples: [
      ['Run the job of config/config.ini', 'bh run'],
      ['Run the staging profile (config/config.staging.ini)', 'bh run --profile staging'],
      ['Preview a job', 'bh run --config /etc/bh/config.ini --dry-run'],
    ],
  });

  dryRun = Option.Boolean('--dry-run', false, { description: 'Read everything, store nothing, run no hook' });

  async run(): Promise<number> {
    const job = this.loadJob();
    const report = this.report;
    const run = await runJob({
      job,
      stateDir: this.resolvedStateDir(),
      dryRun: this.dryRun,
      env: this.context.env,
      signal: this.interruptSignal(),
      notifiers: [],
      events: { step: (message) => report.line(message), warn: (message) => report.warn(`warning: ${message}`) },
    });
    const code = exitCodeOfRun(run);
    report.jsonLine({ message_type: 'run', exit_code: code, ...run });
    for (const hook of [run.preHook, run.postHook]) {
      if (hook && hook.output.trim() !== '') report.line(`--- output of ${hook.command}\n${hook.output.trimEnd()}\n---`);
    }
    report.table(
      ['destination', 'result', 'snapshot', 'added'],
      [...run.destinations.map((d) => ({ ...d, what: d.location })), ...(run.dumps ?? []).flatMap((dump) => dump.destinations.map((d) => ({ ...d, what: `${dump.engine} dump → ${d.location}` })))].map((d) => [d.what, d.ok ? ['ok', d.copiedFrom ? 'copied' : '', d.initialized ? 'new repository' : '', d.forgotten?.length ? `forgot ${d.forgotten.length} old` : ''].filter((x) => x !== '').join(', ') : `FAILED: ${d.error ?? ''}`, d.snapshotId?.slice(0, 8) ?? '-', d.bytesAdded === undefined ? '-' : formatBytes(d.bytesAdded)]),
    );
    if (run.heartbeat) report.line(`heartbeat: ${run.heartbeat.ok ? 'sent' : 'FAILED'}`);
    if (run.error) report.warn(`bh: ${run.error}`);
    report.line(`run ${run.state}${this.dryRun ? ' (dry run: nothing stored)' : ''}`);
    return code;
  }
}
