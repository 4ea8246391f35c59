/**
 * A job with every alerting channel and the receivers they talk to, for the alerting tests
 * (notify-run, notify-cli): Telegram through a local STAND-IN of the Bot API (Telegram itself is
 * unreachable from this machine), a real SMTP server with STARTTLS and AUTH, Debian's postfix
 * for local mail (ensurePostfix), a local webhook receiver that is also the heartbeat monitor. What each channel received
 * is looked up per job (by the job's config path, which every message names).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jobPaths } from '../../src/jobs/state.js';
import { type RunResult, bh, makeTempDir, removeDir } from './cli.js';
import { type HttpPeer, type LocalMail, type SmtpPeer, ensurePostfix, rootMails, startSmtp, startTelegramStandIn, startWebhookReceiver, waitForEmptyMailQueue, waitForRootMails } from './notify-peers.js';

export type Json = Record<string, unknown>;

export const SECRETS = {
  JOB_PASS: 'job-passphrase-Zq81',
  TG_TOKEN: '4242:TelegramSecretToken_x9',
  SMTP_PASSWORD: 'smtp-password-Kp27',
  HOOK_AUTH: 'Bearer hook-auth-secret-Mn55',
};
export const SMTP_USER = 'bh-mailer';
/** The path of the webhook and ping URLs is their credential. */
export const HOOK_PATH_SECRET = 'hook-path-secret-Wq34';
export const PING_SECRET = 'ping-uuid-secret-Rt66';

export function detail(r: RunResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

export let tmp: string;
export let source: string;
export let smtp: SmtpPeer;
export let hooks: HttpPeer;
export let telegram: HttpPeer;
let jobCount = 0;

/** Starts the receivers (and postfix if needed) and a source directory; call from beforeAll. */
export async function startNotifyWorld(prefix: string): Promise<void> {
  tmp = await makeTempDir(prefix);
  source = join(tmp, 'source');
  mkdirSync(source);
  writeFileSync(join(source, 'a.txt'), 'alpha\n');
  [smtp, hooks, telegram] = await Promise.all([startSmtp(tmp, { user: SMTP_USER, password: SECRETS.SMTP_PASSWORD }), startWebhookReceiver(), startTelegramStandIn(SECRETS.TG_TOKEN)]);
  ensurePostfix();
}

export async function stopNotifyWorld(): Promise<void> {
  await Promise.all([smtp?.close(), hooks?.close(), telegram?.close()]);
  await removeDir(tmp);
}

export interface TestJob {
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

export interface JobSpec {
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
export function makeJob(spec: JobSpec = {}): TestJob {
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
export function received(job: TestJob): { telegram: string[]; smtp: string[]; webhook: Json[]; pings: string[] } {
  return {
    telegram: telegram.requests.filter((r) => (r.json as { text: string }).text.includes(job.config)).map((r) => (r.json as { text: string }).text),
    smtp: smtp.mails.filter((m) => m.parsed.text?.includes(job.config)).map((m) => m.parsed.text ?? ''),
    webhook: hooks.requests.filter((r) => r.url === job.hookPath).map((r) => r.json as Json),
    pings: hooks.requests.filter((r) => r.url.startsWith(job.pingPath)).map((r) => r.url.slice(job.pingPath.length) || '/'),
  };
}

/** Messages in root's mailbox that are about `job` (delivered by postfix), in order. */
export function localMails(job: TestJob): Promise<LocalMail[]> {
  return rootMails((text) => text.includes(job.config));
}

/** Postfix delivers asynchronously: wait until `count` mails about `job` arrived (or fail after 30 s). */
export function waitForLocalMails(job: TestJob, count: number): Promise<LocalMail[]> {
  return waitForRootMails((text) => text.includes(job.config), count);
}

/** How many mails about `job` are in the mailbox once postfix's queue is empty (all delivered). */
export async function settledLocalMails(job: TestJob): Promise<number> {
  await waitForEmptyMailQueue();
  return (await localMails(job)).length;
}
