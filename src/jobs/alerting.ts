/**
 * Everything a job tells the world about itself, around `bh run` (as its RunObserver), `bh
 * schedule`, `bh status --alert` and `bh notify test`: the log file, the heartbeat pings, the
 * notification channels of src/notify/ (fed with events built here from the run record),
 * staleness alerts (once per stale period, remembered in `<job>.alerts.json` in the state
 * directory) and the Prometheus metrics file.
 *
 * One message per channel per run: when a run's event goes out through a channel and some
 * destination has newly become stale, the staleness rides along in that message; a separate
 * job.stale event goes only to channels that do not take the run's event. Nothing here throws
 * into the run: a channel that fails is a warning, logged and recorded in the run.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { type Delivery, type Notifier, deliver } from '../notify/channel.js';
import { EVENT_KINDS, type EventKind, type EventTarget, type NotifyEvent } from '../notify/event.js';
import { humanDuration } from '../notify/format.js';
import { sendHeartbeat } from '../notify/heartbeat.js';
import { LocalMailNotifier } from '../notify/local-mail.js';
import { type JobLog, openJobLog } from '../notify/log.js';
import { type JobMetrics, renderMetrics } from '../notify/metrics.js';
import { Redactor } from '../notify/redact.js';
import { SmtpNotifier } from '../notify/smtp.js';
import { TelegramNotifier } from '../notify/telegram.js';
import { WebhookNotifier } from '../notify/webhook.js';
import { type Job, Reader, readBotConfig } from './config.js';
import { readAlerting } from './alerting-config.js';
import { type ConfigError, formatIssue, parseIni } from './ini.js';
import { describeHookFailure, hookSucceeded } from './hooks.js';
import type { RunEvents, RunObserver } from './runner.js';
import { type Staleness, destinationStaleness } from './stale.js';
import { type NotificationOutcome, type RunRecord, exitCodeOfRun, jobName, jobPaths, readStatus, writeFileAtomic } from './state.js';

export interface AlertsOptions {
  stateDir: string;
  /** `bh run --receiver`: more e-mail recipients for this run (validated by the caller). */
  receivers?: readonly string[] | undefined;
  /** Where warnings about alerting itself go besides the log (the command's stderr). */
  warn(message: string): void;
}

/** What `<job>.alerts.json` remembers: per destination, the last success its stale alert was about ("never" for none). */
interface AlertState {
  version: 1;
  stale: Record<string, string>;
}

const MAX_ERRORS = 20;

export function alertStatePath(stateDir: string, configFile: string): string {
  return join(stateDir, `${jobName(configFile)}.alerts.json`);
}

export function defaultLogPath(stateDir: string, configFile: string): string {
  return join(stateDir, `${jobName(configFile)}.log`);
}

/** What alerting needs of a job: a whole one, or what could be read of a broken config file. */
export type AlertingJob = Pick<Job, 'file' | 'alerting' | 'secretValues' | 'heartbeat' | 'destinations' | 'schedule' | 'preflight'>;

/** The job's secrets, and the path of each secret URL (the part that is the credential), for the Redactor. */
function secretsOf(job: AlertingJob): string[] {
  const out = [...job.secretValues];
  for (const value of job.secretValues) {
    try {
      const path = new URL(value).pathname;
      if (path.length >= 8) out.push(path);
    } catch {
      // not a URL
    }
  }
  return out;
}

/** The channels a job's config sets up, in a fixed order: telegram, smtp, local-mail, webhook. */
function channelsOf(job: AlertingJob, receivers: readonly string[], log: Logger): Notifier[] {
  const a = job.alerting;
  const channels: Notifier[] = [];
  if (a.telegram) channels.push(new TelegramNotifier(a.telegram, log));
  if (a.smtp) {
    const to = [...new Set([...a.smtp.to, ...receivers])];
    if (to.length > 0) channels.push(new SmtpNotifier({ ...a.smtp, to }, log));
  }
  if (a.localMailTo.length > 0) channels.push(new LocalMailNotifier({ to: a.localMailTo }));
  if (a.webhook) channels.push(new WebhookNotifier(a.webhook, log));
  return channels;
}

