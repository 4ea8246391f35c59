/**
 * The retention engine (src/snapshot/forget.ts) against an independent, deliberately simple
 * model written here: calendar fields come from Intl with an explicit time zone (not Date's
 * local getters), ISO weeks from "week 1 holds 4 January" (not the engine's Thursday rule), and
 * each rule is brute force over buckets (not one pass newest first). Plus invariants and
 * hand-made examples with known answers (ISO-week year ends, DST days in Europe/Berlin).
 */
// The engine reads local time: fix the zone before any Date is made (Node applies TZ at once).
process.env['TZ'] = 'Europe/Berlin';
const ZONE = 'Europe/Berlin';

import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Duration,
  EmptyGroupError,
  type ForgetGroup,
  type ForgetPolicy,
  type GroupField,
  bucketOf,
  durationText,
  isEmptyPolicy,
  parseDuration,
  planForget,
  subtractDuration,
} from '../src/snapshot/forget.js';
import type { Snapshot } from '../src/snapshot/snapshot.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function snapshot(index: number, time: Date | number, host = 'h1', paths = ['/data'], tags: string[] = []): Snapshot {
  const id = createHash('sha256').update(String(index)).digest('hex');
  return {
    id,
    record: {
      version: 1,
      time: new Date(time).toISOString(),
      tree: '0'.repeat(64),
      paths,
      host,
      username: 'u',
      uid: 0,
      gid: 0,
      tags,
      mode: 'full',
      parent: null,
      excludes: [],
      program_version: 'test',
    },
  };
}

// ---- the model -------------------------------------------------------------------------------

