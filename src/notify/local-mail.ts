/**
 * local_mail_to: the channel that needs no network. The message is piped to the host's own mail
 * system, `sendmail -t -i` (Postfix, Exim and OpenSMTPD all install one), or `mail -s` when there
 * is no sendmail; the local MTA queues it in /var/mail or its queue, so it is there when DNS and
 * the network are gone, and goes out when they return. It is used for what must not be missed:
 * failed runs, stale backups, fatal pre-flight checks, failed drills (and `bh notify test`).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import type { Notifier } from './channel.js';
import type { EventKind, NotifyEvent } from './event.js';
import { fullText, subjectOf } from './format.js';

const SENDMAIL_PATHS = ['/usr/sbin/sendmail', '/usr/lib/sendmail'];
const TIMEOUT_MS = 30_000;
const LOCAL_KINDS: ReadonlySet<EventKind> = new Set(['run.failed', 'job.stale', 'preflight.fatal', 'drill.failed', 'notify.test']);

export interface LocalMailSettings {
  /** Local users or addresses ("root", "admin@localhost"). */
  to: string[];
  /** Where commands are looked up (tests point it at a directory without sendmail). */
  path?: string | undefined;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findCommand(name: string, searchPath: string | undefined, extra: readonly string[] = []): string | undefined {
  const dirs = (searchPath ?? process.env['PATH'] ?? '').split(':').filter((d) => d !== '');
  return [...dirs.map((d) => `${d}/${name}`), ...extra].find(executable);
}

function pipeTo(command: string, args: string[], input: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'ignore', 'pipe'], timeout: TIMEOUT_MS });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} ${signal ? `was stopped (${signal})` : `exited ${code}`}${stderr.trim() ? `: ${stderr.trim().slice(0, 500)}` : ''}`));
    });
    child.stdin.on('error', () => undefined); // a command that exits early reports through 'close'
    child.stdin.end(input);
  });
}

export class LocalMailNotifier implements Notifier {
  readonly name = 'local-mail';

  constructor(private readonly settings: LocalMailSettings) {}

  accepts(kind: EventKind): boolean {
    return LOCAL_KINDS.has(kind);
  }

  async send(event: NotifyEvent): Promise<void> {
    const subject = subjectOf(event);
    const text = fullText(event);
    const sendmail = findCommand('sendmail', this.settings.path, this.settings.path === undefined ? SENDMAIL_PATHS : []);
    if (sendmail !== undefined) {
      const { default: MailComposer } = await import('nodemailer/lib/mail-composer/index.js'); // loaded on first use
      const body = await new MailComposer({ subject, text, headers: { 'Auto-Submitted': 'auto-generated' } }).compile().build();
      // A bare local user ("root") is no address to nodemailer's parser: the To: header goes in as written (validated ASCII).
      const message = Buffer.concat([Buffer.from(`To: ${this.settings.to.join(', ')}\r\n`), body]);
      // -t: recipients from the To: header (never on argv); -i: a lone "." line is not the end.
      await pipeTo(sendmail, ['-t', '-i'], message);
      return;
    }
    const mail = findCommand('mail', this.settings.path);
    if (mail === undefined) throw new Error('neither sendmail nor mail is installed: install a local MTA (e.g. Debian\'s postfix, "Local only") and bsd-mailx');
    await pipeTo(mail, ['-s', subject, '--', ...this.settings.to], Buffer.from(text));
  }
}
