/**
 * `bh schedule`: run a job at its [SCHEDULE] times (daily HH:MM, local time), in the foreground.
 *
 * Each slot is a point in time and is served at most once: the scheduler remembers the last
 * slot it served and only ever looks for slots after it, so neither a wake-up near a minute
 * boundary nor a clock stepped backwards runs a slot twice. A slot that passes while a run is
 * going (a long run) is not lost: when the run ends, one more run starts at once and serves
 * every slot that passed meanwhile (several missed slots make one run, not a burst). Slots
 * before the scheduler started are not run (that is the systemd timer's Persistent= job).
 * The old tool's "tolerance-based matching" (check every interval_minutes, run if within a
 * window) could run twice or never; this does neither.
 *
 * Waiting is done in steps of at most a minute, so a suspended machine or a stepped clock is
 * noticed within a minute. The clock is injectable so tests need not wait for real minutes.
 */

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or as soon as `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    }),
};

const MAX_SLEEP_MS = 60_000;

/** The first slot strictly after `after` (ms since the epoch); `slots` are minutes after local midnight. */
export function nextSlot(after: number, slots: readonly number[]): number {
  if (slots.length === 0) throw new Error('no schedule times');
  const day = new Date(after);
  let best = Infinity;
  for (let offset = 0; offset <= 2 && best === Infinity; offset++) {
    for (const minutes of slots) {
      const t = new Date(day.getFullYear(), day.getMonth(), day.getDate() + offset, Math.floor(minutes / 60), minutes % 60).getTime();
      if (t > after && t < best) best = t;
    }
  }
  return best;
}

export interface ScheduleOptions {
  slots: readonly number[];
  clock: Clock;
  signal: AbortSignal;
  /** One run of the job for the slot at `slot`; a throw is reported and the schedule goes on. */
  run(slot: Date): Promise<void>;
  onWaiting?(next: Date): void;
  onError(error: unknown, slot: Date): void;
}

/** Runs until `signal` aborts; returns once any run in progress has finished. */
export async function runSchedule(options: ScheduleOptions): Promise<void> {
  const { slots, clock, signal } = options;
  let served = clock.now();
  let announced = -1;
  while (!signal.aborted) {
    const due = nextSlot(served, slots);
    const now = clock.now();
    if (now < due) {
      if (due !== announced) options.onWaiting?.(new Date(due));
      announced = due;
      await clock.sleep(Math.min(due - now, MAX_SLEEP_MS), signal);
      continue;
    }
    // Every slot up to now is served by this one run.
    served = due;
    for (let next = nextSlot(served, slots); next <= now; next = nextSlot(served, slots)) served = next;
    try {
      await options.run(new Date(due));
    } catch (error) {
      options.onError(error, new Date(due));
    }
  }
}

/** The longest gap between two consecutive slots (a day for one time a day): what "on time" means for staleness. */
export function scheduleInterval(slots: readonly number[]): number | undefined {
  if (slots.length === 0) return undefined;
  let longest = 0;
  slots.forEach((minutes, i) => {
    const next = i + 1 < slots.length ? slots[i + 1]! : slots[0]! + 24 * 60;
    longest = Math.max(longest, next - minutes);
  });
  return longest * 60_000;
}
