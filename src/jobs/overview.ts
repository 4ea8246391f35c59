/**
 * `bh status`: what the status file says about the last runs, and what each destination
 * repository holds now (snapshot count and stored bytes, from the backend's listing), with
 * staleness: a destination is stale when its last success is older than staleness_factor
 * ([PREFLIGHT], default 2) times the longest gap of the schedule.
 */
import { RepositorySession } from '../repo/session.js';
import { FILE_TYPES } from '../repo/storage.js';
import type { Job } from './config.js';
import { loadSecret } from './runner.js';
import { scheduleInterval } from './scheduler.js';
import { destinationStaleness } from './stale.js';
import { type RunRecord, jobPaths, readStatus } from './state.js';

export interface DestinationStatus {
  location: string;
  lastSuccess: string | null;
  /** Milliseconds since the last success; null when there never was one. */
  ageMs: number | null;
  /** Null without a schedule (nothing to be late against). */
  stale: boolean | null;
  snapshots: number | null;
  storedBytes: number | null;
  error?: string | undefined;
}

export interface JobStatus {
  config: string;
  statusFile: string;
  /** Longest gap between scheduled runs, ms; null without [SCHEDULE] times. */
  intervalMs: number | null;
  stalenessFactor: number;
  runs: RunRecord[];
  destinations: DestinationStatus[];
  /** Notification deliveries that failed in the runs shown, newest last. */
  failedNotifications: { run: string; channel: string; event: string; error: string }[];
}

export async function jobStatus(job: Job, stateDir: string, now: number, lastRuns = 10): Promise<JobStatus> {
  const paths = jobPaths(stateDir, job.file);
  const status = readStatus(paths.status, job.file);
  const interval = scheduleInterval(job.schedule) ?? null;
  const secret = await loadSecret(job.secret);
  const destinations: DestinationStatus[] = [];
  const staleness = destinationStaleness(job, status, now);
  for (const [i, destination] of job.destinations.entries()) {
    const row: DestinationStatus = { ...staleness[i]!, snapshots: null, storedBytes: null };
    try {
      const session = await RepositorySession.open(destination.location, secret, { backend: destination.backend });
      try {
        const { repo } = session;
        const listings = await Promise.all(FILE_TYPES.map((type) => repo.list(type)));
        row.snapshots = listings[FILE_TYPES.indexOf('snapshots')]!.length;
        row.storedBytes = listings.flat().reduce((sum, file) => sum + file.size, 0);
      } finally {
        await session.close();
      }
    } catch (error) {
      row.error = (error as Error).message;
    }
    destinations.push(row);
  }
  const runs = status.runs.slice(-lastRuns);
  const failedNotifications = runs.flatMap((run) => (run.notifications ?? []).filter((n) => !n.ok).map((n) => ({ run: run.id, channel: n.channel, event: n.event, error: n.error ?? '' })));
  return { config: job.file, statusFile: paths.status, intervalMs: interval, stalenessFactor: job.preflight.stalenessFactor, runs, destinations, failedNotifications };
}
