/**
 * Alerting end to end, through the real CLI: `bh run` with every channel configured (Telegram
 * through a local stand-in of the Bot API — Telegram itself is unreachable from here —, a real
 * SMTP server with STARTTLS and AUTH, Debian's postfix for local mail, a local webhook receiver,
 * the heartbeat monitor), `bh status --alert`, `bh notify test`, `bh config check`, the metrics
 * file (checked by promtool) and the log file. Every message is counted per channel, and every
 * log, status file, message and output of a full run is searched for each configured secret.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobPaths } from '../src/jobs/state.js';
import { type RunResult, bh, makeTempDir, removeDir } from './helpers/cli.js';
import { type HttpPeer, type SmtpPeer, startSmtp, startTelegramStandIn, startWebhookReceiver } from './helpers/notify-peers.js';

type Json = Record<string, unknown>;

const SECRETS = {
  JOB_PASS: 'job-passphrase-Zq81',
  TG_TOKEN: '4242:TelegramSecretToken_x9',
  SMTP_PASSWORD: 'smtp-password-Kp27',
  HOOK_AUTH: 'Bearer hook-auth-secret-Mn55',
};
const SMTP_USER = 'bh-mailer';
/** The path of the webhook and ping URLs is their credential. */
const HOOK_PATH_SECRET = 'hook-path-secret-Wq34';
const PING_SECRET = 'ping-uuid-secret-Rt66';

let tmp: string;
let source: string;
let smtp: SmtpPeer;
let hooks: HttpPeer;
let telegram: HttpPeer;
let startedPostfix = false;

function postfixRunning(): boolean {
  return spawnSync('postfix', ['status'], { stdio: 'ignore' }).status === 0;
}

beforeAll(async () => {
  tmp = await makeTempDir('bh-notify-run-');
  source = join(tmp, 'source');
  mkdirSync(source);
  writeFileSync(join(source, 'a.txt'), 'alpha\n');
  [smtp, hooks, telegram] = await Promise.all([startSmtp(tmp, { user: SMTP_USER, password: SECRETS.SMTP_PASSWORD }), startWebhookReceiver(), startTelegramStandIn(SECRETS.TG_TOKEN)]);
  // Postfix is the host's one MTA (system-wide, port 25): started here if it is not running.
  if (!postfixRunning()) {
    execFileSync('postfix', ['start'], { stdio: 'ignore' });
    startedPostfix = true;
  }
});

afterAll(async () => {
  await Promise.all([smtp?.close(), hooks?.close(), telegram?.close()]);
  if (startedPostfix) execFileSync('postfix', ['stop'], { stdio: 'ignore' });
  await removeDir(tmp);
});

