/**
 * Alerting commands and settings through the real CLI, with every channel configured against
 * local receivers (tests/helpers/notify-jobs.ts; Telegram through a stand-in of the Bot API, as
 * Telegram is unreachable from here): `bh notify test`, the old bot_config.ini, a config error
 * that still reaches the channels, the validation of the alerting settings, and stale alerts
 * told once per stale period by `bh run` and `bh status --alert`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECRETS, detail, makeJob, received, settledLocalMails, startNotifyWorld, stopNotifyWorld, telegram, tmp, waitForLocalMails } from './helpers/notify-jobs.js';

beforeAll(() => startNotifyWorld('bh-notify-cli-'));
afterAll(() => stopNotifyWorld());

describe('bh run with a broken config', () => {
  it('a config error elsewhere (exit 1) still reaches the channels as run.failed, naming the problem', async () => {
    const job = makeJob({ schedule: false });
    writeFileSync(job.config, readFileSync(job.config, 'utf8').replace('mode = incremental', 'mode = sideways'));
    const r = await job.run();
    expect(r.code, detail(r)).toBe(1);
    expect(r.stderr).toMatch(/\[DEFAULT\] mode: 'sideways' is not a backup mode/);
    const got = received(job);
    expect(got.webhook).toHaveLength(1);
    expect(got.webhook[0]).toMatchObject({ event: 'run.failed', exit_code: 1 });
    expect((got.webhook[0]!['errors'] as string[]).join('\n')).toMatch(/\[DEFAULT\] mode: 'sideways' is not a backup mode/);
    expect(got.telegram).toHaveLength(1);
    expect(got.smtp).toHaveLength(1);
    expect((await waitForLocalMails(job, 1))[0]!.subject).toMatch(/backup FAILED/);
  });
});

describe('bh notify test', () => {
  it('sends a test message through every channel and exits 0; --channel picks one; a failing channel is named, exit 1', async () => {
    const job = makeJob({ schedule: false });
    const r = await job.bh(['notify', 'test']);
    expect(r.code, detail(r)).toBe(0);
    expect(r.stdout).toMatch(/telegram\s+sent\nsmtp\s+sent\nlocal-mail\s+sent\nwebhook\s+sent/);
    const got = received(job);
    expect([got.telegram.length, got.smtp.length, got.webhook.length, got.pings.length]).toEqual([1, 1, 1, 0]);
    expect(got.webhook[0]!['event']).toBe('notify.test');
    expect((await waitForLocalMails(job, 1))[0]!.subject).toMatch(/test message/);

    const one = await job.bh(['notify', 'test', '--channel', 'webhook']);
    expect(one.code, detail(one)).toBe(0);
    expect(received(job).webhook).toHaveLength(2);
    expect(received(job).telegram).toHaveLength(1);

    const unknown = await job.bh(['notify', 'test', '--channel', 'pager']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('--channel pager: ');
    expect(unknown.stderr).toContain('it has telegram, smtp, local-mail, webhook');

    const failing = makeJob({ webhookPath: '/status/404', telegramToken: '4242:wrong', schedule: false });
    const f = await failing.bh(['notify', 'test']);
    expect(f.code, detail(f)).toBe(1);
    expect(f.stderr).toMatch(/bh: 2 of 4 channel\(s\) failed: telegram \(chat 1001: .*HTTP 401.*\); webhook \(.*HTTP 404; not retried/);
  });
});

describe('old Telegram settings', () => {
  it("bot_config.ini beside the job's config works unchanged; bot = True without a token is a config error", async () => {
    const job = makeJob({ schedule: false, notifications: 'notify_on = success' });
    // The job's own [TELEGRAM] keeps only api_base (the stand-in); token and users come from the old file.
    writeFileSync(job.config, readFileSync(job.config, 'utf8').replace(/api_token = .*\n/, '').replace('[USERS]\ninteracted_users = 1001\n', ''));
    writeFileSync(join(job.dir, 'bot_config.ini'), `[TELEGRAM]\napi_token = ${SECRETS.TG_TOKEN}\n\n[USERS]\ninteracted_users = 1001, 1002\n`);
    const r = await job.run();
    expect(r.code, detail(r)).toBe(0);
    const sent = telegram.requests.filter((x) => (x.json as { text: string }).text.includes(job.config));
    expect(sent.map((x) => [x.url, (x.json as { chat_id: string }).chat_id])).toEqual([
      [`/bot${SECRETS.TG_TOKEN}/sendMessage`, '1001'],
      [`/bot${SECRETS.TG_TOKEN}/sendMessage`, '1002'],
    ]);
    const check = await job.bh(['config', 'check']);
    expect(check.stdout + check.stderr).not.toContain(SECRETS.TG_TOKEN);

    writeFileSync(join(job.dir, 'bot_config.ini'), '[USERS]\ninteracted_users = 1001\n');
    const broken = await job.bh(['config', 'check']);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/\[TELEGRAM\] api_token: is not set/);
  });
});

describe('alerting settings', () => {
  it('lists every wrong alerting setting at once; [LOGGING] file is relative to the config, at its level and size', async () => {
    const job = makeJob({ schedule: false, destinations: [join(tmp, 'settings-repo'), join(tmp, 'no-such-disk/repo')] });
    const good = readFileSync(job.config, 'utf8');
    writeFileSync(
      job.config,
      good.replace('local_mail_to = root', 'local_mail_to = root, not a user!\nnotify_on = failure, sometimes').replace('format = json', 'format = fax').replace(/textfile = .*/, `textfile = ${join(job.dir, 'bh.txt')}`) +
        '[LOGGING]\nmax_size = five\nlevel = loud\n',
    );
    const bad = await job.bh(['config', 'check']);
    expect(bad.code, detail(bad)).toBe(1);
    for (const problem of [
      "[NOTIFICATIONS] local_mail_to: 'not a user!' is neither a local user nor an e-mail address",
      "[NOTIFICATIONS] notify_on: 'sometimes' is not success, failure or stale",
      "[WEBHOOK] format: 'fax' is not slack, discord, teams or json",
      'does not end in .prom',
      "[LOGGING] max_size: 'five' is not a size",
      "[LOGGING] level: 'loud' is not a log level",
    ]) expect(bad.stderr).toContain(problem);

    writeFileSync(job.config, good + '[LOGGING]\nfile = Logs/application.log\nmax_size = 2K\nkeep = 2\nlevel = warn\n');
    const check = await job.bh(['config', 'check']);
    expect(check.stdout).toContain(`log:          ${join(job.dir, 'Logs/application.log')} (warn, rotated at 2048 bytes, 2 kept)`);
    const r = await job.run();
    expect(r.code, detail(r)).toBe(3);
    const lines = readFileSync(join(job.dir, 'Logs/application.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { level: string; msg: string });
    expect(lines.map((l) => l.msg)).toContain(`${join(tmp, 'no-such-disk/repo')}: FAILED: ${join(tmp, 'no-such-disk')} does not exist (is the disk mounted?); bh creates only the repository folder itself`);
    expect(lines.every((l) => l.level === 'warn' || l.level === 'error')).toBe(true);
  });
});

describe('stale alerts', () => {
  it('stale detection with notify_on = stale sends once per stale period, from bh run and from bh status --alert', async () => {
    const missing = join(tmp, 'gone-disk/repo');
    const job = makeJob({ destinations: [join(tmp, 'stale-ok-repo'), missing], notifications: 'notify_on = stale' });
    const alertFirst = await job.bh(['status', '--alert']);
    expect(alertFirst.code, detail(alertFirst)).toBe(3); // never backed up: stale; told now
    expect(received(job).webhook.map((w) => w['event'])).toEqual(['job.stale']);
    expect((await job.run()).code).toBe(3);
    expect((await job.run()).code).toBe(3);
    expect((await job.bh(['status', '--alert'])).code).toBe(3);
    const got = received(job);
    expect(got.webhook.map((w) => w['event'])).toEqual(['job.stale']);
    expect(got.telegram).toHaveLength(1);
    expect(got.smtp).toHaveLength(1);
    expect(await settledLocalMails(job)).toBe(1);
  });
});