function hasChannels(a: Job['alerting'], receivers: readonly string[]): boolean {
  return a.telegram !== undefined || (a.smtp !== undefined && a.smtp.to.length + receivers.length > 0) || a.localMailTo.length > 0 || a.webhook !== undefined;
}

export class JobAlerts implements RunObserver {
  readonly log: Logger;
  readonly channels: readonly Notifier[];
  private readonly host = hostname();

  private constructor(
    private readonly job: AlertingJob,
    private readonly options: AlertsOptions,
    private readonly jobLog: JobLog,
    private readonly redactor: Redactor,
  ) {
    this.log = jobLog.logger;
    this.channels = channelsOf(job, options.receivers ?? [], this.log);
  }

  static open(job: AlertingJob, options: AlertsOptions): JobAlerts {
    const redactor = new Redactor(secretsOf(job));
    const { logging } = job.alerting;
    const jobLog = openJobLog({ ...logging, file: logging.file ?? defaultLogPath(options.stateDir, job.file) }, redactor, { job: job.file });
    return new JobAlerts(job, options, jobLog, redactor);
  }

  /** The run's progress lines, also written to the log; secrets masked on the console too. */
  events(inner: RunEvents): RunEvents {
    return {
      step: (message) => {
        this.log.info(message);
        inner.step(this.redactor.text(message));
      },
      warn: (message) => {
        this.log.warn(message);
        inner.warn(this.redactor.text(message));
      },
    };
  }

  private warn(message: string): void {
    this.log.warn(message);
    this.options.warn(this.redactor.text(message));
  }

  async started(run: RunRecord): Promise<void> {
    this.log.info({ run: run.id }, `run ${run.id} started`);
    const heartbeat = this.job.heartbeat;
    if (heartbeat?.signalStart) {
      run.heartbeatStart = await sendHeartbeat(heartbeat.url, heartbeat.timeoutSeconds, 'start');
      this.logPing(run.heartbeatStart);
    }
  }

  async finished(run: RunRecord): Promise<void> {
    // The status file is readable by monitoring (0644): no secret may stay in what a run recorded.
    Object.assign(run, this.redactor.deep({ ...run }));
    this.logRun(run);
    const heartbeat = this.job.heartbeat;
    if (heartbeat && (run.state === 'success' || heartbeat.signalFail)) {
      run.heartbeat = await sendHeartbeat(heartbeat.url, heartbeat.timeoutSeconds, run.state === 'success' ? 'success' : 'fail');
      this.logPing(run.heartbeat);
    }

    const now = Date.now();
    const status = readStatus(jobPaths(this.options.stateDir, this.job.file).status, this.job.file);
    const staleness = destinationStaleness(this.job, status, now);
    run.notifications = await this.notify(runEvent(this.job, run, this.host), staleness, now);
    await this.writeMetrics(run, staleness, status.lastSuccess);
  }

  /** `bh status --alert`: a job.stale event for destinations newly stale (once per stale period). */
  async alertStale(now = Date.now()): Promise<{ staleness: Staleness[]; deliveries: NotificationOutcome[] }> {
    const status = readStatus(jobPaths(this.options.stateDir, this.job.file).status, this.job.file);
    const staleness = destinationStaleness(this.job, status, now);
    return { staleness, deliveries: await this.notify(undefined, staleness, now) };
  }

  /** `bh notify test`: a test event through every channel (or the one named), notify_on aside. */
  async test(channel?: string): Promise<Delivery[]> {
    const channels = channel === undefined ? this.channels : this.channels.filter((c) => c.name === channel);
    const event: NotifyEvent = {
      kind: 'notify.test',
      host: this.host,
      job: this.job.file,
      time: new Date().toISOString(),
      targets: this.job.destinations.map((d) => ({ name: d.location, ok: true, result: 'configured' })),
      errors: [],
      facts: [`a test message from \`bh notify test\`: the ${channels.map((c) => c.name).join(', ')} channel(s) of this job reach you`],
    };
    return deliver(channels, this.redactor.deep(event), this.log);
  }

