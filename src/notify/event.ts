/**
 * What the channels are told: one event, plain data that the layer above fills in (this layer
 * imports nothing of ours). Every kind has a severity and a category; `notify_on` selects by
 * category, so later kinds (a restore drill, a fatal pre-flight from the operations layer) fit
 * without touching any channel.
 */

export type EventKind =
  | 'run.succeeded'
  | 'run.partial'
  | 'run.failed'
  | 'run.interrupted'
  | 'job.stale'
  | 'drill.passed'
  | 'drill.failed'
  | 'preflight.fatal'
  | 'notify.test';

/** What `notify_on` names: success, failure, stale. Test messages always go out. */
export type EventCategory = 'success' | 'failure' | 'stale' | 'test';

export type Severity = 'ok' | 'warning' | 'critical';

export const EVENT_KINDS: Readonly<Record<EventKind, { category: EventCategory; severity: Severity; title: string }>> = {
  'run.succeeded': { category: 'success', severity: 'ok', title: 'backup succeeded' },
  'run.partial': { category: 'failure', severity: 'warning', title: 'backup INCOMPLETE' },
  'run.failed': { category: 'failure', severity: 'critical', title: 'backup FAILED' },
  'run.interrupted': { category: 'failure', severity: 'warning', title: 'backup interrupted' },
  'job.stale': { category: 'stale', severity: 'critical', title: 'backups are STALE' },
  'drill.passed': { category: 'success', severity: 'ok', title: 'restore drill passed' },
  'drill.failed': { category: 'failure', severity: 'critical', title: 'restore drill FAILED' },
  'preflight.fatal': { category: 'failure', severity: 'critical', title: 'pre-flight check FAILED' },
  'notify.test': { category: 'test', severity: 'ok', title: 'test message' },
};

export const NOTIFY_CATEGORIES: readonly EventCategory[] = ['success', 'failure', 'stale'];

/** One destination (or other checked thing) and how it went. */
export interface EventTarget {
  name: string;
  ok: boolean;
  /** "ok, copied", "FAILED: …", "last success 3 d ago". */
  result: string;
  snapshotId?: string | undefined;
  bytesAdded?: number | undefined;
}

export interface NotifyEvent {
  kind: EventKind;
  host: string;
  /** The job: its config file. */
  job: string;
  /** ISO time of the event. */
  time: string;
  runId?: string | undefined;
  /** The exit code the run ends with, when it is a run. */
  exitCode?: number | undefined;
  durationMs?: number | undefined;
  targets: EventTarget[];
  /** The first errors, most important first. */
  errors: string[];
  /** Further lines worth reading ("stale: /mnt/usb, last success never"). */
  facts: string[];
}

/** At most this many errors are put in a message: the status file and the log have the rest. */
export const MAX_ERRORS_IN_MESSAGE = 5;
