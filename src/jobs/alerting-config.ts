/**
 * The job config's alerting sections, read and validated beside the rest of the job
 * (config.ts): [NOTIFICATIONS] (bot, receiver_emails, notify_on, local_mail_to), [TELEGRAM] +
 * [USERS] (in the job's file or the old bot_config.ini beside it), [SMTP], [WEBHOOK],
 * [PREFLIGHT] local_mail_to, [MONITORING], [LOGGING]. README.md, "Alerting and monitoring".
 */
import { isAbsolute, resolve } from 'node:path';
import type { EventCategory } from '../notify/event.js';
import { NOTIFY_CATEGORIES } from '../notify/event.js';
import { DEFAULT_LOG_KEEP, DEFAULT_LOG_MAX_SIZE, LOG_LEVELS, type LogLevel, parseSize } from '../notify/log.js';
import { isEmailAddress, type SmtpSettings, type SmtpTls } from '../notify/smtp.js';
import { TELEGRAM_API_BASE, type TelegramSettings } from '../notify/telegram.js';
import { WEBHOOK_FORMATS, type WebhookSettings, guessWebhookFormat } from '../notify/webhook.js';
import type { Reader } from './config.js';

export interface Alerting {
  /** Which events go out (test messages always do): default failure and stale. */
  notifyOn: EventCategory[];
  telegram?: TelegramSettings | undefined;
  /** Recipients from [SMTP] to_addrs and [NOTIFICATIONS] receiver_emails; `bh run --receiver` adds more. */
  smtp?: SmtpSettings | undefined;
  localMailTo: string[];
  webhook?: WebhookSettings | undefined;
  /** [MONITORING] textfile: the Prometheus metrics file written after each run. */
  metricsFile?: string | undefined;
  /** File undefined: `<job>.log` in the state directory. */
  logging: { file?: string | undefined; maxSizeBytes: number; keep: number; level: LogLevel };
}

const DEFAULT_NOTIFY_ON: EventCategory[] = ['failure', 'stale'];
const DEFAULT_SMTP_PORT = 587;
const DEFAULT_WEBHOOK_TIMEOUT_SECONDS = 10;

export function readAlerting(r: Reader, bot: Reader | undefined): Alerting {
  return {
    notifyOn: readNotifyOn(r),
    telegram: readTelegram(r, bot),
    smtp: readSmtp(r),
    localMailTo: readLocalMail(r),
    webhook: readWebhook(r),
    metricsFile: readMetricsFile(r),
    logging: readLogging(r),
  };
}

function readNotifyOn(r: Reader): EventCategory[] {
  const names = r.list('NOTIFICATIONS', 'notify_on');
  if (names.length === 0) return DEFAULT_NOTIFY_ON;
  const out: EventCategory[] = [];
  for (const name of names.map((n) => n.toLowerCase())) {
    const category = NOTIFY_CATEGORIES.find((c) => c === name);
    if (category === undefined) r.problem('NOTIFICATIONS', 'notify_on', `'${name}' is not success, failure or stale`, 'list any of success, failure, stale (default: failure, stale)');
    else if (!out.includes(category)) out.push(category);
  }
  return out;
}

/**
 * [NOTIFICATIONS] bot = True sends to the chat ids of [USERS] interacted_users with the token of
 * [TELEGRAM] api_token: from the job's file when it has them, else from bot_config.ini beside it.
 * The old tool's .bot_users.json registrations are never read: the list is the allow-list.
 */