const zoneParts = new Intl.DateTimeFormat('en-US', { timeZone: ZONE, year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', hourCycle: 'h23' });

function civil(ms: number): { year: number; month: number; day: number; hour: number } {
  const get = (type: string): number => Number(zoneParts.formatToParts(ms).find((p) => p.type === type)!.value);
  return { year: get('year'), month: get('month'), day: get('day'), hour: get('hour') };
}

/** ISO week by the definition "week 1 is the Monday-to-Sunday week that holds 4 January". */
function modelIsoWeek(year: number, month: number, day: number): string {
  const date = Date.UTC(year, month - 1, day);
  const mondayOfWeek1 = (y: number): number => {
    const jan4 = Date.UTC(y, 0, 4);
    return jan4 - ((new Date(jan4).getUTCDay() + 6) % 7) * DAY;
  };
  for (const y of [year + 1, year, year - 1]) {
    const start = mondayOfWeek1(y);
    if (start <= date) return `${y}/${Math.floor((date - start) / (7 * DAY)) + 1}`;
  }
  throw new Error('unreachable');
}

type Rule = 'last' | 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly';

function modelBucket(rule: Rule, s: Snapshot): string {
  if (rule === 'last') return s.id;
  const c = civil(Date.parse(s.record.time));
  switch (rule) {
    case 'hourly':
      return `${c.year}/${c.month}/${c.day}/${c.hour}`;
    case 'daily':
      return `${c.year}/${c.month}/${c.day}`;
    case 'weekly':
      return modelIsoWeek(c.year, c.month, c.day);
    case 'monthly':
      return `${c.year}/${c.month}`;
    case 'yearly':
      return `${c.year}`;
  }
}

/** a is newer than b: later time, or the same time and a larger id. */
function newer(a: Snapshot, b: Snapshot): boolean {
  const ta = Date.parse(a.record.time);
  const tb = Date.parse(b.record.time);
  return ta > tb || (ta === tb && a.id > b.id);
}

function newestOf(list: Snapshot[]): Snapshot {
  return list.reduce((best, s) => (newer(s, best) ? s : best));
}

function oldestOf(list: Snapshot[]): Snapshot {
  return list.reduce((best, s) => (newer(best, s) ? s : best));
}

function minusDuration(time: number, d: Duration): number {
  const t = new Date(time);
  t.setFullYear(t.getFullYear() - d.years);
  t.setMonth(t.getMonth() - d.months);
  t.setDate(t.getDate() - d.days);
  return t.getTime() - d.hours * HOUR;
}

/** Kept ids of one group, by brute force. */
function modelKeep(group: Snapshot[], policy: ForgetPolicy, now: number, allowEmptyGroup: boolean): Set<string> {
  const keep = new Set<Snapshot>();
  const rules: Rule[] = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'];
  const within = policy.within && durationText(policy.within) !== '0h' ? policy.within : undefined;
  const anyRule = rules.some((r) => (policy[r] ?? 0) > 0) || within !== undefined || (policy.tags ?? []).length > 0;
  if (!anyRule) for (const s of group) keep.add(s);
  for (const rule of rules) {
    const n = policy[rule] ?? 0;
    if (n === 0) continue;
    const buckets = new Map<string, Snapshot[]>();
    for (const s of group) buckets.set(modelBucket(rule, s), [...(buckets.get(modelBucket(rule, s)) ?? []), s]);
    const newestPerBucket = [...buckets.values()].map(newestOf).sort((a, b) => (newer(a, b) ? -1 : 1));
    for (const s of newestPerBucket.slice(0, n)) keep.add(s);
    if (rule !== 'last' && n !== Infinity && buckets.size < n) keep.add(oldestOf(group));
  }
  if (within) {
    const past = group.filter((s) => Date.parse(s.record.time) <= now);
    const cutoff = past.length > 0 ? minusDuration(Date.parse(newestOf(past).record.time), within) : Infinity;
    for (const s of group) if (Date.parse(s.record.time) > now || Date.parse(s.record.time) > cutoff) keep.add(s);
  }
  for (const list of policy.tags ?? []) {
    const wanted = list.split(',').filter((t) => t !== '');
    for (const s of group) if (wanted.length === 0 ? s.record.tags.length === 0 : wanted.every((t) => s.record.tags.includes(t))) keep.add(s);
  }
  const kept = [...keep].sort((a, b) => (newer(a, b) ? -1 : 1));
  const drop = new Set<Snapshot>();
  if (policy.maxCount) for (const s of kept.slice(policy.maxCount)) drop.add(s);
  if (policy.maxAgeDays) {
    for (const s of kept) if (Date.parse(s.record.time) < now - policy.maxAgeDays * DAY && !(s === kept[0] && !allowEmptyGroup)) drop.add(s);
  }
  return new Set(kept.filter((s) => !drop.has(s)).map((s) => s.id));
}

function modelGroupName(s: Snapshot, groupBy: readonly GroupField[]): string {
  return JSON.stringify([
    groupBy.includes('host') ? s.record.host : null,
    groupBy.includes('paths') ? [...s.record.paths].sort() : null,
    groupBy.includes('tags') ? [...new Set(s.record.tags)].sort() : null,
  ]);
}

function planGroupName(g: ForgetGroup): string {
  return JSON.stringify([g.key.host ?? null, g.key.paths ?? null, g.key.tags ?? null]);
}

// ---- generators -------------------------------------------------------------------------------

const START = Date.UTC(2019, 0, 1);
const HOSTS = ['alpha', 'beta', 'gamma'];
const PATH_SETS = [['/srv'], ['/home'], ['/home', '/srv']];

/** A span picks the density: many snapshots per hour, per day, or spread over years. */
const seriesArb = fc.constantFrom(6 * HOUR, 20 * DAY, 1200 * DAY).chain((span) =>
  fc.array(
    fc.record({
      offset: fc.integer({ min: 0, max: span / 60_000 }),
      host: fc.constantFrom(...HOSTS),
      paths: fc.constantFrom(...PATH_SETS),
      tags: fc.subarray(['nightly', 'weekly']),
    }),
    { minLength: 0, maxLength: 40 },
  ),
);

function toSnapshots(series: { offset: number; host: string; paths: string[]; tags: string[] }[]): Snapshot[] {
  return series.map((e, i) => snapshot(i, START + e.offset * 60_000, e.host, e.paths, e.tags));
}

const countArb = fc.option(fc.oneof(fc.integer({ min: 0, max: 6 }), fc.constant(Infinity)), { nil: undefined });
const durationArb = fc.record({ years: fc.integer({ min: 0, max: 2 }), months: fc.integer({ min: 0, max: 13 }), days: fc.integer({ min: 0, max: 40 }), hours: fc.integer({ min: 0, max: 30 }) });
const policyArb: fc.Arbitrary<ForgetPolicy> = fc.record(
  {
    last: countArb,
    hourly: countArb,
    daily: countArb,
    weekly: countArb,
    monthly: countArb,
    yearly: countArb,
    within: fc.option(durationArb, { nil: undefined }),
    tags: fc.subarray(['nightly', 'weekly', 'nightly,weekly', '']),
    maxAgeDays: fc.option(fc.integer({ min: 0, max: 500 }), { nil: undefined }),
    maxCount: fc.option(fc.integer({ min: 0, max: 8 }), { nil: undefined }),
  },
  { requiredKeys: [] },
);
const groupByArb = fc.subarray<GroupField>(['host', 'paths', 'tags']);
/** `now` relative to the last snapshot: sometimes before it (snapshots in the future), mostly after. */
const nowOffsetArb = fc.integer({ min: -10 * DAY, max: 600 * DAY });

function nowFor(snapshots: Snapshot[], offset: number): Date {
  const latest = Math.max(START, ...snapshots.map((s) => Date.parse(s.record.time)));
  return new Date(latest + offset);
}

function keptIds(plan: ForgetGroup[]): Set<string> {
  return new Set(plan.flatMap((g) => g.keep.map((d) => d.snapshot.id)));
}

// ---- properties -------------------------------------------------------------------------------

describe('planForget against the model', () => {
  it('runs in the zone the model assumes', () => {
    // 2021-03-28 02:30 does not exist in Berlin: the engine's local time must skip to 03:30 CEST.
    expect(new Date(2021, 2, 28, 2, 30).toISOString()).toBe('2021-03-28T01:30:00.000Z');
  });

  it('keeps and removes exactly what the model does, per group', () => {
    fc.assert(
      fc.property(seriesArb, policyArb, groupByArb, nowOffsetArb, fc.boolean(), (series, policy, groupBy, nowOffset, allowEmptyGroup) => {
        const snapshots = toSnapshots(series);
        const now = nowFor(snapshots, nowOffset);
        const groups = new Map<string, Snapshot[]>();
        for (const s of snapshots) groups.set(modelGroupName(s, groupBy), [...(groups.get(modelGroupName(s, groupBy)) ?? []), s]);
        const expected = new Map([...groups].map(([name, group]) => [name, modelKeep(group, policy, now.getTime(), allowEmptyGroup)]));
        const emptied = [...expected.values()].some((kept) => kept.size === 0);

        let plan: ForgetGroup[];
        try {
          plan = planForget(snapshots, policy, { groupBy, now, allowEmptyGroup });
        } catch (error) {
          expect(error).toBeInstanceOf(EmptyGroupError);
          expect(emptied && !allowEmptyGroup).toBe(true);
          return;
        }
        expect(emptied && !allowEmptyGroup).toBe(false);
        expect(new Set(plan.map(planGroupName))).toEqual(new Set(groups.keys()));
        for (const g of plan) {
          const name = planGroupName(g);
          expect(new Set(g.keep.map((d) => d.snapshot.id))).toEqual(expected.get(name));
          const members = groups.get(name)!;
          expect(g.keep.length + g.remove.length).toBe(members.length);
          if (!isEmptyPolicy(policy)) {
            for (const d of [...g.keep, ...g.remove]) expect(d.reasons.length).toBeGreaterThan(0);
          }
        }
      }),
      { numRuns: 400 },
    );
  });

  it('partitions the input: keep ∪ remove is every snapshot, once', () => {
    fc.assert(
      fc.property(seriesArb, policyArb, groupByArb, nowOffsetArb, (series, policy, groupBy, nowOffset) => {
        const snapshots = toSnapshots(series);
        const plan = planForget(snapshots, policy, { groupBy, now: nowFor(snapshots, nowOffset), allowEmptyGroup: true });
        const all = plan.flatMap((g) => [...g.keep, ...g.remove].map((d) => d.snapshot.id));
        expect(all.length).toBe(snapshots.length);
        expect(new Set(all)).toEqual(new Set(snapshots.map((s) => s.id)));
      }),
    );
  });

  it('an empty policy keeps everything', () => {
    fc.assert(
      fc.property(seriesArb, groupByArb, fc.constantFrom<ForgetPolicy>({}, { last: 0, daily: 0, maxAgeDays: 0, maxCount: 0, tags: [] }, { within: { years: 0, months: 0, days: 0, hours: 0 } }), (series, groupBy, policy) => {
        const snapshots = toSnapshots(series);
        expect(isEmptyPolicy(policy)).toBe(true);
        const plan = planForget(snapshots, policy, { groupBy, now: nowFor(snapshots, DAY) });
        expect(plan.every((g) => g.remove.length === 0)).toBe(true);
        expect(keptIds(plan).size).toBe(snapshots.length);
      }),
    );
  });

  it('any calendar, last or within rule keeps the newest snapshot of every group', () => {
    const ruleArb = fc.oneof(
      fc.record({ rule: fc.constantFrom('last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'), n: fc.integer({ min: 1, max: 5 }) }).map(({ rule, n }): ForgetPolicy => ({ [rule]: n })),
      durationArb.filter((d) => durationText(d) !== '0h').map((within): ForgetPolicy => ({ within })),
    );
    fc.assert(
      fc.property(seriesArb, ruleArb, groupByArb, nowOffsetArb, (series, policy, groupBy, nowOffset) => {
        const snapshots = toSnapshots(series);
        for (const g of planForget(snapshots, policy, { groupBy, now: nowFor(snapshots, nowOffset) })) {
          const members = [...g.keep, ...g.remove].map((d) => d.snapshot);
          expect(g.keep.map((d) => d.snapshot.id)).toContain(newestOf(members).id);
        }
      }),
    );
  });

  it('is monotonic in N: a larger count keeps a superset', () => {
    const rulesArb = fc.constantFrom<Rule>('last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly');
    fc.assert(
      fc.property(seriesArb, policyArb, rulesArb, fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 5 }), groupByArb, nowOffsetArb, (series, base, rule, n, more, groupBy, nowOffset) => {
        const snapshots = toSnapshots(series);
        const now = nowFor(snapshots, nowOffset);
        // Without the caps: max_count takes away, so it is not monotonic by design.
        const policy = { ...base, maxCount: undefined, maxAgeDays: undefined };
        const small = keptIds(planForget(snapshots, { ...policy, [rule]: n }, { groupBy, now, allowEmptyGroup: true }));
        const large = keptIds(planForget(snapshots, { ...policy, [rule]: n + more }, { groupBy, now, allowEmptyGroup: true }));
        for (const id of small) expect(large.has(id)).toBe(true);
      }),
    );
  });

  it('buckets like the model on arbitrary instants, DST and year ends included', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(1990, 0, 1), max: Date.UTC(2060, 0, 1) }), (ms) => {
        const s = snapshot(0, ms);
        const c = civil(ms);
        const date = new Date(ms);
        expect([date.getFullYear(), date.getMonth() + 1, date.getDate(), date.getHours()]).toEqual([c.year, c.month, c.day, c.hour]);
        const [weekYear, week] = modelBucket('weekly', s).split('/');
        expect(bucketOf('weekly', date)).toBe(`${weekYear}-W${week}`);
      }),
      { numRuns: 2000 },
    );
  });
});

