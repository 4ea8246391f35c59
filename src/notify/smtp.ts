/**
 * [SMTP]: e-mail through a mail server with nodemailer, as multipart/alternative (the full text
 * and its HTML form, every value escaped). TLS: STARTTLS required, implicit TLS (SMTPS, port
 * 465), or none (the connection stays plain: no STARTTLS attempted).
 * Up to 3 tries on connection errors (refused, timed out, reset, DNS); none after a refused
 * login or a refused recipient: those fail the same way again.
 */
import { readFileSync } from 'node:fs';
import { type ChannelLog, type Notifier, SILENT_LOG } from './channel.js';
import type { EventKind, NotifyEvent } from './event.js';
import { fullHtml, fullText, subjectOf } from './format.js';
import { DEFAULT_RETRY, type RetryPolicy, TransientError, withRetries } from './retry.js';

export type SmtpTls = 'starttls' | 'implicit' | 'none';

export interface SmtpSettings {
  host: string;
  port: number;
  user?: string | undefined;
  password?: string | undefined;
  from: string;
  to: string[];
  tls: SmtpTls;
  /** A PEM file of the CA that signed the server's certificate (a private mail server); else the system's CAs. */
  caFile?: string | undefined;
  /** For connecting, the greeting and each answer (default 15 s). */
  timeoutSeconds?: number | undefined;
}

/** A plain address as people write it in a config file or on the command line. */
export function isEmailAddress(text: string): boolean {
  return /^[^\s@<>(),;:"\\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(text) && text.length <= 254;
}

/** nodemailer's codes for errors of the connection (a later try may work). */
const CONNECTION_ERRORS = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE']);
const TIMEOUT_SECONDS = 15;

export class SmtpNotifier implements Notifier {
  readonly name = 'smtp';

  constructor(
    private readonly settings: SmtpSettings,
    private readonly log: ChannelLog = SILENT_LOG,
    private readonly retry: RetryPolicy = DEFAULT_RETRY,
  ) {}

  accepts(_kind: EventKind): boolean {
    return true;
  }

  async send(event: NotifyEvent): Promise<void> {
    const s = this.settings;
    const timeoutMs = (s.timeoutSeconds ?? TIMEOUT_SECONDS) * 1000;
    // Loaded on first use: every bh run and status loads this module, few send mail.
    const { default: nodemailer } = await import('nodemailer');
    const transport = nodemailer.createTransport({
      host: s.host,
      port: s.port,
      secure: s.tls === 'implicit',
      requireTLS: s.tls === 'starttls',
      ignoreTLS: s.tls === 'none',
      auth: s.user !== undefined ? { user: s.user, pass: s.password ?? '' } : undefined,
      tls: s.caFile !== undefined ? { ca: readFileSync(s.caFile) } : undefined,
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
      disableFileAccess: true,
      disableUrlAccess: true,
    });
    const message = {
      from: s.from,
      to: s.to,
      subject: subjectOf(event),
      text: fullText(event),
      html: fullHtml(event),
      headers: { 'Auto-Submitted': 'auto-generated' },
    };
    try {
      await withRetries(`smtp to ${s.host}:${s.port}`, this.retry, this.log, async () => {
        try {
          await transport.sendMail(message);
        } catch (error) {
          const e = error as Error & { code?: string; responseCode?: number; response?: string };
          const why = describe(e, s);
          if (e.code !== undefined && CONNECTION_ERRORS.has(e.code) && e.responseCode === undefined) throw new TransientError(why);
          throw new Error(why);
        }
      });
    } finally {
      transport.close();
    }
  }
}

function describe(e: Error & { code?: string; responseCode?: number; response?: string }, s: SmtpSettings): string {
  const where = `${s.host}:${s.port}`;
  if (e.code === 'EAUTH') return `the mail server ${where} refused the login as ${s.user ?? '(none)'}${e.responseCode ? ` (${e.responseCode})` : ''}: check [SMTP] user and password; not retried`;
  if (e.code === 'EENVELOPE') return `the mail server ${where} refused the sender or recipients: ${e.response ?? e.message}`;
  if (e.code === 'ETLS' || /certificate|self.signed|TLS/i.test(e.message)) return `TLS with ${where} failed: ${e.message} (for a private CA set [SMTP] ca_file)`;
  return `the mail server ${where} could not be used: ${e.code ? `${e.code}: ` : ''}${e.message}`;
}
