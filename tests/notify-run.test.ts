/**
 * Alerting end to end through the real CLI: `bh run` with every channel configured (Telegram
 * through a local stand-in of the Bot API — Telegram itself is unreachable from here —, a real
 * SMTP server with STARTTLS and AUTH, Debian's postfix for local mail, a local webhook receiver,
 * the heartbeat monitor; tests/helpers/notify-jobs.ts), `bh status --alert`, the metrics file
 * (checked by promtool) and the log file. Every message is counted per channel, and every log,
 * status file, message and output of a full run is searched for each configured secret.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOOK_PATH_SECRET, PING_SECRET, SECRETS, detail, hooks, localMails, makeJob, received, settledLocalMails, smtp, startNotifyWorld, stopNotifyWorld, telegram, tmp, waitForLocalMails } from './helpers/notify-jobs.js';

type Json = Record<string, unknown>;

beforeAll(() => startNotifyWorld('bh-notify-run-'));
afterAll(() => stopNotifyWorld());

describe('bh run with every channel', () => {
  it('one failing destination: exactly one message per channel naming the failure, exit 3 unchanged; staleness told once', async () => {
    const missing = join(tmp, 'unmounted-disk/repo');
    const job = makeJob({ destinations: [join(tmp, 'all-channels-repo'), missing] });
    const r = await job.run();
    expect(r.code, detail(r)).toBe(3);

    const got = received(job);
    expect(got.telegram).toHaveLength(1);
    expect(got.smtp).toHaveLength(1);
    expect(got.webhook).toHaveLength(1);
    for (const text of [got.telegram[0]!, got.smtp[0]!, got.webhook[0]!['text'] as string]) {
      expect(text).toContain(`${missing}: FAILED: ${join(tmp, 'unmounted-disk')} does not exist (is the disk mounted?)`);
      expect(text).toMatch(/all-channels-repo: ok, new repository, snapshot [0-9a-f]{8}, \+/);
      expect(text).toContain(`stale: ${missing}, last success never`);
    }
    expect(got.webhook[0]).toMatchObject({ event: 'run.partial', exit_code: 3, severity: 'warning' });
    expect(hooks.requests.find((x) => x.url === job.hookPath)!.headers['authorization']).toBe(SECRETS.HOOK_AUTH);
    // Local mail takes failures and staleness only: the partial run reaches it as one job.stale message.
    const local = await waitForLocalMails(job, 1);
    expect(local[0]!.subject).toMatch(/backups are STALE \(config\.ini\)$/);
    expect(local[0]!.text).toContain(`${missing}: STALE: last success never`);
    // Heartbeat: /start when the run began, /fail at its end; never the plain success ping.
    expect(got.pings).toEqual(['/start', '/fail']);
    const run = job.status().runs.at(-1)!;
    expect(run['notifications']).toEqual([
      { channel: 'telegram', event: 'run.partial', ok: true },
      { channel: 'smtp', event: 'run.partial', ok: true },
      { channel: 'local-mail', event: 'job.stale', ok: true },
      { channel: 'webhook', event: 'run.partial', ok: true },
    ]);

    // The same failure again: failure messages again, but the stale period was told already.
    const again = await job.run();
    expect(again.code, detail(again)).toBe(3);
    const got2 = received(job);
    expect([got2.telegram.length, got2.smtp.length, got2.webhook.length]).toEqual([2, 2, 2]);
    expect(got2.webhook[1]!['facts']).toEqual([]);
    expect(await settledLocalMails(job)).toBe(1);

    // bh status --alert: exit 3 (stale, last run partial), and no new message for the same period.
    const alert = await job.bh(['status', '--alert']);
    expect(alert.code, detail(alert)).toBe(3);
    expect(alert.stderr).toContain(`ALERT: ${missing} is stale`);
    expect(alert.stderr).toContain('ALERT: the last run ended partial');
    const got3 = received(job);
    expect([got3.telegram.length, got3.smtp.length, got3.webhook.length]).toEqual([2, 2, 2]);
    expect(await settledLocalMails(job)).toBe(1);

    // Metrics, as node_exporter would read them.
    const prom = readFileSync(job.metrics, 'utf8');
    execFileSync('promtool', ['check', 'metrics'], { input: prom });
    expect(prom).toContain(`bh_last_run_exit_code{job="${job.config}"} 3`);
    expect(prom).toContain(`bh_destination_stale{job="${job.config}",destination="${missing}"} 1`);
    expect(prom).toContain(`bh_destination_stale{job="${job.config}",destination="${join(tmp, 'all-channels-repo')}"} 0`);
    expect(prom).toContain(`bh_destination_snapshots{job="${job.config}",destination="${join(tmp, 'all-channels-repo')}"} 2`);
    expect(prom).toMatch(/bh_last_run_files_new\{[^}]*\} 0/); // second run: nothing new
    expect(readdirSync(join(job.dir, 'textfile'))).toEqual(['bh.prom']); // no temporaries left

    // Every log line, status file, message and output of these runs: no secret anywhere.
    const config = await job.bh(['config', 'check']);
    const configJson = await job.bh(['config', 'check', '--json']);
    const status = await job.bh(['status']);
    expect(config.code, detail(config)).toBe(0);
    const stateFiles = readdirSync(job.stateDir).map((f) => readFileSync(join(job.stateDir, f), 'utf8'));
    expect(readdirSync(job.stateDir).some((f) => f.endsWith('.log'))).toBe(true);
    const everything = [
      ...[r, again, alert, config, configJson, status].flatMap((x) => [x.stdout, x.stderr]),
      ...stateFiles,
      prom,
      ...telegram.requests.map((x) => x.body),
      ...smtp.mails.map((m) => m.raw),
      ...hooks.requests.map((x) => x.body),
      ...(await localMails(job)).map((m) => m.raw),
    ].join('\n');
    for (const secret of [...Object.values(SECRETS), HOOK_PATH_SECRET, PING_SECRET]) expect(everything, secret).not.toContain(secret);
    expect(config.stdout).toMatch(/\[WEBHOOK\]\s+url\s+http:\/\/127\.0\.0\.1:\d+\/\*{8} \(masked\)/);
    expect(config.stdout).toMatch(/\[TELEGRAM\]\s+api_token\s+\$\{TG_TOKEN\} \(from the environment, masked\)/);
    expect(config.stdout).toMatch(/notify:\s+telegram: 1 chat\(s\) via 127\.0\.0\.1:\d+; smtp: 127\.0\.0\.1:\d+ \(STARTTLS\) to ops@example\.com; local-mail: root; webhook: json at 127\.0\.0\.1:\d+; heartbeat: 127\.0\.0\.1:\d+ \+start \+fail \(on failure, stale\)/);
  });

  it('a fully successful run: one message per channel with notify_on = success, none by default; the plain ping', async () => {
    const quiet = makeJob({ schedule: false });
    expect((await quiet.run()).code).toBe(0);
    expect(received(quiet)).toEqual({ telegram: [], smtp: [], webhook: [], pings: ['/start', '/'] });

    const loud = makeJob({ notifications: 'notify_on = success, failure', schedule: false });
    const r = await loud.run(['--receiver', 'boss@example.org,audit@example.net', '--receiver', 'cto@example.com']);
    expect(r.code, detail(r)).toBe(0);
    const got = received(loud);
    expect([got.telegram.length, got.smtp.length, got.webhook.length]).toEqual([1, 1, 1]);
    expect(got.telegram[0]).toMatch(/^<b>✅ bh on .*: backup succeeded<\/b>/);
    expect(got.webhook[0]).toMatchObject({ event: 'run.succeeded', exit_code: 0 });
    expect(smtp.mails.find((m) => m.parsed.text?.includes(loud.config))!.to).toEqual(['ops@example.com', 'boss@example.org', 'audit@example.net', 'cto@example.com']);
    expect(await settledLocalMails(loud)).toBe(0); // local mail is for failures
    expect(r.stdout).toMatch(/notification run\.succeeded through webhook: sent/);

    const bad = await loud.run(['--receiver', 'not an address']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--receiver 'not an address' is not an e-mail address");
  });

  it('channels that fail (wrong token, refused login, HTTP 500) leave the exit code alone and are counted by bh status', async () => {
    const job = makeJob({ notifications: 'notify_on = success', telegramToken: '4242:wrong', smtpPassword: 'wrong-password', webhookPath: '/status/500', schedule: false });
    const r = await job.run();
    expect(r.code, detail(r)).toBe(0);
    expect(r.stderr).toMatch(/warning: notification through telegram failed: chat 1001: the Bot API answered HTTP 401/);
    expect(r.stderr).toMatch(/warning: notification through smtp failed: the mail server 127\.0\.0\.1:\d+ refused the login as bh-mailer/);
    expect(r.stderr).toMatch(/warning: notification through webhook failed: the webhook at 127\.0\.0\.1:\d+ answered HTTP 500 \(after 3 tries\)/);
    expect(hooks.requests.filter((x) => x.url === '/status/500').length).toBeGreaterThanOrEqual(3);
    const run = job.status().runs.at(-1)!;
    expect((run['notifications'] as Json[]).map((n) => [n['channel'], n['ok']])).toEqual([
      ['telegram', false],
      ['smtp', false],
      ['webhook', false],
    ]);
    const status = await job.bh(['status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('notifications that FAILED in these runs: 3');
    expect(status.stdout).toMatch(/run\.succeeded through smtp: the mail server .* refused the login/);
    const alert = await job.bh(['status', '--alert']);
    expect(alert.code, detail(alert)).toBe(0);

    // The run's log tells the whole story: the run, the destination, each retry and notification.
    const log = readFileSync(join(job.stateDir, readdirSync(job.stateDir).find((f) => f.endsWith('.log'))!), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Json);
    const messages = log.map((l) => l['msg'] as string);
    expect(messages.some((m) => /^run [0-9a-f]+ started$/.test(m))).toBe(true);
    expect(messages).toContain(`${join(job.dir, 'repo')}: ok`);
    expect(messages.filter((m) => /webhook \(json\) to .*: try \d of 3 failed/.test(m))).toHaveLength(2);
    expect(messages).toContain('notification through smtp failed');
    expect(messages).toContain('heartbeat start ping sent');
    expect(log.every((l) => l['job'] === job.config && typeof l['time'] === 'string')).toBe(true);
  });

  it('a run stopped by a failing pre-backup hook is run.failed: local mail gets it too', async () => {
    const job = makeJob({ extra: '[HOOKS]\npre_backup = exit 7', schedule: false });
    const r = await job.run();
    expect(r.code, detail(r)).toBe(2);
    const [mail] = await waitForLocalMails(job, 1);
    expect(mail!.subject).toMatch(/backup FAILED \(config\.ini\)$/);
    expect(mail!.text).toMatch(/the pre-backup hook .*exit.* 7/);
    expect(received(job).webhook[0]).toMatchObject({ event: 'run.failed', exit_code: 2 });
  });

});
