/**
 * The seam for notification channels (Telegram, e-mail, webhooks: a later issue). The runner
 * calls every notifier once per run, after the post-backup hook, with the run's record; a
 * notifier that fails is reported as a warning and changes nothing else.
 */
import type { RunRecord } from './state.js';

export interface Notifier {
  /** For messages ("webhook", "smtp"). */
  readonly name: string;
  notify(run: RunRecord): Promise<void>;
}