// ---- examples with known answers ---------------------------------------------------------------

const local = (y: number, m: number, d: number, h = 12, min = 0): Date => new Date(y, m - 1, d, h, min);
const ids = (decisions: { snapshot: Snapshot }[]): string[] => decisions.map((d) => d.snapshot.record.time);
const plan1 = (snapshots: Snapshot[], policy: ForgetPolicy, now: Date, allowEmptyGroup = false): ForgetGroup => {
  const groups = planForget(snapshots, policy, { groupBy: ['host', 'paths'], now, allowEmptyGroup });
  expect(groups).toHaveLength(1);
  return groups[0]!;
};

describe('planForget examples', () => {
  it('keep-daily 7 over 30 days of hourly snapshots keeps each of the last 7 days at 23:00', () => {
    const snapshots = Array.from({ length: 30 * 24 }, (_, i) => snapshot(i, local(2021, 6, 1 + Math.floor(i / 24), i % 24)));
    const g = plan1(snapshots, { daily: 7 }, local(2021, 7, 1));
    expect(ids(g.keep)).toEqual([24, 25, 26, 27, 28, 29, 30].map((d) => local(2021, 6, d, 23).toISOString()));
    expect(g.keep.every((d) => d.reasons.join() === 'daily snapshot')).toBe(true);
    expect(g.remove).toHaveLength(30 * 24 - 7);
    expect(g.remove.every((d) => d.reasons.join() === 'kept by no rule')).toBe(true);
  });

  it('ISO weeks cross the year: 2020-12-28 … 2021-01-03 is 2020-W53, 2021-01-04 starts 2021-W1', () => {
    expect(bucketOf('weekly', local(2020, 12, 28))).toBe('2020-W53');
    expect(bucketOf('weekly', local(2020, 12, 31))).toBe('2020-W53');
    expect(bucketOf('weekly', local(2021, 1, 3, 23, 59))).toBe('2020-W53');
    expect(bucketOf('weekly', local(2021, 1, 4, 0, 0))).toBe('2021-W1');
    expect(bucketOf('weekly', local(2019, 12, 30))).toBe('2020-W1');
    const snapshots = [local(2020, 12, 27), local(2020, 12, 28), local(2020, 12, 31), local(2021, 1, 3), local(2021, 1, 4)].map((t, i) => snapshot(i, t));
    const g = plan1(snapshots, { weekly: 2 }, local(2021, 1, 5));
    expect(ids(g.keep)).toEqual([local(2021, 1, 3), local(2021, 1, 4)].map((t) => t.toISOString()));
  });

  it('DST in Berlin: the repeated autumn hour is one hourly bucket; 23- and 25-hour days are one daily bucket each', () => {
    // 2021-10-31: 02:30 CEST (00:30Z) and 02:30 CET (01:30Z) are both local hour 2.
    const autumn = [snapshot(1, Date.UTC(2021, 9, 31, 0, 30)), snapshot(2, Date.UTC(2021, 9, 31, 1, 30)), snapshot(3, Date.UTC(2021, 9, 31, 2, 30))];
    expect(bucketOf('hourly', new Date(autumn[0]!.record.time))).toBe(bucketOf('hourly', new Date(autumn[1]!.record.time)));
    const g = plan1(autumn, { hourly: 2 }, new Date(Date.UTC(2021, 10, 1)));
    expect(ids(g.keep)).toEqual([autumn[1]!, autumn[2]!].map((s) => s.record.time));
    // 00:30 and 23:30 local of the 25-hour day, then 00:30 of the next day.
    const long = [snapshot(4, Date.UTC(2021, 9, 30, 22, 30)), snapshot(5, Date.UTC(2021, 9, 31, 22, 30)), snapshot(6, Date.UTC(2021, 9, 31, 23, 30))];
    expect(ids(plan1(long, { daily: 2 }, new Date(Date.UTC(2021, 10, 2))).keep)).toEqual([long[1]!, long[2]!].map((s) => s.record.time));
    // The 23-hour day 2021-03-28: 00:30 CET (23:30Z the day before) and 23:30 CEST (21:30Z).
    const short = [snapshot(7, Date.UTC(2021, 2, 27, 23, 30)), snapshot(8, Date.UTC(2021, 2, 28, 21, 30)), snapshot(9, Date.UTC(2021, 2, 28, 22, 30))];
    expect(ids(plan1(short, { daily: 2 }, new Date(Date.UTC(2021, 3, 1))).keep)).toEqual([short[1]!, short[2]!].map((s) => s.record.time));
  });

  it('keep-within counts back from the newest snapshot, not from now', () => {
    const snapshots = [0, 10, 20, 30].map((d, i) => snapshot(i, local(2022, 1, 1 + d)));
    const g = plan1(snapshots, { within: parseDuration('15d') }, local(2023, 6, 1));
    expect(ids(g.keep)).toEqual([local(2022, 1, 21), local(2022, 1, 31)].map((t) => t.toISOString()));
    expect(g.keep[0]!.reasons).toEqual(['within 15d']);
  });

  it('an unfilled rule also keeps the oldest snapshot', () => {
    const snapshots = [local(2021, 3, 1), local(2021, 9, 1), local(2022, 2, 1), local(2022, 5, 1)].map((t, i) => snapshot(i, t));
    const g = plan1(snapshots, { yearly: 5 }, local(2022, 6, 1));
    expect(g.keep.map((d) => [d.snapshot.record.time, d.reasons])).toEqual([
      [local(2021, 3, 1).toISOString(), ['oldest yearly snapshot']],
      [local(2021, 9, 1).toISOString(), ['yearly snapshot']],
      [local(2022, 5, 1).toISOString(), ['yearly snapshot']],
    ]);
  });

  it('max-age-days never removes the newest snapshot unless empty groups are allowed', () => {
    const snapshots = [60, 50, 40].map((age, i) => snapshot(i, local(2024, 5, 1).getTime() - age * DAY));
    const g = plan1(snapshots, { maxAgeDays: 30 }, local(2024, 5, 1));
    expect(ids(g.keep)).toEqual([snapshots[2]!.record.time]);
    expect(g.keep[0]!.reasons).toEqual(['newest kept snapshot: max_age_days 30 does not remove it']);
    expect(g.remove.every((d) => d.reasons.join() === 'older than max_age_days 30')).toBe(true);
    const all = plan1(snapshots, { maxAgeDays: 30 }, local(2024, 5, 1), true);
    expect(all.keep).toHaveLength(0);
  });

  it('max-count caps what the rules keep; together with max-age-days both apply', () => {
    const snapshots = Array.from({ length: 10 }, (_, i) => snapshot(i, local(2024, 5, 1 + i)));
    const g = plan1(snapshots, { daily: 7, maxCount: 3 }, local(2024, 5, 11));
    expect(ids(g.keep)).toEqual([8, 9, 10].map((d) => local(2024, 5, d).toISOString()));
    expect(g.remove.find((d) => d.snapshot.record.time === local(2024, 5, 4).toISOString())!.reasons).toEqual(['beyond max_count 3']);
    const both = plan1(snapshots, { maxCount: 5, maxAgeDays: 3 }, local(2024, 5, 11, 13));
    // The five newest are 6…10 May; of those, younger than 3 days before 11 May 13:00: 9 and 10 May.
    expect(ids(both.keep)).toEqual([9, 10].map((d) => local(2024, 5, d).toISOString()));
    expect(both.keep[1]!.reasons).toEqual(['younger than max_age_days 3', 'within max_count 5']);
  });

  it('keep-tag keeps snapshots with all the tags of one list; a group left empty is refused', () => {
    const snapshots = [snapshot(0, local(2024, 1, 1), 'h1', ['/data'], ['nightly']), snapshot(1, local(2024, 1, 2), 'h1', ['/data'], ['nightly', 'weekly']), snapshot(2, local(2024, 1, 3))];
    expect(ids(plan1(snapshots, { tags: ['nightly'] }, local(2024, 2, 1)).keep)).toHaveLength(2);
    expect(ids(plan1(snapshots, { tags: ['nightly,weekly'] }, local(2024, 2, 1)).keep)).toEqual([local(2024, 1, 2).toISOString()]);
    expect(ids(plan1(snapshots, { tags: [''] }, local(2024, 2, 1)).keep)).toEqual([local(2024, 1, 3).toISOString()]);
    expect(() => planForget(snapshots, { tags: ['absent'] }, { groupBy: ['host'], now: local(2024, 2, 1) })).toThrow(/would remove every snapshot of host h1 \(3 snapshots\)/);
    expect(plan1(snapshots, { tags: ['absent'] }, local(2024, 2, 1), true).remove).toHaveLength(3);
  });

  it('groups by host, paths and tags as asked', () => {
    const snapshots = [snapshot(0, local(2024, 1, 1), 'a', ['/x']), snapshot(1, local(2024, 1, 2), 'a', ['/y']), snapshot(2, local(2024, 1, 3), 'b', ['/x'])];
    const keys = (groupBy: GroupField[]): unknown[] => planForget(snapshots, { last: 1 }, { groupBy, now: local(2024, 2, 1) }).map((g) => g.key);
    expect(keys(['host', 'paths'])).toEqual([{ host: 'b', paths: ['/x'] }, { host: 'a', paths: ['/y'] }, { host: 'a', paths: ['/x'] }]);
    expect(keys(['host'])).toEqual([{ host: 'b' }, { host: 'a' }]);
    expect(keys([])).toEqual([{}]);
  });
});

