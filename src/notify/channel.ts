/**
 * The seam between a job and its notification channels. A channel sends one event and throws
 * when it could not; `deliver` sends an event through several channels, each on its own, so
 * that one failing channel (DNS down, a refused password) never keeps another from trying and
 * never fails the caller: every outcome comes back as data.
 */
import type { EventKind, NotifyEvent } from './event.js';

/** What channels log to (a pino logger, or anything shaped like it). */
export interface ChannelLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export const SILENT_LOG: ChannelLog = { info: () => undefined, warn: () => undefined };

export interface Notifier {
  /** For messages, logs, `--channel` and the status file: "telegram", "smtp", "local-mail", "webhook". */
  readonly name: string;
  /** Kinds this channel is for, besides the job's notify_on (local mail: failures and staleness only). */
  accepts(kind: EventKind): boolean;
  send(event: NotifyEvent): Promise<void>;
}

export interface Delivery {
  channel: string;
  ok: boolean;
  error?: string | undefined;
}

/** Sends `event` through every channel, one after another; never throws. */
export async function deliver(channels: readonly Notifier[], event: NotifyEvent, log: ChannelLog = SILENT_LOG): Promise<Delivery[]> {
  const out: Delivery[] = [];
  for (const channel of channels) {
    try {
      await channel.send(event);
      log.info({ channel: channel.name, event: event.kind }, `notification sent through ${channel.name}`);
      out.push({ channel: channel.name, ok: true });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      log.warn({ channel: channel.name, event: event.kind, error: message }, `notification through ${channel.name} failed`);
      out.push({ channel: channel.name, ok: false, error: message });
    }
  }
  return out;
}
