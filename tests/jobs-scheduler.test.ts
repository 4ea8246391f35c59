/**
 * The scheduler (src/jobs/scheduler.ts) against an injected clock, so days pass in
 * milliseconds: each slot runs exactly once, also with a clock that wakes early or late around
 * minute boundaries or steps backwards; slots that pass during a long run make one run right
 * after it; a failed run does not stop the schedule. Then `bh schedule` itself, stopped by SIGTERM.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Clock, nextSlot, runSchedule, scheduleInterval } from '../src/jobs/scheduler.js';
import { type RunResult, bh, makeTempDir, removeDir, startBh } from './helpers/cli.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** Local time on 2026-03-02 + `day` days. */
function at(day: number, hh: number, mm: number, ss = 0): number {
  return new Date(2026, 2, 2 + day, hh, mm, ss).getTime();
}

class FakeClock implements Clock {
  readonly sleeps: number[] = [];
  constructor(public time: number, private readonly until: number, private readonly controller: AbortController, private readonly jitter: () => number = () => 0) {}
  now(): number {
    return this.time;
  }
  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    this.time += Math.max(0, ms + this.jitter());
    if (this.time >= this.until) this.controller.abort();
  }
}

interface Served {
  slot: number;
  startedAt: number;
}

async function schedule(slots: number[], start: number, until: number, options: { jitter?: () => number; work?: (served: Served, clock: FakeClock) => void } = {}): Promise<{ served: Served[]; errors: number; clock: FakeClock }> {
  const controller = new AbortController();
  const clock = new FakeClock(start, until, controller, options.jitter);
  const served: Served[] = [];
  let errors = 0;
  await runSchedule({
    slots,
    clock,
    signal: controller.signal,
    run: async (slot) => {
      const entry = { slot: slot.getTime(), startedAt: clock.now() };
      served.push(entry);
      options.work?.(entry, clock);
    },
    onError: () => errors++,
  });
  return { served, errors, clock };
}