describe('parseDuration', () => {
  it('reads restic durations', () => {
    expect(parseDuration('1y2m3d4h')).toEqual({ years: 1, months: 2, days: 3, hours: 4 });
    expect(parseDuration('7d')).toEqual({ years: 0, months: 0, days: 7, hours: 0 });
    expect(parseDuration('12h1y')).toEqual({ years: 1, months: 0, days: 0, hours: 12 });
  });

  it('refuses garbage with a message that says how to write one', () => {
    for (const bad of ['', '3w', '1.5d', 'd', '5', '1d1d', '-1d', ' 1d', '1d ', '1y2x', 'seven days', '99999999999999999999d']) {
      expect(() => parseDuration(bad), bad).toThrow(/is not a duration .*units y \(years\), m \(months\), d \(days\), h \(hours\)/);
    }
  });

  it('round-trips through durationText and rejects any other string', () => {
    fc.assert(
      fc.property(durationArb, (d) => {
        const text = durationText(d);
        expect(parseDuration(text)).toEqual(text === '0h' ? { years: 0, months: 0, days: 0, hours: 0 } : d);
      }),
    );
    fc.assert(
      fc.property(fc.string(), (text) => {
        const valid = /^(\d+[ymdh])+$/.test(text) && new Set(text.replace(/\d/g, '')).size === text.replace(/\d/g, '').length;
        if (valid) expect(() => parseDuration(text)).not.toThrow();
        else expect(() => parseDuration(text)).toThrow(/is not a duration/);
      }),
      { numRuns: 2000 },
    );
  });

  it('subtracts calendar months as Go does: a month before 31 March is 3 March', () => {
    expect(subtractDuration(local(2021, 3, 31), parseDuration('1m'))).toEqual(local(2021, 3, 3));
    expect(subtractDuration(local(2021, 3, 28, 12), parseDuration('1d'))).toEqual(local(2021, 3, 27, 12));
  });
});