  async close(): Promise<void> {
    await this.jobLog.close();
  }

  private wants(kind: EventKind): boolean {
    const category = EVENT_KINDS[kind].category;
    return category === 'test' || this.job.alerting.notifyOn.includes(category);
  }

  /**
   * Sends the run's event (when there is one and notify_on wants it) and the staleness of
   * destinations newly stale, one message per channel; records which stale periods were told.
   */
  private async notify(primary: NotifyEvent | undefined, staleness: Staleness[] | undefined, now: number): Promise<NotificationOutcome[]> {
    if (staleness === undefined) return this.sendToEach(primary, undefined);
    const statePath = alertStatePath(this.options.stateDir, this.job.file);
    const state = readAlertState(statePath);
    const periodOf = (s: Staleness): string => s.lastSuccess ?? 'never';
    const newlyStale = staleness.filter((s) => s.stale === true && state.stale[s.location] !== periodOf(s));
    const staleFacts = newlyStale.map((s) => `stale: ${s.location}, last success ${s.lastSuccess === null ? 'never' : `${s.lastSuccess} (${humanDuration(s.ageMs ?? 0)} ago)`}`);
    const staleEvent: NotifyEvent | undefined =
      newlyStale.length === 0
        ? undefined
        : {
            kind: 'job.stale',
            host: this.host,
            job: this.job.file,
            time: new Date(now).toISOString(),
            targets: newlyStale.map((s) => ({ name: s.location, ok: false, result: `STALE: last success ${s.lastSuccess === null ? 'never' : `${humanDuration(s.ageMs ?? 0)} ago`}` })),
            errors: [],
            facts: [`staleness_factor ${this.job.preflight.stalenessFactor} × the schedule's longest gap has passed without a successful backup`],
          };
    const withStale = primary && staleEvent ? { ...primary, facts: [...primary.facts, ...staleFacts] } : primary;
    const outcomes = await this.sendToEach(withStale, staleEvent);
    const staleTold = staleEvent !== undefined && outcomes.some((o) => o.ok);

    // A stale period is told once; one that nobody could be told is tried again next time.
    const nobodyListens = !this.channels.some((c) => (withStale && this.wants(withStale.kind) && c.accepts(withStale.kind)) || (this.wants('job.stale') && c.accepts('job.stale')));
    const next: AlertState = { version: 1, stale: {} };
    for (const s of staleness) {
      if (s.stale !== true) continue;
      const told = state.stale[s.location] === periodOf(s) || staleTold || nobodyListens;
      if (told) next.stale[s.location] = periodOf(s);
    }
    if (JSON.stringify(next) !== JSON.stringify(state)) await writeFileAtomic(statePath, JSON.stringify(next, null, 2) + '\n', 0o600).catch((error: Error) => this.warn(`cannot record the stale alerts in ${statePath}: ${error.message}`));
    return outcomes;
  }

  /** Per channel: `primary` if notify_on and the channel take it, else `fallback` if they take that. */
  private async sendToEach(primary: NotifyEvent | undefined, fallback: NotifyEvent | undefined): Promise<NotificationOutcome[]> {
    const outcomes: NotificationOutcome[] = [];
    for (const channel of this.channels) {
      const event = [primary, fallback].find((e) => e !== undefined && this.wants(e.kind) && channel.accepts(e.kind));
      if (!event) continue;
      const [delivery] = await deliver([channel], this.redactor.deep(event), this.log);
      if (!delivery!.ok) this.options.warn(`notification through ${channel.name} failed: ${delivery!.error ?? ''}`); // deliver() logged it
      outcomes.push({ channel: channel.name, event: event.kind, ok: delivery!.ok, error: delivery!.error });
    }
    return outcomes;
  }