describe('scheduler', () => {
  it('runs each slot once, at its time, day after day, waking at least once a minute', async () => {
    const { served, clock } = await schedule([3 * 60, 15 * 60], at(0, 0, 0), at(3, 0, 0));
    const expected = [at(0, 3, 0), at(0, 15, 0), at(1, 3, 0), at(1, 15, 0), at(2, 3, 0), at(2, 15, 0)];
    expect(served.map((s) => s.slot)).toEqual(expected);
    expect(served.map((s) => s.startedAt)).toEqual(expected);
    expect(Math.max(...clock.sleeps)).toBeLessThanOrEqual(MINUTE);
  });

  it('never runs a slot twice with a clock that wakes early or late around the minute boundary', async () => {
    let seed = 7;
    const jitter = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return (seed % 3001) - 1500; // ±1.5 s
    };
    const slots = [2 * 60 + 59, 3 * 60, 3 * 60 + 1, 23 * 60 + 59];
    const { served } = await schedule(slots, at(0, 0, 0), at(5, 0, 0), { jitter });
    const slotTimes = served.map((s) => s.slot);
    expect(new Set(slotTimes).size).toBe(slotTimes.length);
    expect(slotTimes.length).toBe(5 * slots.length);
    for (const s of served) {
      expect(s.startedAt).toBeGreaterThanOrEqual(s.slot);
      expect(s.startedAt - s.slot).toBeLessThan(2 * MINUTE);
    }
  });

  it('after a long run, runs once for the slots that passed meanwhile, then keeps to the schedule', async () => {
    const slots = [3 * 60, 4 * 60, 5 * 60, 6 * 60];
    const { served } = await schedule(slots, at(0, 0, 0), at(1, 4, 30), {
      work: (entry, clock) => {
        if (entry.slot === at(0, 3, 0)) clock.time += 2.5 * HOUR; // 03:00 → 05:30
      },
    });
    expect(served.map((s) => [new Date(s.slot).toString(), new Date(s.startedAt).toString()])).toEqual(
      [
        [at(0, 3, 0), at(0, 3, 0)],
        [at(0, 4, 0), at(0, 5, 30)], // 04:00 and 05:00 passed during the long run: one run, at once
        [at(0, 6, 0), at(0, 6, 0)],
        [at(1, 3, 0), at(1, 3, 0)],
        [at(1, 4, 0), at(1, 4, 0)],
      ].map(([slot, start]) => [new Date(slot!).toString(), new Date(start!).toString()]),
    );
  });

  it('goes on after a failed run', async () => {
    const controller = new AbortController();
    const clock = new FakeClock(at(0, 0, 0), at(2, 0, 0), controller);
    const attempts: number[] = [];
    const errors: string[] = [];
    await runSchedule({
      slots: [12 * 60],
      clock,
      signal: controller.signal,
      run: async (slot) => {
        attempts.push(slot.getTime());
        if (attempts.length === 1) throw new Error('destination down');
      },
      onError: (error) => errors.push((error as Error).message),
    });
    expect(attempts).toEqual([at(0, 12, 0), at(1, 12, 0)]);
    expect(errors).toEqual(['destination down']);
  });

  it('does not make up slots from before it started, nor repeat one when the clock steps back', async () => {
    const { served } = await schedule([3 * 60], at(0, 3, 0, 30), at(2, 0, 0), {
      work: (entry, clock) => {
        if (entry.slot === at(1, 3, 0)) clock.time -= 10 * MINUTE; // NTP steps the clock back to 02:50
      },
    });
    expect(served.map((s) => s.slot)).toEqual([at(1, 3, 0)]);
  });

  it('computes the next slot and the longest gap', () => {
    expect(nextSlot(at(0, 3, 0), [3 * 60])).toBe(at(1, 3, 0));
    expect(nextSlot(at(0, 2, 59, 59), [3 * 60, 1])).toBe(at(0, 3, 0));
    expect(nextSlot(at(0, 23, 0), [1, 22 * 60])).toBe(at(1, 0, 1));
    expect(scheduleInterval([3 * 60])).toBe(24 * HOUR);
    expect(scheduleInterval([3 * 60, 9 * 60])).toBe(18 * HOUR);
    expect(scheduleInterval([])).toBeUndefined();
  });
});

describe('bh schedule', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await makeTempDir('bh-jobs-schedule-');
  });
  afterAll(async () => {
    await removeDir(tmp);
  });

  function config(times: string | undefined): string {
    mkdirSync(join(tmp, 'src'), { recursive: true });
    const path = join(tmp, `schedule-${times ? 'with' : 'without'}.ini`);
    writeFileSync(path, `[DEFAULT]\nsource_dir = ${join(tmp, 'src')}\nmode = full\n[MODES]\nlocal = True\nssh = False\n[BACKUPS]\nbackup_dirs = ${join(tmp, 'repo')}\n[ENCRYPTION]\npassphrase = x\n${times ? `[SCHEDULE]\ntimes = ${times}\n` : ''}`);
    return path;
  }

  it('waits for the next slot and stops cleanly (exit 0) on SIGTERM', async () => {
    // A slot a minute or more away, so no run starts during the test.
    const soon = new Date(Date.now() + 3 * MINUTE);
    const times = `${String(soon.getHours()).padStart(2, '0')}:${String(soon.getMinutes()).padStart(2, '0')}`;
    const child = startBh(['schedule', '--config', config(times), '--state-dir', join(tmp, 'state')]);
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    const done = new Promise<number | null>((resolve) => child.on('close', resolve));
    for (let i = 0; i < 200 && !stdout.includes('next run at'); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(stdout).toContain(`at ${times} (local time)`);
    expect(stdout).toContain('next run at');
    child.kill('SIGTERM');
    expect(await done).toBe(0);
    expect(stdout).toContain('bh schedule: stopped');
  });

  it('refuses a job without [SCHEDULE] times', async () => {
    const r: RunResult = await bh(['schedule', '--config', config(undefined)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[SCHEDULE] times is not set');
  });
});
