import { Command } from 'clipanion';
import { type Job, formatTimeOfDay } from '../jobs/config.js';
import { JobAlerts } from '../jobs/alerting.js';
import { type RunEvents, runJob } from '../jobs/runner.js';
import { exitCodeOfRun } from '../jobs/state.js';
import { runSchedule, systemClock } from '../jobs/scheduler.js';
import { ExitCode, UserError } from './base.js';
import { StatefulJobCommand } from './job-options.js';

export class ScheduleCommand extends StatefulJobCommand {
  static override paths = [['schedule']];
  static override usage = Command.Usage({
    description: 'run the job at its [SCHEDULE] times, in the foreground',
    details: `
      Stays in the foreground and runs the job (as \`bh run\` does) at each of the [SCHEDULE]
      times, daily, in local time. Each time is served once: never twice, and a time that
      passes while a long run is still going starts one run right after it (several such times
      make one run). Times before \`bh schedule\` started are not made up. A failed run is
      recorded and the schedule goes on.

      SIGTERM or Ctrl-C stops it: while waiting it exits 0 at once; during a run the backup is
      stopped cleanly (what was stored stays usable), the run is recorded as interrupted, and
      it exits 130. The config file is read once, at start: restart after editing it.

      For systemd, launchd or the Windows task scheduler, prefer their timers with \`bh run\`
      (contrib/): they survive reboots and catch up missed runs.
    `,
    examples: [['Run the job of /etc/bh/config.ini on its schedule', 'bh schedule --config /etc/bh/config.ini']],
  });

  async run(): Promise<number> {
    const job = this.loadJob();
    if (job.schedule.length === 0) throw new UserError(`${job.file}: [SCHEDULE] times is not set; add e.g. 'times = 03:00' or run the job from a timer with 'bh run'`);
    const report = this.report;
    const stateDir = this.resolvedStateDir();
    let interrupted = false;
    report.line(`bh schedule: ${job.file} at ${job.schedule.map(formatTimeOfDay).join(', ')} (local time)`);
    const console = { step: (message: string) => report.line(message), warn: (message: string) => report.warn(`warning: ${message}`) };
    const alerts = JobAlerts.open(job, { stateDir, warn: console.warn });
    alerts.log.info(`bh schedule started: ${job.schedule.map(formatTimeOfDay).join(', ')}`);
    try {
      await this.serve(job, stateDir, alerts, console, () => (interrupted = true));
    } finally {
      alerts.log.info('bh schedule stopped');
      await alerts.close();
    }
    report.line('bh schedule: stopped');
    return interrupted ? ExitCode.interrupted : ExitCode.ok;
  }

  private async serve(job: Job, stateDir: string, alerts: JobAlerts, console: RunEvents, onInterrupted: () => void): Promise<void> {
    const signal = this.interruptSignal();
    const report = this.report;
    await runSchedule({
      slots: job.schedule,
      clock: systemClock,
      signal,
      onWaiting: (next) => report.line(`next run at ${next.toString()}`),
      onError: (error, slot) => {
        const message = `the run for ${slot.toString()} failed: ${error instanceof Error ? error.message : String(error)}`;
        alerts.log.error(message);
        report.warn(`bh: ${message}`);
      },
      run: async (slot) => {
        report.line(`run for ${slot.toString()} starting`);
        const run = await runJob({
          job,
          stateDir,
          dryRun: false,
          env: this.context.env,
          signal,
          observer: alerts,
          events: alerts.events(console),
        });
        if (run.state === 'interrupted') onInterrupted();
        report.jsonLine({ message_type: 'run', slot: slot.toISOString(), exit_code: exitCodeOfRun(run), ...run });
        report.line(`run for ${slot.toString()}: ${run.state}${run.error ? ` (${run.error})` : ''}`);
      },
    });
  }
}
