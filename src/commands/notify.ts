import { Command, Option } from 'clipanion';
import { JobAlerts } from '../jobs/alerting.js';
import { ExitCode, UserError } from './base.js';
import { StatefulJobCommand } from './job-options.js';

export class NotifyTestCommand extends StatefulJobCommand {
  static override paths = [['notify', 'test']];
  static override usage = Command.Usage({
    description: 'send a test message through every notification channel of a job',
    details: `
      Sends one test message through each channel the job's config sets up (telegram, smtp,
      local-mail, webhook), whatever [NOTIFICATIONS] notify_on says, and reports each one.
      Exit 0 when every channel delivered; 1 naming each channel that failed and why. The
      [HEARTBEAT] monitor is not pinged (a test ping would tell it a backup succeeded).
      --channel NAME tests one channel. The attempt is logged like a run's notifications.
    `,
    examples: [
      ['Test every channel of /etc/bh/config.ini', 'bh notify test --config /etc/bh/config.ini'],
      ['Test the e-mail channel only', 'bh notify test --channel smtp'],
    ],
  });

  channel = Option.String('--channel', { description: 'Test only this channel: telegram, smtp, local-mail or webhook' });

  async run(): Promise<number> {
    const job = this.loadJob();
    const report = this.report;
    const alerts = JobAlerts.open(job, { stateDir: this.resolvedStateDir(), warn: (message) => report.warn(`warning: ${message}`) });
    try {
      const names = alerts.channels.map((c) => c.name);
      if (names.length === 0) throw new UserError(`${job.file} sets up no notification channel: configure [NOTIFICATIONS] bot (Telegram), [SMTP], local_mail_to or [WEBHOOK]`);
      if (this.channel !== undefined && !names.includes(this.channel)) throw new UserError(`--channel ${this.channel}: ${job.file} has no such channel; it has ${names.join(', ')}`);
      const deliveries = await alerts.test(this.channel);
      report.jsonLine({ message_type: 'notify_test', deliveries });
      report.table(['channel', 'result'], deliveries.map((d) => [d.channel, d.ok ? 'sent' : `FAILED: ${d.error ?? ''}`]));
      const failed = deliveries.filter((d) => !d.ok);
      if (failed.length === 0) return ExitCode.ok;
      report.warn(`bh: ${failed.length} of ${deliveries.length} channel(s) failed: ${failed.map((d) => `${d.channel} (${d.error ?? ''})`).join('; ')}`);
      return ExitCode.fatal;
    } finally {
      await alerts.close();
    }
  }
}
