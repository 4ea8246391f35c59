/**
 * Staleness, the alarm for the failure nobody sees (a disk unmounted, a timer disabled, a host
 * down): a destination is stale when its last successful backup is older than staleness_factor
 * ([PREFLIGHT], default 2) times the longest gap of the [SCHEDULE] times, or when it never had
 * one. Without a schedule there is nothing to be late against.
 */
import type { Job } from './config.js';
import { scheduleInterval } from './scheduler.js';
import type { StatusFile } from './state.js';

export interface Staleness {
  location: string;
  lastSuccess: string | null;
  /** Milliseconds since the last success; null when there never was one. */
  ageMs: number | null;
  /** Null without a schedule. */
  stale: boolean | null;
}

export function destinationStaleness(job: Pick<Job, 'destinations' | 'schedule' | 'preflight'>, status: StatusFile, now: number): Staleness[] {
  const interval = scheduleInterval(job.schedule);
  return job.destinations.map((d) => {
    const lastSuccess = status.lastSuccess[d.location] ?? null;
    const ageMs = lastSuccess === null ? null : now - Date.parse(lastSuccess);
    const stale = interval === undefined ? null : ageMs === null || ageMs > job.preflight.stalenessFactor * interval;
    return { location: d.location, lastSuccess, ageMs, stale };
  });
}
