/**
 * The channels of src/notify/ against real receivers on 127.0.0.1 (tests/helpers/notify-peers.ts):
 * a real SMTP server with STARTTLS and AUTH, Debian's postfix for local mail, a local HTTP server
 * as the webhook receiver, and a stand-in for Telegram's Bot API (Telegram's servers are
 * unreachable here). Each channel's
 * failure modes: peer down, refused login, 4xx, 5xx, timeout, rate limits. Then the message
 * forms, the metrics file (checked by Prometheus' own promtool) and the rotating JSON log.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliver } from '../src/notify/channel.js';
import type { NotifyEvent } from '../src/notify/event.js';
import { fullHtml, fullText, shortText } from '../src/notify/format.js';
import { heartbeatUrl } from '../src/notify/heartbeat.js';
import { LocalMailNotifier } from '../src/notify/local-mail.js';
import { openJobLog, parseSize } from '../src/notify/log.js';
import { renderMetrics } from '../src/notify/metrics.js';
import { Redactor } from '../src/notify/redact.js';
import type { RetryPolicy } from '../src/notify/retry.js';
import { SmtpNotifier, isEmailAddress } from '../src/notify/smtp.js';
import { TelegramNotifier, telegramTexts } from '../src/notify/telegram.js';
import { WebhookNotifier, guessWebhookFormat } from '../src/notify/webhook.js';
import { makeTempDir, removeDir } from './helpers/cli.js';
import { type HttpPeer, type SmtpPeer, ensurePostfix, startSilentServer, startSmtp, startTelegramStandIn, startWebhookReceiver, waitForRootMails } from './helpers/notify-peers.js';
import { unusedPort } from './helpers/ports.js';

const FAST: RetryPolicy = { tries: 3, backoffMs: 10, maxWaitMs: 5000 };
const TOKEN = '123456:AAbbCC_dd-ee';
const SMTP_USER = 'bh-sender';
const SMTP_PASSWORD = 'smtp pass: ünïcode & <stuff>';

let tmp: string;
let smtp: SmtpPeer;
let hooks: HttpPeer;
let telegram: HttpPeer;

beforeAll(async () => {
  tmp = await makeTempDir('bh-notify-channels-');
  [smtp, hooks, telegram] = await Promise.all([startSmtp(tmp, { user: SMTP_USER, password: SMTP_PASSWORD }), startWebhookReceiver(), startTelegramStandIn(TOKEN)]);
});

afterAll(async () => {
  await Promise.all([smtp?.close(), hooks?.close(), telegram?.close()]);
  await removeDir(tmp);
});

function event(overrides: Partial<NotifyEvent> = {}): NotifyEvent {
  return {
    kind: 'run.partial',
    host: 'backup-host',
    job: '/etc/bh/nightly.ini',
    time: '2026-12-06T03:00:42.000Z',
    runId: 'a1b2c3d4e5f60718',
    exitCode: 3,
    durationMs: 42_000,
    targets: [
      { name: '/mnt/usb/repo', ok: true, result: 'ok', snapshotId: '0123456789abcdef0123', bytesAdded: 3 * 1024 * 1024 },
      { name: 'sftp:bh@nas:/backups', ok: false, result: 'FAILED: connection refused <script>&' },
    ],
    errors: ['sftp:bh@nas:/backups: connection refused <script>&'],
    facts: [],
    ...overrides,
  };
}

describe('message forms', () => {
  it('name the host, the job, every destination with its result, snapshot ids, bytes added, duration and the first errors', () => {
    const e = event({ errors: Array.from({ length: 8 }, (_, i) => `error number ${i}`) });
    for (const text of [shortText(e), fullText(e)]) {
      expect(text).toContain('backup-host');
      expect(text).toContain('/etc/bh/nightly.ini');
      expect(text).toContain('/mnt/usb/repo: ok, snapshot 01234567, +3.00 MiB');
      expect(text).toContain('sftp:bh@nas:/backups: FAILED: connection refused <script>&');
      expect(text).toMatch(/42 s/);
      expect(text).toContain('error number 4');
      expect(text).not.toContain('error number 5');
      expect(text).toContain('and 3 more');
    }
    expect(fullText(e)).toContain('exit code:   3');
    const html = fullHtml(e);
    expect(html).toContain('connection refused &lt;script&gt;&amp;');
    expect(html).not.toContain('<script>');
  });

  it('heartbeat signals append /start and /fail to the ping path, query kept', () => {
    expect(heartbeatUrl('https://hc-ping.com/abc-uuid', 'start')).toBe('https://hc-ping.com/abc-uuid/start');
    expect(heartbeatUrl('https://hc-ping.com/abc-uuid/', 'fail')).toBe('https://hc-ping.com/abc-uuid/fail');
    expect(heartbeatUrl('https://mon.example/ping/x?rid=1', 'fail')).toBe('https://mon.example/ping/x/fail?rid=1');
    expect(heartbeatUrl('https://hc-ping.com/abc-uuid', 'success')).toBe('https://hc-ping.com/abc-uuid');
  });
});

describe('Telegram (Bot API stand-in: Telegram is unreachable from here)', () => {
  const apiBase = (): string => telegram.base;
  const requestsFrom = (start: number): { url: string; body: Record<string, unknown>; contentType: string | undefined }[] =>
    telegram.requests.slice(start).map((r) => ({ url: r.url, body: r.json as Record<string, unknown>, contentType: r.headers['content-type'] }));

  it('sends exactly one sendMessage per chat id, HTML-escaped, with parse_mode HTML', async () => {
    const start = telegram.requests.length;
    await new TelegramNotifier({ apiBase: apiBase(), token: TOKEN, chatIds: ['1001', '-2002'] }, undefined, FAST).send(event());
    const sent = requestsFrom(start);
    expect(sent.map((r) => [r.url, r.body['chat_id']])).toEqual([
      [`/bot${TOKEN}/sendMessage`, '1001'],
      [`/bot${TOKEN}/sendMessage`, '-2002'],
    ]);
    for (const r of sent) {
      expect(r.contentType).toBe('application/json');
      expect(r.body['parse_mode']).toBe('HTML');
      expect(r.body['text']).toBe(telegramTexts(event())[0]);
      expect(r.body['text']).toMatch(/^<b>⚠️ bh on backup-host: backup INCOMPLETE<\/b>\n/);
      expect(r.body['text']).toContain('connection refused &lt;script&gt;&amp;');
      expect(r.body['text']).not.toContain('<script>');
    }
  });

  it('splits a message longer than 4096 characters between lines, none longer, nothing lost', async () => {
    const targets = Array.from({ length: 150 }, (_, i) => ({ name: `/srv/backup/destination-number-${i}-&-more`, ok: true, result: 'ok' }));
    const e = event({ targets });
    const texts = telegramTexts(e);
    expect(texts.length).toBeGreaterThan(1);
    for (const t of texts) expect(t.length).toBeLessThanOrEqual(4096);
    const joined = texts.join('\n');
    for (let i = 0; i < 150; i++) expect(joined).toContain(`/srv/backup/destination-number-${i}-&amp;-more: ok`);
    // A single line longer than the limit is cut, never inside an entity.
    const long = telegramTexts(event({ targets: [], errors: [], facts: ['&'.repeat(3000)] }));
    expect(long.length).toBeGreaterThan(4); // title and job line, then 15000 characters of &amp; in 4 pieces
    for (const t of long) {
      expect(t.length).toBeLessThanOrEqual(4096);
      expect(t.replace(/&(amp|lt|gt|quot|#39);/g, '')).not.toContain('&');
    }
    expect(long.join('').split('&amp;').length - 1).toBe(3000);

    const start = telegram.requests.length;
    await new TelegramNotifier({ apiBase: apiBase(), token: TOKEN, chatIds: ['1001'] }, undefined, FAST).send(e);
    expect(requestsFrom(start).map((r) => r.body['text'])).toEqual(texts);
  });

  it("honours a 429's retry_after, and a chat that refuses does not keep the others from hearing", async () => {
    const start = telegram.requests.length;
    const channel = new TelegramNotifier({ apiBase: apiBase(), token: TOKEN, chatIds: ['-429', '403', '1001'] }, undefined, { ...FAST, backoffMs: 60_000 });
    await expect(channel.send(event())).rejects.toThrow(/chat 403: the Bot API answered HTTP 403: Forbidden: bot was blocked by the user$/);
    // -429: refused once with retry_after 1, then sent (the 60 s backoff was not used: retry_after was); 403: one try only.
    expect(requestsFrom(start).map((r) => r.body['chat_id'])).toEqual(['-429', '-429', '403', '1001']);
  });

  it('retries a 5xx and a timeout 3 times, then fails that chat only', async () => {
    const start = telegram.requests.length;
    const channel = new TelegramNotifier({ apiBase: apiBase(), token: TOKEN, chatIds: ['500', '-1', '1001'], timeoutSeconds: 1 }, undefined, FAST);
    await expect(channel.send(event())).rejects.toThrow(/^chat 500: the Bot API answered HTTP 500: Internal Server Error \(after 3 tries\); chat -1: the Bot API at 127\.0\.0\.1:\d+ did not answer \(no answer within 1 s\) \(after 3 tries\)$/);
    expect(requestsFrom(start).map((r) => r.body['chat_id'])).toEqual(['500', '500', '500', '-1', '-1', '-1', '1001']);
  });

  it('a wrong token fails at once, naming the setting and not the token; an unreachable API after 3 tries', async () => {
    const start = telegram.requests.length;
    const wrong = new TelegramNotifier({ apiBase: apiBase(), token: '999:wrong', chatIds: ['1001'] }, undefined, FAST);
    const error = await wrong.send(event()).then(() => undefined, (e: Error) => e);
    expect(error?.message).toMatch(/HTTP 401: Unauthorized \(is \[TELEGRAM\] api_token right\?\)/);
    expect(error?.message).not.toContain('999:wrong');
    expect(telegram.requests.length - start).toBe(1);

    const down = new TelegramNotifier({ apiBase: `http://127.0.0.1:${await unusedPort()}`, token: TOKEN, chatIds: ['1001'] }, undefined, FAST);
    const downError = await down.send(event()).then(() => undefined, (e: Error) => e);
    expect(downError?.message).toMatch(/did not answer \(ECONNREFUSED\) \(after 3 tries\)/);
    expect(downError?.message).not.toContain(TOKEN);
  });
});

describe('webhooks (local HTTP receiver)', () => {
  const send = (path: string, format: 'slack' | 'discord' | 'teams' | 'json', timeoutSeconds = 10): Promise<void> =>
    new WebhookNotifier({ url: `${hooks.base}${path}`, format, authHeader: 'Bearer hook-secret', timeoutSeconds }, undefined, FAST).send(event());
  const seen = (path: string): typeof hooks.requests => hooks.requests.filter((r) => r.url === path);

  it('posts each format in the shape its service takes, with the Authorization header', async () => {
    for (const format of ['slack', 'discord', 'teams', 'json'] as const) await send(`/ok/${format}`, format);
    for (const format of ['slack', 'discord', 'teams', 'json'] as const) {
      const [r] = seen(`/ok/${format}`);
      expect(r!.method).toBe('POST');
      expect(r!.headers['authorization']).toBe('Bearer hook-secret');
      expect(r!.headers['content-type']).toBe('application/json');
    }
    const slack = seen('/ok/slack')[0]!.json as { text: string };
    expect(Object.keys(slack)).toEqual(['text']);
    expect(slack.text).toMatch(/^\*⚠️ bh on backup-host: backup INCOMPLETE\*\n/);
    expect(slack.text).toContain('connection refused &lt;script&gt;&amp;');
    const discord = seen('/ok/discord')[0]!.json as { content: string; allowed_mentions: unknown };
    expect(discord.content).toMatch(/^\*\*⚠️ bh on backup-host: backup INCOMPLETE\*\*\n/);
    expect(discord.allowed_mentions).toEqual({ parse: [] });
    const teams = seen('/ok/teams')[0]!.json as { type: string; attachments: { contentType: string; content: { type: string; body: { text: string }[] } }[] };
    expect(teams.type).toBe('message');
    expect(teams.attachments[0]!.contentType).toBe('application/vnd.microsoft.card.adaptive');
    expect(teams.attachments[0]!.content.type).toBe('AdaptiveCard');
    expect(teams.attachments[0]!.content.body.map((b) => b.text)).toContain('✗ sftp:bh@nas:/backups: FAILED: connection refused <script>&');
    const json = seen('/ok/json')[0]!.json as Record<string, unknown>;
    expect(json).toMatchObject({ event: 'run.partial', severity: 'warning', host: 'backup-host', job: '/etc/bh/nightly.ini', run_id: 'a1b2c3d4e5f60718', exit_code: 3, duration_ms: 42_000 });
    expect(json['destinations']).toEqual([
      { name: '/mnt/usb/repo', ok: true, result: 'ok', snapshot_id: '0123456789abcdef0123', bytes_added: 3 * 1024 * 1024 },
      { name: 'sftp:bh@nas:/backups', ok: false, result: 'FAILED: connection refused <script>&', snapshot_id: null, bytes_added: null },
    ]);
  });

  it('guesses the format from the host', () => {
    expect(guessWebhookFormat('https://hooks.slack.com/services/T0/B0/XXX')).toBe('slack');
    expect(guessWebhookFormat('https://discord.com/api/webhooks/1/abc')).toBe('discord');
    expect(guessWebhookFormat('https://contoso.webhook.office.com/webhookb2/x')).toBe('teams');
    expect(guessWebhookFormat('https://prod-01.westus.logic.azure.com:443/workflows/x')).toBe('teams');
    expect(guessWebhookFormat('https://alerts.example.com/bh')).toBe('json');
  });

  it('retries 5xx and timeouts 3 times, a 4xx never; a flaky 500 and a 429 are cured by the retry', async () => {
    await expect(send('/status/500', 'json')).rejects.toThrow(/answered HTTP 500 \(after 3 tries\)/);
    expect(seen('/status/500')).toHaveLength(3);
    await expect(send('/status/404', 'json')).rejects.toThrow(/answered HTTP 404; not retried/);
    expect(seen('/status/404')).toHaveLength(1);
    await expect(send('/hang', 'json', 1)).rejects.toThrow(/did not answer \(no answer within 1 s\) \(after 3 tries\)/);
    expect(seen('/hang')).toHaveLength(3);
    await send('/flaky', 'json');
    expect(seen('/flaky')).toHaveLength(2);
    await send('/rate-limited', 'slack');
    expect(seen('/rate-limited')).toHaveLength(2);
  });

  it('a receiver that is down fails after 3 tries, naming the host only', async () => {
    const port = await unusedPort();
    const channel = new WebhookNotifier({ url: `http://127.0.0.1:${port}/services/T0/B0/very-secret-path`, format: 'slack', timeoutSeconds: 5 }, undefined, FAST);
    const [outcome] = await deliver([channel], event());
    expect(outcome).toEqual({ channel: 'webhook', ok: false, error: `the webhook at 127.0.0.1:${port} did not answer (ECONNREFUSED) (after 3 tries)` });
  });
});

describe('SMTP (real server: STARTTLS, AUTH)', () => {
  const settings = (overrides: Partial<ConstructorParameters<typeof SmtpNotifier>[0]> = {}): ConstructorParameters<typeof SmtpNotifier>[0] => ({
    host: '127.0.0.1',
    port: smtp.port,
    user: SMTP_USER,
    password: SMTP_PASSWORD,
    from: 'bh@backup-host.example',
    to: ['ops@example.com', 'boss@example.org'],
    tls: 'starttls',
    caFile: smtp.caFile,
    ...overrides,
  });

  it('delivers multipart/alternative text + escaped HTML over STARTTLS after AUTH', async () => {
    const before = smtp.mails.length;
    await new SmtpNotifier(settings(), undefined, FAST).send(event());
    expect(smtp.mails.length).toBe(before + 1);
    const mail = smtp.mails.at(-1)!;
    expect(mail.secure).toBe(true);
    expect(mail.user).toBe(SMTP_USER);
    expect(mail.from).toBe('bh@backup-host.example');
    expect(mail.to).toEqual(['ops@example.com', 'boss@example.org']);
    expect(mail.parsed.subject).toBe('[bh] backup-host: backup INCOMPLETE (nightly.ini)');
    expect(mail.raw).toMatch(/Content-Type: multipart\/alternative/i);
    expect(mail.parsed.text).toBe(fullText(event()));
    expect(mail.parsed.html).toContain('connection refused &lt;script&gt;&amp;');
    expect(mail.parsed.html).not.toContain('<script>');
  });

  it('a refused login fails after one try; a server that is down after 3; an untrusted certificate says what to set', async () => {
    const connections = smtp.connections;
    await expect(new SmtpNotifier(settings({ password: 'wrong' }), undefined, FAST).send(event())).rejects.toThrow(/refused the login as bh-sender \(535\): check \[SMTP\] user and password; not retried$/);
    expect(smtp.connections - connections).toBe(1);

    const port = await unusedPort();
    await expect(new SmtpNotifier(settings({ port }), undefined, FAST).send(event())).rejects.toThrow(new RegExp(`127.0.0.1:${port} could not be used: .*ECONNREFUSED.*\\(after 3 tries\\)`));

    await expect(new SmtpNotifier(settings({ caFile: undefined }), undefined, FAST).send(event())).rejects.toThrow(/TLS with 127.0.0.1:\d+ failed: .*set \[SMTP\] ca_file/);
  });

  it('speaks implicit TLS (SMTPS) to a server that wants it, and never upgrades with tls none', async () => {
    const smtps = await startSmtp(tmp, { user: SMTP_USER, password: SMTP_PASSWORD }, true);
    try {
      await new SmtpNotifier(settings({ port: smtps.port, tls: 'implicit', caFile: smtps.caFile }), undefined, FAST).send(event());
      expect(smtps.mails.map((m) => [m.secure, m.user])).toEqual([[true, SMTP_USER]]);
    } finally {
      await smtps.close();
    }
    // tls none never upgrades: this server refuses a login in clear (smtp-server: 538, STARTTLS first).
    const before = smtp.mails.length;
    await expect(new SmtpNotifier(settings({ tls: 'none' }), undefined, FAST).send(event())).rejects.toThrow(/refused the login as bh-sender \(538\)/);
    expect(smtp.mails.length).toBe(before);
  });

  it('a refused recipient is not retried; a server that never answers is tried 3 times', async () => {
    const connections = smtp.connections;
    await expect(new SmtpNotifier(settings({ to: ['refused@example.com'] }), undefined, FAST).send(event())).rejects.toThrow(/refused the sender or recipients: .*550/);
    expect(smtp.connections - connections).toBe(1);
    const silent = await startSilentServer();
    try {
      await expect(new SmtpNotifier(settings({ port: silent.port, timeoutSeconds: 1 }), undefined, FAST).send(event())).rejects.toThrow(/could not be used: ETIMEDOUT: .*\(after 3 tries\)/);
      expect(silent.connections()).toBe(3);
    } finally {
      await silent.close();
    }
  });

  it('validates addresses as people write them', () => {
    for (const good of ['ops@example.com', 'first.last+tag@mail.example.co.uk', 'root@localhost']) expect(isEmailAddress(good), good).toBe(true);
    for (const bad of ['root', 'a b@example.com', '<ops@example.com>', 'ops@', '@example.com', 'ops@exa_mple.com', 'a@b@c', 'x@-bad.com']) expect(isEmailAddress(bad), bad).toBe(false);
  });
});

describe('local mail (Debian postfix, "Local only")', () => {
  const mailOf = (marker: string): Promise<{ subject: string; text: string }[]> => waitForRootMails((text) => text.includes(marker), 1);

  it('pipes the message to sendmail -t; it lands in /var/mail/root', async () => {
    ensurePostfix();
    const marker = `/etc/bh/local-${Date.now()}.ini`;
    await new LocalMailNotifier({ to: ['root'] }).send(event({ job: marker }));
    const [mail] = await mailOf(marker);
    expect(mail!.subject).toBe('[bh] backup-host: backup INCOMPLETE (' + marker.split('/').pop() + ')');
    expect(mail!.text.trimEnd()).toBe(fullText(event({ job: marker })).trimEnd());
  });

  it('falls back to mail(1) without sendmail, and fails clearly with neither', async () => {
    ensurePostfix();
    const onlyMail = join(tmp, 'only-mail-bin');
    mkdirSync(onlyMail);
    symlinkSync('/usr/bin/mail', join(onlyMail, 'mail'));
    const marker = `/etc/bh/mailx-${Date.now()}.ini`;
    await new LocalMailNotifier({ to: ['root'], path: onlyMail }).send(event({ job: marker }));
    expect((await mailOf(marker))[0]!.subject).toMatch(/backup INCOMPLETE/);

    const none = join(tmp, 'no-mta-bin');
    mkdirSync(none);
    await expect(new LocalMailNotifier({ to: ['root'], path: none }).send(event())).rejects.toThrow(/neither sendmail nor mail is installed/);
    expect(new LocalMailNotifier({ to: ['root'] }).accepts('run.partial')).toBe(false);
    expect(['run.failed', 'job.stale', 'preflight.fatal', 'drill.failed'].every((k) => new LocalMailNotifier({ to: ['root'] }).accepts(k as 'run.failed'))).toBe(true);
  });
});

describe('metrics file', () => {
  it('is valid Prometheus text exposition (promtool check metrics), labels escaped', () => {
    const text = renderMetrics({
      job: '/etc/bh/night"ly\\.ini',
      lastRun: { startedSeconds: 1_765_000_000, endedSeconds: 1_765_000_042.5, exitCode: 3, bytesAdded: 1234, filesNew: 5, filesChanged: 2 },
      destinations: [
        { name: '/mnt/usb/repo', lastSuccessSeconds: 1_765_000_042, lastRunOk: true, snapshots: 7, stale: false },
        { name: 'sftp:bh@nas:/backups', lastRunOk: false, stale: true },
      ],
    });
    execFileSync('promtool', ['check', 'metrics'], { input: text });
    expect(text).toContain('bh_last_run_exit_code{job="/etc/bh/night\\"ly\\\\.ini"} 3');
    expect(text).toContain('bh_last_run_duration_seconds{job="/etc/bh/night\\"ly\\\\.ini"} 42.500');
    expect(text).toContain('bh_destination_stale{job="/etc/bh/night\\"ly\\\\.ini",destination="sftp:bh@nas:/backups"} 1');
    expect(text).not.toMatch(/bh_destination_last_success_timestamp_seconds\{[^}]*sftp/);
  });
});

describe('log file', () => {
  it('writes JSON lines, rotates at max_size keeping `keep` files, and masks every secret', async () => {
    const file = join(tmp, 'logs/application.log');
    const secrets = ['hunter2-secret', 'https://hooks.slack.com/services/T0/B0/XYZ', 'q"uo\\te-secret'];
    for (let round = 0; round < 2; round++) {
      // Two processes' worth (open, write, close): the size carries over across opens.
      const log = openJobLog({ file, maxSizeBytes: 2048, keep: 2, level: 'info' }, new Redactor(secrets), { job: 'j.ini' });
      for (let i = 0; i < 30; i++) log.logger.info({ detail: `password hunter2-secret "quoted"`, i }, `line ${round}-${i} to https://hooks.slack.com/services/T0/B0/XYZ`);
      log.logger.debug('not at level info');
      log.logger.info({ error: 'login q"uo\\te-secret refused' }, 'JSON escapes q"uo\\te-secret too');
      await log.close();
    }
    expect(readdirSync(join(tmp, 'logs')).sort()).toEqual(['application.log', 'application.log.1', 'application.log.2']);
    const lines = ['application.log.2', 'application.log.1', 'application.log'].flatMap((f) => readFileSync(join(tmp, 'logs', f), 'utf8').trim().split('\n'));
    for (const f of ['application.log', 'application.log.1']) expect(readFileSync(join(tmp, 'logs', f)).length).toBeLessThanOrEqual(2048 + 400);
    const records = lines.map((l) => JSON.parse(l) as { level: string; msg: string; job: string; detail: string; time: string });
    expect(records.at(-1)).toMatchObject({ msg: 'JSON escapes ******** too', error: 'login ******** refused' });
    expect(records.at(-2)!.msg).toBe('line 1-29 to ********');
    expect(records.filter((r) => r.detail !== undefined).every((r) => r.level === 'info' && r.job === 'j.ini' && r.detail === 'password ******** "quoted"')).toBe(true);
    expect(lines.join('\n')).not.toMatch(/hunter2|XYZ|te-secret|not at level/);
    expect(existsSync(join(tmp, 'logs/application.log.3'))).toBe(false);
    expect(parseSize('5M')).toBe(5 * 1024 * 1024);
    expect(parseSize('500K')).toBe(500 * 1024);
    expect(parseSize('1234')).toBe(1234);
    expect(parseSize('five')).toBeUndefined();
  });
});