  /** A run that could not start because its config is broken: run.failed (exit 1) to every channel that takes it. */
  async configFailed(error: ConfigError): Promise<NotificationOutcome[]> {
    const event: NotifyEvent = {
      kind: 'run.failed',
      host: this.host,
      job: this.job.file,
      time: new Date().toISOString(),
      exitCode: 1,
      targets: [],
      errors: error.issues.map(formatIssue),
      facts: [`the configuration has ${error.issues.length} problem(s): nothing was backed up; \`bh config check --config ${this.job.file}\` lists them`],
    };
    this.log.error({ problems: event.errors }, `run not started: ${error.issues.length} problem(s) in the configuration`);
    return this.notify(event, undefined, Date.now());
  }

  private logPing(ping: { signal: string; ok: boolean; error?: string | undefined }): void {
    if (ping.ok) this.log.info({ heartbeat: ping.signal }, `heartbeat ${ping.signal} ping sent`);
    else this.warn(`heartbeat ${ping.signal} ping failed: ${ping.error ?? ''}`);
  }

  private logRun(run: RunRecord): void {
    for (const hook of [run.preHook, run.postHook]) {
      if (hook) this.log.info({ hook: hook.command, exitCode: hook.exitCode, timedOut: hook.timedOut }, `hook ${hook.command}: ${hookSucceeded(hook) ? 'succeeded' : 'FAILED'}`);
    }
    for (const d of run.destinations) {
      const fields = { destination: d.location, ok: d.ok, snapshot: d.snapshotId, bytesAdded: d.bytesAdded, copiedFrom: d.copiedFrom, error: d.error };
      if (d.ok) this.log.info(fields, `${d.location}: ok`);
      else this.log.warn(fields, `${d.location}: FAILED: ${d.error ?? ''}`);
    }
    const fields = { run: run.id, state: run.state, exitCode: exitCodeOfRun(run), started: run.started, finished: run.finished, error: run.error };
    if (run.state === 'success') this.log.info(fields, `run ${run.id} ${run.state}`);
    else this.log.warn(fields, `run ${run.id} ${run.state}${run.error ? `: ${run.error}` : ''}`);
  }

  private async writeMetrics(run: RunRecord, staleness: Staleness[], lastSuccess: Record<string, string>): Promise<void> {
    const file = this.job.alerting.metricsFile;
    if (file === undefined) return;
    const primaries = run.destinations.filter((d) => d.copiedFrom === undefined);
    const metrics: JobMetrics = {
      job: this.job.file,
      lastRun: {
        startedSeconds: Date.parse(run.started) / 1000,
        endedSeconds: Date.parse(run.finished ?? run.started) / 1000,
        exitCode: exitCodeOfRun(run),
        bytesAdded: run.destinations.reduce((sum, d) => sum + (d.bytesAdded ?? 0), 0),
        filesNew: primaries.reduce((sum, d) => sum + (d.filesNew ?? 0), 0),
        filesChanged: primaries.reduce((sum, d) => sum + (d.filesChanged ?? 0), 0),
      },
      destinations: staleness.map((s) => {
        const outcome = run.destinations.find((d) => d.location === s.location);
        const last = lastSuccess[s.location];
        return { name: s.location, lastSuccessSeconds: last === undefined ? undefined : Date.parse(last) / 1000, lastRunOk: outcome?.ok, snapshots: outcome?.snapshots, stale: s.stale ?? undefined };
      }),
    };
    try {
      await writeFileAtomic(file, renderMetrics(metrics), 0o644);
      this.log.info({ file }, 'metrics written');
    } catch (error) {
      this.warn(`cannot write the metrics file ${file}: ${(error as Error).message}`);
    }
  }
}