function readTelegram(r: Reader, bot: Reader | undefined): TelegramSettings | undefined {
  const enabled = r.bool('NOTIFICATIONS', 'bot', false);
  const own = r.entry('TELEGRAM', 'api_token') !== undefined;
  const from = own || bot === undefined ? r : bot;
  if (!enabled) {
    if (own) r.warnings.push('[TELEGRAM] is not used: set [NOTIFICATIONS] bot = True to send Telegram messages');
    return undefined;
  }
  const token = from.string('TELEGRAM', 'api_token', `add [TELEGRAM] api_token (the token from @BotFather) to ${r.doc.file} or to bot_config.ini beside it, or set [NOTIFICATIONS] bot = False`);
  if (token !== undefined && !/^\d+:[A-Za-z0-9_-]+$/.test(token)) from.problem('TELEGRAM', 'api_token', 'is not a bot token (digits, a colon, then letters, digits, _ and -)', 'copy the token @BotFather gave you');
  const chatIds = from.list('USERS', 'interacted_users');
  for (const id of chatIds) {
    if (!/^-?\d+$/.test(id) && !/^@[A-Za-z][A-Za-z0-9_]{3,}$/.test(id)) from.problem('USERS', 'interacted_users', `'${id}' is not a chat id`, 'list numeric chat ids (or @channelname), comma-separated');
  }
  if (chatIds.length === 0) r.warnings.push(`[USERS] interacted_users is empty: Telegram messages go to nobody (bh never registers chats that message the bot; list the chat ids${from === bot ? ` in ${from.doc.file}` : ''})`);
  const apiBase = r.string('TELEGRAM', 'api_base') ?? bot?.string('TELEGRAM', 'api_base') ?? TELEGRAM_API_BASE;
  if (!isHttpUrl(apiBase)) r.problem('TELEGRAM', 'api_base', `'${apiBase}' is not an http:// or https:// URL`, `remove it (default ${TELEGRAM_API_BASE}) or give your Bot API server's URL`);
  if (bot !== undefined && from === r) r.warnings.push(`${bot.doc.file} is not read: ${r.doc.file} has its own [TELEGRAM] api_token`);
  if (bot !== undefined && from !== r) {
    r.issues.push(...bot.issues);
    for (const value of bot.secretValues) r.secretValues.add(value);
  }
  return token === undefined ? undefined : { apiBase, token, chatIds };
}

function readSmtp(r: Reader): SmtpSettings | undefined {
  const host = r.string('SMTP', 'host');
  const receivers = r.list('NOTIFICATIONS', 'receiver_emails');
  const toAddrs = r.list('SMTP', 'to_addrs');
  const port = r.number('SMTP', 'port', DEFAULT_SMTP_PORT, 'integer', 1);
  const user = r.string('SMTP', 'user');
  const password = r.string('SMTP', 'password');
  const tls = readSmtpTls(r, port);
  const caText = r.string('SMTP', 'ca_file');
  const caFile = caText === undefined ? undefined : r.absolutePath('SMTP', 'ca_file', caText);
  const from = r.string('SMTP', 'from_addr') ?? (user !== undefined && isEmailAddress(user) ? user : undefined);
  if (host === undefined) {
    if (receivers.length > 0 || toAddrs.length > 0) r.warnings.push('[SMTP] host is not set: no e-mail is sent to [SMTP] to_addrs / [NOTIFICATIONS] receiver_emails');
    return undefined;
  }
  if (port > 65535) r.problem('SMTP', 'port', `${port} is not a port`, 'write 587 (STARTTLS), 465 (TLS) or 25');
  for (const [key, list] of [['to_addrs', toAddrs], ['receiver_emails', receivers]] as const) {
    for (const address of list) {
      if (!isEmailAddress(address)) r.problem(key === 'to_addrs' ? 'SMTP' : 'NOTIFICATIONS', key, `'${address}' is not an e-mail address`, 'write plain addresses (name@example.com), comma-separated');
    }
  }
  if (from === undefined) r.problem('SMTP', 'from_addr', 'is not set (and user is no address)', 'set from_addr = bh@your.domain');
  else if (!isEmailAddress(from)) r.problem('SMTP', 'from_addr', `'${from}' is not an e-mail address`, 'write a plain address (bh@example.com)');
  if (user !== undefined && password === undefined) r.problem('SMTP', 'password', 'is not set but user is', "add 'password = ${SMTP_PASSWORD}' (and export SMTP_PASSWORD), or remove user");
  if (tls === 'none' && user !== undefined) r.warnings.push('[SMTP] use_tls = False with a login: the password crosses the network in clear');
  const to = [...new Set([...toAddrs, ...receivers])];
  if (to.length === 0) r.warnings.push('[SMTP] has no recipients (to_addrs, [NOTIFICATIONS] receiver_emails): e-mail goes out only with bh run --receiver');
  return { host, port, user, password, from: from ?? '', to, tls, caFile };
}

