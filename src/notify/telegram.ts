/**
 * Telegram through the Bot API's sendMessage (https://core.telegram.org/bots/api#sendmessage),
 * to an explicit allow-list of chat ids. bh never reads the bot's updates, so nobody becomes a
 * recipient by messaging the bot (the old tool registered whoever did, and sent them archive
 * passwords). `apiBase` also points at a self-hosted Bot API server.
 *
 * Messages use parse_mode HTML with every value escaped; a message longer than Telegram's 4096
 * characters is sent as several, split between lines. A 429's retry_after is honoured; 5xx and
 * network errors are retried; other refusals (bad token, unknown chat) are not.
 */
import { type ChannelLog, type Notifier, SILENT_LOG } from './channel.js';
import type { EventKind, NotifyEvent } from './event.js';
import { escapeHtml, shortMessage } from './format.js';
import { DEFAULT_RETRY, type RetryPolicy, TransientError, fetchFailure, withRetries } from './retry.js';

export const TELEGRAM_API_BASE = 'https://api.telegram.org';
/** Telegram's limit on one message's text. */
export const TELEGRAM_MAX_MESSAGE = 4096;
const TIMEOUT_SECONDS = 10;

export interface TelegramSettings {
  apiBase: string;
  /** The bot token (a credential: it only ever travels in the request path). */
  token: string;
  chatIds: string[];
  /** Per request (default 10 s). */
  timeoutSeconds?: number | undefined;
}

interface BotApiAnswer {
  ok?: boolean;
  description?: string;
  error_code?: number;
  parameters?: { retry_after?: number };
}

/**
 * The HTML texts of one message, each at most `limit` characters: whole lines where they fit,
 * longer lines cut without splitting an HTML entity or a surrogate pair.
 */
export function telegramTexts(event: NotifyEvent, limit = TELEGRAM_MAX_MESSAGE): string[] {
  const { title, lines } = shortMessage(event);
  const pieces = [`<b>${escapeHtml(title)}</b>`, ...lines.flatMap((line) => cutLine(escapeHtml(line), limit))];
  const texts: string[] = [];
  let current = '';
  for (const piece of pieces) {
    if (current === '') current = piece;
    else if (current.length + 1 + piece.length <= limit) current += `\n${piece}`;
    else {
      texts.push(current);
      current = piece;
    }
  }
  if (current !== '') texts.push(current);
  return texts;
}

function cutLine(line: string, limit: number): string[] {
  const out: string[] = [];
  let rest = line;
  while (rest.length > limit) {
    let end = limit;
    const amp = rest.lastIndexOf('&', end - 1);
    // Every & of escaped text starts an entity (&amp; &lt; …): never cut one in two.
    if (amp > 0 && !rest.slice(amp, end).includes(';')) end = amp;
    const code = rest.charCodeAt(end - 1);
    if (code >= 0xd800 && code <= 0xdbff) end--; // high surrogate: keep the pair together
    out.push(rest.slice(0, end));
    rest = rest.slice(end);
  }
  out.push(rest);
  return out;
}

export class TelegramNotifier implements Notifier {
  readonly name = 'telegram';

  constructor(
    private readonly settings: TelegramSettings,
    private readonly log: ChannelLog = SILENT_LOG,
    private readonly retry: RetryPolicy = DEFAULT_RETRY,
  ) {}

  accepts(_kind: EventKind): boolean {
    return true;
  }

  async send(event: NotifyEvent): Promise<void> {
    const texts = telegramTexts(event);
    const failures: string[] = [];
    // Each chat on its own: one blocked chat does not keep the others from hearing.
    for (const chatId of this.settings.chatIds) {
      try {
        for (const text of texts) await this.sendMessage(chatId, text);
      } catch (error) {
        failures.push(`chat ${chatId}: ${(error as Error).message}`);
      }
    }
    if (failures.length > 0) throw new Error(failures.join('; '));
  }

  private async sendMessage(chatId: string, text: string): Promise<void> {
    const url = `${this.settings.apiBase.replace(/\/+$/, '')}/bot${this.settings.token}/sendMessage`;
    const timeoutSeconds = this.settings.timeoutSeconds ?? TIMEOUT_SECONDS;
    await withRetries(`telegram sendMessage to chat ${chatId}`, this.retry, this.log, async () => {
      let response: Response;
      try {
        response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ chat_id: chatId, text, parse_mode: 'HTML', link_preview_options: { is_disabled: true } }),
          signal: AbortSignal.timeout(timeoutSeconds * 1000),
        });
      } catch (error) {
        throw new TransientError(`the Bot API at ${new URL(url).host} did not answer (${fetchFailure(error, timeoutSeconds)})`);
      }
      const answer = (await response.json().catch(() => ({}))) as BotApiAnswer;
      if (response.ok && answer.ok === true) return;
      const why = `the Bot API answered HTTP ${response.status}${answer.description ? `: ${answer.description}` : ''}`;
      if (response.status === 429) throw new TransientError(why, (answer.parameters?.retry_after ?? 1) * 1000);
      if (response.status >= 500) throw new TransientError(why);
      throw new Error(response.status === 401 || response.status === 404 ? `${why} (is [TELEGRAM] api_token right?)` : why);
    });
  }
}