/** What `bh config check` shows of the alerting setup: never a secret (hosts, counts, formats). */
export function alertingSummary(job: Job): { notifyOn: string[]; channels: string[]; log: string; metrics: string | null } {
  const a = job.alerting;
  const channels: string[] = [];
  if (a.telegram) channels.push(`telegram: ${a.telegram.chatIds.length} chat(s) via ${new URL(a.telegram.apiBase).host}`);
  if (a.smtp) channels.push(`smtp: ${a.smtp.host}:${a.smtp.port} (${a.smtp.tls === 'implicit' ? 'TLS' : a.smtp.tls === 'starttls' ? 'STARTTLS' : 'no TLS'}) to ${a.smtp.to.join(', ') || '--receiver only'}`);
  if (a.localMailTo.length > 0) channels.push(`local-mail: ${a.localMailTo.join(', ')}`);
  if (a.webhook) channels.push(`webhook: ${a.webhook.format} at ${new URL(a.webhook.url).host}`);
  if (job.heartbeat) channels.push(`heartbeat: ${new URL(job.heartbeat.url).host}${job.heartbeat.signalStart ? ' +start' : ''}${job.heartbeat.signalFail ? ' +fail' : ''}`);
  const log = `${a.logging.file ?? '<state dir>/' + jobName(job.file) + '.log'} (${a.logging.level}, rotated at ${a.logging.maxSizeBytes} bytes, ${a.logging.keep} kept)`;
  return { notifyOn: a.notifyOn, channels, log, metrics: a.metricsFile ?? null };
}

/**
 * `bh run` on a config file that does not validate: when its alerting sections themselves are
 * sound, their channels are told (run.failed, exit 1), so a typo elsewhere cannot silence the
 * run's failure. Nothing is told when they are broken too (the error on stderr is all there is).
 */
export async function alertBrokenConfig(file: string, env: Readonly<Record<string, string | undefined>>, options: AlertsOptions, error: ConfigError): Promise<NotificationOutcome[]> {
  let r: Reader;
  let alerting: Job['alerting'];
  try {
    r = new Reader(parseIni(readFileSync(file, 'utf8'), file), env);
    alerting = readAlerting(r, readBotConfig(file, env));
  } catch {
    return [];
  }
  // Nobody to tell: nothing is written either (not even the log in the state directory).
  if (r.issues.length > 0 || !hasChannels(alerting, options.receivers ?? [])) return [];
  const job: AlertingJob = { file, alerting, secretValues: [...r.secretValues], heartbeat: undefined, destinations: [], schedule: [], preflight: { stalenessFactor: 1 } };
  const alerts = JobAlerts.open(job, options);
  try {
    return await alerts.configFailed(error);
  } finally {
    await alerts.close();
  }
}

function readAlertState(path: string): AlertState {
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as AlertState;
    if (value.version === 1 && typeof value.stale === 'object') return value;
  } catch {
    // none yet, or unreadable: nothing was told
  }
  return { version: 1, stale: {} };
}

/** run.failed also when every destination failed: nothing was stored, whatever the exit code. */
function kindOfRun(run: RunRecord): EventKind {
  switch (run.state) {
    case 'success':
      return 'run.succeeded';
    case 'partial':
      return 'run.partial';
    case 'interrupted':
      return 'run.interrupted';
    default:
      return 'run.failed';
  }
}

export function runEvent(job: Pick<Job, 'file'>, run: RunRecord, host: string): NotifyEvent {
  const targets: EventTarget[] = run.destinations.map((d) => ({
    name: d.location,
    ok: d.ok,
    result: d.ok ? ['ok', d.copiedFrom ? 'copied' : '', d.initialized ? 'new repository' : ''].filter((x) => x !== '').join(', ') : `FAILED: ${d.error ?? 'unknown error'}`,
    snapshotId: d.snapshotId,
    bytesAdded: d.bytesAdded,
  }));
  const errors: string[] = [];
  if (run.error) errors.push(run.error);
  for (const d of run.destinations) if (!d.ok && d.error) errors.push(`${d.location}: ${d.error}`);
  if (run.postHook && !hookSucceeded(run.postHook)) errors.push(describeHookFailure('the post-backup', run.postHook));
  return {
    kind: kindOfRun(run),
    host,
    job: job.file,
    time: run.finished ?? new Date().toISOString(),
    runId: run.id,
    exitCode: exitCodeOfRun(run),
    durationMs: run.finished ? Date.parse(run.finished) - Date.parse(run.started) : undefined,
    targets,
    errors: errors.slice(0, MAX_ERRORS),
    facts: [],
  };
}