/** use_tls: True (STARTTLS, or implicit TLS on port 465), False (none); bh also takes starttls / implicit. */
function readSmtpTls(r: Reader, port: number): SmtpTls {
  const text = r.string('SMTP', 'use_tls')?.toLowerCase();
  if (text === 'starttls' || text === 'implicit') return text;
  return r.bool('SMTP', 'use_tls', true) ? (port === 465 ? 'implicit' : 'starttls') : 'none';
}

/** [NOTIFICATIONS] local_mail_to, else [PREFLIGHT] local_mail_to (where the old tool had it). */
function readLocalMail(r: Reader): string[] {
  const section = r.entry('NOTIFICATIONS', 'local_mail_to') !== undefined ? 'NOTIFICATIONS' : 'PREFLIGHT';
  const to = r.list(section, 'local_mail_to');
  for (const name of to) {
    if (!/^[a-z_][a-z0-9_.-]*$/i.test(name) && !isEmailAddress(name)) r.problem(section, 'local_mail_to', `'${name}' is neither a local user nor an e-mail address`, 'write a local user (root) or an address, comma-separated');
  }
  return to;
}

function readWebhook(r: Reader): WebhookSettings | undefined {
  const url = r.string('WEBHOOK', 'url');
  const authHeader = r.string('WEBHOOK', 'auth_header');
  const formatText = r.string('WEBHOOK', 'format')?.toLowerCase();
  const timeoutSeconds = r.number('WEBHOOK', 'timeout', DEFAULT_WEBHOOK_TIMEOUT_SECONDS, 'decimal', 1);
  const format = WEBHOOK_FORMATS.find((f) => f === formatText);
  if (formatText !== undefined && format === undefined) r.problem('WEBHOOK', 'format', `'${formatText}' is not slack, discord, teams or json`, 'write one of them, or remove the line to guess it from the URL');
  if (url === undefined) return undefined;
  if (!isHttpUrl(url)) {
    r.problem('WEBHOOK', 'url', 'is not an http:// or https:// URL', 'write the webhook URL the service gave you');
    return undefined;
  }
  return { url, format: format ?? guessWebhookFormat(url), authHeader, timeoutSeconds };
}

function readMetricsFile(r: Reader): string | undefined {
  const text = r.string('MONITORING', 'textfile');
  if (text === undefined) return undefined;
  const path = r.absolutePath('MONITORING', 'textfile', text);
  if (path !== undefined && !path.endsWith('.prom')) r.problem('MONITORING', 'textfile', `'${path}' does not end in .prom`, "node_exporter's textfile collector reads *.prom files only: name it e.g. bh.prom");
  return path;
}

/** [LOGGING] file: relative paths are relative to the config file's directory (as hooks run there). */
function readLogging(r: Reader): Alerting['logging'] {
  const text = r.string('LOGGING', 'file');
  const sizeText = r.string('LOGGING', 'max_size');
  let maxSizeBytes = DEFAULT_LOG_MAX_SIZE;
  if (sizeText !== undefined) {
    const size = parseSize(sizeText);
    if (size === undefined) r.problem('LOGGING', 'max_size', `'${sizeText}' is not a size`, 'write bytes or a size such as 5M, 500K, 1G');
    else maxSizeBytes = size;
  }
  const keep = r.number('LOGGING', 'keep', DEFAULT_LOG_KEEP, 'integer', 1);
  const levelText = r.string('LOGGING', 'level')?.toLowerCase() ?? 'info';
  const level = LOG_LEVELS.find((l) => l === levelText);
  if (level === undefined) r.problem('LOGGING', 'level', `'${levelText}' is not a log level`, `write one of ${LOG_LEVELS.join(', ')}`);
  const file = text === undefined ? undefined : isAbsolute(text) ? text : resolve(r.doc.file, '..', text);
  return { file, maxSizeBytes, keep, level: level ?? 'info' };
}

function isHttpUrl(text: string): boolean {
  try {
    const u = new URL(text);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}