function detail(r: RunResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

let jobCount = 0;
interface TestJob {
  name: string;
  dir: string;
  config: string;
  stateDir: string;
  hookPath: string;
  pingPath: string;
  metrics: string;
  bh(args: string[]): Promise<RunResult>;
  run(args?: string[]): Promise<RunResult>;
  status(): { runs: Json[] };
}

interface JobSpec {
  destinations?: string[];
  /** Extra lines for [NOTIFICATIONS]. */
  notifications?: string;
  /** Overrides of sections, appended verbatim. */
  extra?: string;
  telegramToken?: string;
  smtpPassword?: string;
  webhookPath?: string;
  schedule?: boolean;
}

/** A job with every channel: Telegram, SMTP, local mail, webhook, heartbeat with start/fail, metrics. */
function makeJob(spec: JobSpec = {}): TestJob {
  const name = `job-${++jobCount}`;
  const dir = join(tmp, name);
  mkdirSync(dir);
  const config = join(dir, 'config.ini');
  const hookPath = spec.webhookPath ?? `/ok/${name}/${HOOK_PATH_SECRET}`;
  const pingPath = `/ok/ping-${name}/${PING_SECRET}`;
  const metrics = join(dir, 'textfile/bh.prom');
  mkdirSync(join(dir, 'textfile'));
  const destinations = spec.destinations ?? [join(dir, 'repo')];
  writeFileSync(
    config,
    [
      '[META]\nschema_version = 3',
      `[DEFAULT]\nsource_dir = ${source}\nmode = incremental`,
      '[MODES]\nlocal = True\nssh = False',
      `[BACKUPS]\nbackup_dirs = ${destinations.join(', ')}`,
      '[ENCRYPTION]\npassphrase = ${JOB_PASS}',
      `[NOTIFICATIONS]\nbot = True\nlocal_mail_to = root\n${spec.notifications ?? ''}`,
      `[TELEGRAM]\napi_token = ${spec.telegramToken ?? '${TG_TOKEN}'}\napi_base = ${telegram.base}`,
      '[USERS]\ninteracted_users = 1001',
      `[SMTP]\nhost = 127.0.0.1\nport = ${smtp.port}\nuser = ${SMTP_USER}\npassword = ${spec.smtpPassword ?? '${SMTP_PASSWORD}'}\nfrom_addr = bh@backup.example\nto_addrs = ops@example.com\nuse_tls = True\nca_file = ${smtp.caFile}`,
      `[WEBHOOK]\nurl = ${hooks.base}${hookPath}\nauth_header = \${HOOK_AUTH}\nformat = json\ntimeout = 2`,
      `[HEARTBEAT]\nurl = ${hooks.base}${pingPath}\ntimeout = 5\nsignal_start = True\nsignal_fail = True`,
      `[MONITORING]\ntextfile = ${metrics}`,
      spec.schedule === false ? '' : '[SCHEDULE]\ntimes = 03:00',
      spec.extra ?? '',
    ].join('\n') + '\n',
  );
  const stateDir = join(dir, 'state');
  // `bh config …` keeps no state: it takes no --state-dir.
  const run = (args: string[]): Promise<RunResult> => bh([...args, '--config', config, ...(args[0] === 'config' ? [] : ['--state-dir', stateDir])], { env: SECRETS });
  return {
    name,
    dir,
    config,
    stateDir,
    hookPath,
    pingPath,
    metrics,
    bh: run,
    run: (args = []) => run(['run', ...args]),
    status: () => JSON.parse(readFileSync(jobPaths(stateDir, config).status, 'utf8')) as { runs: Json[] },
  };
}

/** What each channel received for `job`. */
function received(job: TestJob): { telegram: string[]; smtp: string[]; webhook: Json[]; pings: string[] } {
  return {
    telegram: telegram.requests.filter((r) => (r.json as { text: string }).text.includes(job.config)).map((r) => (r.json as { text: string }).text),
    smtp: smtp.mails.filter((m) => m.parsed.text?.includes(job.config)).map((m) => m.parsed.text ?? ''),
    webhook: hooks.requests.filter((r) => r.url === job.hookPath).map((r) => r.json as Json),
    pings: hooks.requests.filter((r) => r.url.startsWith(job.pingPath)).map((r) => r.url.slice(job.pingPath.length) || '/'),
  };
}

/** Messages in root's mailbox that are about `job` (delivered by postfix), in order. */
async function localMails(job: TestJob): Promise<{ subject: string; text: string; raw: string }[]> {
  const box = '/var/mail/root';
  if (!existsSync(box)) return [];
  const raws = readFileSync(box, 'utf8').split(/^(?=From \S+ )/m).filter((m) => m.trim() !== '');
  const out: { subject: string; text: string; raw: string }[] = [];
  for (const raw of raws) {
    const parsed = await simpleParser(raw.replace(/^From .*\n/, ''));
    if (parsed.text?.includes(job.config)) out.push({ subject: parsed.subject ?? '', text: parsed.text, raw });
  }
  return out;
}

/** Postfix delivers asynchronously: wait until `count` mails about `job` arrived (or fail after 30 s). */
async function waitForLocalMails(job: TestJob, count: number): Promise<{ subject: string; text: string; raw: string }[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const mails = await localMails(job);
    if (mails.length >= count) return mails;
    if (Date.now() > deadline) throw new Error(`only ${mails.length} of ${count} local mail(s) for ${job.name} arrived; postqueue: ${spawnSync('postqueue', ['-p']).stdout}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Local mail the run queued is in the mailbox once postfix's queue is empty of it: flush and wait. */
async function settledLocalMails(job: TestJob, expected: number): Promise<number> {
  spawnSync('postqueue', ['-f']);
  if (expected > 0) await waitForLocalMails(job, expected);
  return (await localMails(job)).length;
}

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
    expect(await settledLocalMails(job, 1)).toBe(1);

    // bh status --alert: exit 3 (stale, last run partial), and no new message for the same period.
    const alert = await job.bh(['status', '--alert']);
    expect(alert.code, detail(alert)).toBe(3);
    expect(alert.stderr).toContain(`ALERT: ${missing} is stale`);
    expect(alert.stderr).toContain('ALERT: the last run ended partial');
    const got3 = received(job);
    expect([got3.telegram.length, got3.smtp.length, got3.webhook.length]).toEqual([2, 2, 2]);
    expect(await settledLocalMails(job, 1)).toBe(1);

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
    expect(await settledLocalMails(loud, 0)).toBe(0); // local mail is for failures
    expect(r.stdout).toMatch(/notification run\.succeeded through webhook: sent/);

    const bad = await loud.run(['--receiver', 'not an address']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--receiver 'not an address' is not an e-mail address");
  });

  it('channels that fail (wrong token, refused login, 500, peer down) leave the exit code alone and are counted by bh status', async () => {
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
    expect(await settledLocalMails(job, 1)).toBe(1);
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
