/**
 * [WEBHOOK]: one HTTP POST of JSON per event, shaped for the receiver: Slack's incoming
 * webhooks ({text}), Discord's ({content}, mentions off), Microsoft Teams through Workflows /
 * Power Automate (an Adaptive Card message), or bh's own JSON (the event itself plus its text).
 * The format is guessed from the host when it is not set. `auth_header` goes in Authorization.
 * 10 s timeout per try; 3 tries with backoff on 5xx, timeouts and network errors, a 429's
 * Retry-After honoured; a 4xx is not retried (the request itself is wrong). The URL is a
 * credential (a Slack webhook URL is all it takes to post): errors name its host only.
 */
import { type ChannelLog, type Notifier, SILENT_LOG } from './channel.js';
import { EVENT_KINDS, type EventKind, type NotifyEvent } from './event.js';
import { shortMessage, shortText } from './format.js';
import { DEFAULT_RETRY, type RetryPolicy, TransientError, fetchFailure, withRetries } from './retry.js';

export type WebhookFormat = 'slack' | 'discord' | 'teams' | 'json';
export const WEBHOOK_FORMATS: readonly WebhookFormat[] = ['slack', 'discord', 'teams', 'json'];
const DISCORD_MAX_CONTENT = 2000;

export interface WebhookSettings {
  url: string;
  format: WebhookFormat;
  /** The Authorization header's value, sent as it is. */
  authHeader?: string | undefined;
  timeoutSeconds: number;
}

/** slack for hooks.slack.com, discord for discord.com, teams for Office 365 / Power Automate hosts, else json. */
export function guessWebhookFormat(url: string): WebhookFormat {
  const host = new URL(url).hostname.toLowerCase();
  const is = (domain: string): boolean => host === domain || host.endsWith(`.${domain}`);
  if (is('hooks.slack.com')) return 'slack';
  if (is('discord.com') || is('discordapp.com')) return 'discord';
  if (is('webhook.office.com') || is('logic.azure.com') || is('powerautomate.com') || is('powerplatform.com')) return 'teams';
  return 'json';
}

/** Slack's mrkdwn needs &, < and > escaped; nothing else. */
function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function webhookPayload(event: NotifyEvent, format: WebhookFormat): unknown {
  const { title, lines } = shortMessage(event);
  switch (format) {
    case 'slack':
      return { text: `*${slackEscape(title)}*\n${lines.map(slackEscape).join('\n')}` };
    case 'discord': {
      const content = `**${title}**\n${lines.join('\n')}`;
      return { content: content.length > DISCORD_MAX_CONTENT ? `${content.slice(0, DISCORD_MAX_CONTENT - 1)}…` : content, allowed_mentions: { parse: [] } };
    }
    case 'teams':
      return {
        type: 'message',
        attachments: [
          {
            contentType: 'application/vnd.microsoft.card.adaptive',
            contentUrl: null,
            content: {
              $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
              type: 'AdaptiveCard',
              version: '1.4',
              body: [
                { type: 'TextBlock', text: title, weight: 'Bolder', size: 'Medium', wrap: true, color: EVENT_KINDS[event.kind].severity === 'ok' ? 'Good' : 'Attention' },
                ...lines.map((line) => ({ type: 'TextBlock', text: line, wrap: true, spacing: 'None' })),
              ],
            },
          },
        ],
      };
    case 'json':
      return {
        event: event.kind,
        severity: EVENT_KINDS[event.kind].severity,
        host: event.host,
        job: event.job,
        time: event.time,
        run_id: event.runId ?? null,
        exit_code: event.exitCode ?? null,
        duration_ms: event.durationMs ?? null,
        destinations: event.targets.map((t) => ({ name: t.name, ok: t.ok, result: t.result, snapshot_id: t.snapshotId ?? null, bytes_added: t.bytesAdded ?? null })),
        errors: event.errors,
        facts: event.facts,
        text: shortText(event),
      };
  }
}

export class WebhookNotifier implements Notifier {
  readonly name = 'webhook';

  constructor(
    private readonly settings: WebhookSettings,
    private readonly log: ChannelLog = SILENT_LOG,
    private readonly retry: RetryPolicy = DEFAULT_RETRY,
  ) {}

  accepts(_kind: EventKind): boolean {
    return true;
  }

  async send(event: NotifyEvent): Promise<void> {
    const { url, format, authHeader, timeoutSeconds } = this.settings;
    const host = new URL(url).host;
    const body = JSON.stringify(webhookPayload(event, format));
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'bh' };
    if (authHeader !== undefined) headers['authorization'] = authHeader;
    await withRetries(`webhook (${format}) to ${host}`, this.retry, this.log, async () => {
      let response: Response;
      try {
        response = await fetch(url, { method: 'POST', headers, body, redirect: 'error', signal: AbortSignal.timeout(timeoutSeconds * 1000) });
      } catch (error) {
        throw new TransientError(`the webhook at ${host} did not answer (${fetchFailure(error, timeoutSeconds)})`);
      }
      await response.body?.cancel();
      if (response.ok) return;
      const why = `the webhook at ${host} answered HTTP ${response.status}`;
      if (response.status === 429) {
        const seconds = Number(response.headers.get('retry-after'));
        throw new TransientError(why, Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined);
      }
      if (response.status >= 500) throw new TransientError(why);
      throw new Error(`${why}; not retried (check [WEBHOOK] url, auth_header and format)`);
    });
  }
}
