/**
 * Retention policies: which snapshots `forget` keeps and which it removes, and why. Planning is
 * pure: no I/O, the clock comes in as `now`, calendars are the process's local time zone (TZ);
 * executeForget() carries a plan out.
 *
 * restic's rules (README "Retention"), applied per group of snapshots, newest first:
 * - keep-last N: the N newest snapshots;
 * - keep-hourly/daily/weekly/monthly/yearly N: the newest snapshot of each of the N most recent
 *   calendar buckets (local hour, day, ISO week, month, year) that hold a snapshot. When fewer
 *   than N buckets exist, the group's oldest snapshot is kept as well ("oldest daily snapshot"),
 *   as restic ≥ 0.16 does, so a young repository keeps its first backup;
 * - keep-within D: every snapshot newer than (the newest snapshot not in the future) − D;
 *   snapshots dated after `now` are kept;
 * - keep-tag T: every snapshot that has all the tags of T ("a,b"); an empty T means untagged.
 * The rules are OR'd. Then the old Backup Handler's two knobs cap what the rules keep (they are
 * caps, as `max_*` says; alone they cap "keep everything"):
 * - max-count N: of the snapshots kept, only the N newest stay;
 * - max-age-days N: of the snapshots kept, those older than now − N × 24 h go, except the
 *   newest of them: the old tool emptied a destination whose backups had stopped ("retention
 *   deleting live data"); bh keeps the last one unless `allowEmptyGroup` is set.
 * 0 turns max-count and max-age-days off, as in the INI file.
 */
import type { Repository } from '../repo/repository.js';
import type { Snapshot } from './snapshot.js';

export type CalendarRule = 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly';
export type CountRule = 'last' | CalendarRule;
export const COUNT_RULES: readonly CountRule[] = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'];

/** restic's --keep-within duration: calendar years, months, days and hours. */
export interface Duration {
  years: number;
  months: number;
  days: number;
  hours: number;
}

export interface ForgetPolicy {
  /** Counts: a whole number ≥ 0 or Infinity ("unlimited"); 0 or absent turns the rule off. */
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  within?: Duration;
  /** Each entry is one --keep-tag value: a comma-separated tag list that must all be present. */
  tags?: string[];
  /** The old tool's [RETENTION] max_age_days; 0 or absent: off. */
  maxAgeDays?: number;
  /** The old tool's [RETENTION] max_count; 0 or absent: off. */
  maxCount?: number;
}

export type GroupField = 'host' | 'paths' | 'tags';
export const GROUP_FIELDS: readonly GroupField[] = ['host', 'paths', 'tags'];

/** The values a group shares; only the fields grouped by are present. */
export interface GroupKey {
  host?: string;
  paths?: string[];
  tags?: string[];
}

export interface Decision {
  snapshot: Snapshot;
  reasons: string[];
}

export interface ForgetGroup {
  key: GroupKey;
  /** Oldest first, as `bh snapshots` lists them. */
  keep: Decision[];
  remove: Decision[];
}

export interface PlanOptions {
  groupBy: readonly GroupField[];
  now: Date;
  /** Let a plan remove every snapshot of a group (else EmptyGroupError), and max-age-days the newest. */
  allowEmptyGroup?: boolean;
}

/** A plan would leave a group without any snapshot; nothing has been removed. */
export class EmptyGroupError extends Error {
  constructor(readonly groups: ForgetGroup[]) {
    super(`forget would remove every snapshot of ${groups.map((g) => `${describeGroupKey(g.key)} (${g.remove.length} snapshots)`).join('; ')}`);
    this.name = 'EmptyGroupError';
  }
}

export function isEmptyPolicy(policy: ForgetPolicy): boolean {
  return !hasKeepRule(policy) && !policy.maxAgeDays && !policy.maxCount;
}

function hasKeepRule(policy: ForgetPolicy): boolean {
  return COUNT_RULES.some((rule) => (policy[rule] ?? 0) > 0) || (policy.within !== undefined && !isZeroDuration(policy.within)) || (policy.tags ?? []).length > 0;
}

function isZeroDuration(d: Duration): boolean {
  return d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0;
}

const DURATION_UNITS: Record<string, keyof Duration> = { y: 'years', m: 'months', d: 'days', h: 'hours' };

/** Parses restic's duration format, e.g. "1y2m3d4h" or "7d": whole numbers with units y, m, d, h, each at most once. */
export function parseDuration(text: string): Duration {
  const duration: Duration = { years: 0, months: 0, days: 0, hours: 0 };
  const fail = (why: string): never => {
    throw new Error(`'${text}' is not a duration (${why}): write whole numbers with units y (years), m (months), d (days), h (hours), e.g. 1y6m or 7d12h`);
  };
  if (text === '') fail('it is empty');
  const seen = new Set<string>();
  let rest = text;
  while (rest !== '') {
    const m = /^(\d+)([a-zA-Z]?)/.exec(rest);
    if (!m) fail(`unexpected '${rest[0]}'`);
    const [whole, digits, unit] = m!;
    if (unit === '') fail(`the number ${digits} has no unit`);
    const field = DURATION_UNITS[unit!];
    if (!field) fail(`unknown unit '${unit}'`);
    if (seen.has(unit!)) fail(`unit '${unit}' given twice`);
    seen.add(unit!);
    const value = Number(digits);
    if (!Number.isSafeInteger(value)) fail(`${digits} is too large`);
    duration[field!] = value;
    rest = rest.slice(whole!.length);
  }
  return duration;
}

/** The canonical text of a duration ("1y2m", "0h" for zero), as the reasons quote it. */
export function durationText(d: Duration): string {
  const text = (['y', 'm', 'd', 'h'] as const).map((u) => (d[DURATION_UNITS[u]!] > 0 ? `${d[DURATION_UNITS[u]!]}${u}` : '')).join('');
  return text === '' ? '0h' : text;
}

/**
 * `time` minus `d` in local calendar arithmetic (a month back from 31 March is 3 March, as Go's
 * AddDate). A result before the earliest time a Date holds (about 271 821 BC) is an Invalid Date
 * (getTime() is NaN): JavaScript's date arithmetic does not wrap around.
 */
export function subtractDuration(time: Date, d: Duration): Date {
  const t = new Date(time.getTime());
  t.setFullYear(time.getFullYear() - d.years, time.getMonth() - d.months, time.getDate() - d.days);
  return new Date(t.getTime() - d.hours * 3_600_000);
}

/**
 * The time after which keep-within keeps snapshots: `newest` minus `d`. A duration reaching back
 * past the earliest representable time (`--keep-within 300000y`) covers every snapshot there can
 * be: −Infinity, so everything is kept (an Invalid Date compared with anything is false, which
 * kept nothing).
 */
function withinCutoff(newest: Date, d: Duration): number {
  const cutoff = subtractDuration(newest, d).getTime();
  return Number.isNaN(cutoff) ? -Infinity : cutoff;
}

/** A string naming the local calendar bucket of `time` for `rule`; equal strings, same bucket. */
export function bucketOf(rule: CalendarRule, time: Date): string {
  const y = time.getFullYear();
  const m = time.getMonth() + 1;
  const d = time.getDate();
  switch (rule) {
    case 'hourly':
      return `${y}-${m}-${d} ${time.getHours()}`;
    case 'daily':
      return `${y}-${m}-${d}`;
    case 'weekly':
      return isoWeek(y, m, d);
    case 'monthly':
      return `${y}-${m}`;
    case 'yearly':
      return `${y}`;
  }
}

const DAY_MS = 86_400_000;

/** ISO 8601 week ("2020-W53") of a calendar date: the week belongs to the year of its Thursday. */
function isoWeek(year: number, month: number, day: number): string {
  // Whole days since the epoch, counted in UTC so that DST cannot shift a date.
  const dayNumber = utcDayNumber(year, month, day);
  const weekdayFromMonday = (new Date(dayNumber * DAY_MS).getUTCDay() + 6) % 7;
  const thursday = dayNumber - weekdayFromMonday + 3;
  const weekYear = new Date(thursday * DAY_MS).getUTCFullYear();
  const week = Math.floor((thursday - utcDayNumber(weekYear, 1, 1)) / 7) + 1;
  return `${weekYear}-W${week}`;
}

/** Days since 1970-01-01 of a calendar date (Date.UTC would read the years 0–99 as 1900–1999). */
function utcDayNumber(year: number, month: number, day: number): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return date.getTime() / DAY_MS;
}

export function describeGroupKey(key: GroupKey): string {
  const parts: string[] = [];
  if (key.host !== undefined) parts.push(`host ${key.host}`);
  if (key.paths !== undefined) parts.push(`paths ${key.paths.join(', ')}`);
  if (key.tags !== undefined) parts.push(key.tags.length > 0 ? `tags ${key.tags.join(',')}` : 'no tags');
  return parts.length > 0 ? parts.join(', ') : 'all snapshots';
}

/** Snapshots grouped by the values of `groupBy`, each group newest first, groups in order of first appearance. */
export function groupSnapshots(snapshots: readonly Snapshot[], groupBy: readonly GroupField[]): { key: GroupKey; snapshots: Snapshot[] }[] {
  const groups = new Map<string, { key: GroupKey; snapshots: Snapshot[] }>();
  for (const snapshot of newestFirst(snapshots)) {
    const key: GroupKey = {};
    if (groupBy.includes('host')) key.host = snapshot.record.host;
    if (groupBy.includes('paths')) key.paths = [...snapshot.record.paths].sort();
    if (groupBy.includes('tags')) key.tags = [...new Set(snapshot.record.tags)].sort();
    const name = JSON.stringify([key.host, key.paths, key.tags]);
    let group = groups.get(name);
    if (!group) groups.set(name, (group = { key, snapshots: [] }));
    group.snapshots.push(snapshot);
  }
  return [...groups.values()];
}

/** Newest first; equal times in reverse id order (the reverse of the listing order). */
function newestFirst(snapshots: readonly Snapshot[]): Snapshot[] {
  return [...snapshots].sort((a, b) => Date.parse(b.record.time) - Date.parse(a.record.time) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

function validatePolicy(policy: ForgetPolicy): void {
  for (const rule of COUNT_RULES) {
    const n = policy[rule];
    if (n !== undefined && !(n === Infinity || (Number.isSafeInteger(n) && n >= 0))) throw new RangeError(`keep-${rule} must be a whole number ≥ 0 or unlimited, not ${n}`);
  }
  for (const [name, n] of [['max_age_days', policy.maxAgeDays], ['max_count', policy.maxCount]] as const) {
    if (n !== undefined && !(Number.isSafeInteger(n) && n >= 0)) throw new RangeError(`${name} must be a whole number ≥ 0, not ${n}`);
  }
  const d = policy.within;
  if (d && !Object.values(d).every((v) => Number.isSafeInteger(v) && v >= 0)) throw new RangeError('keep-within must have whole, non-negative units');
}

/**
 * Applies `policy` to each group of `snapshots`. An empty policy keeps everything (with no
 * reasons). Throws EmptyGroupError, before anything is removed, when a group would lose every
 * snapshot and `allowEmptyGroup` is not set.
 */
export function planForget(snapshots: readonly Snapshot[], policy: ForgetPolicy, options: PlanOptions): ForgetGroup[] {
  validatePolicy(policy);
  const plans = groupSnapshots(snapshots, options.groupBy).map(({ key, snapshots: group }) => {
    if (isEmptyPolicy(policy)) return toGroup(key, group, new Map(group.map((s) => [s, []])), () => []);
    const { kept, capped } = applyPolicy(group, policy, options);
    return toGroup(key, group, kept, (s) => capped.get(s) ?? ['kept by no rule']);
  });
  assertNoGroupEmptied(plans, options.allowEmptyGroup ?? false);
  return plans;
}

/**
 * Removes exactly the `named` snapshots (explicit ids); groups are formed over `all`, so a group
 * whose every snapshot is named counts as emptied (EmptyGroupError unless `allowEmptyGroup`).
 * Only groups that lose a snapshot are returned.
 */
export function planForgetNamed(all: readonly Snapshot[], named: readonly Snapshot[], options: Omit<PlanOptions, 'now'>): ForgetGroup[] {
  const ids = new Set(named.map((s) => s.id));
  const plans = groupSnapshots(all, options.groupBy)
    .filter(({ snapshots }) => snapshots.some((s) => ids.has(s.id)))
    .map(({ key, snapshots }) => {
      const kept = new Map(snapshots.filter((s) => !ids.has(s.id)).map((s) => [s, ['not named']]));
      return toGroup(key, snapshots, kept, () => ['named on the command line']);
    });
  assertNoGroupEmptied(plans, options.allowEmptyGroup ?? false);
  return plans;
}

/**
 * Removes the snapshot files a plan removes, oldest first within each group; returns their ids.
 * Only snapshot records go: the data they alone use stays until prune. The caller holds a lock
 * (shared is enough: no other command rewrites snapshot files).
 */
export async function executeForget(repo: Repository, plan: readonly ForgetGroup[]): Promise<string[]> {
  const doomed = plan.flatMap((group) => group.remove.map((decision) => decision.snapshot.id));
  const removed: string[] = [];
  for (const id of doomed) {
    try {
      await repo.removeFile('snapshot', id);
    } catch (error) {
      throw new Error(`removed ${removed.length} of ${doomed.length} snapshots, then snapshots/${id}: ${(error as Error).message}`, { cause: error });
    }
    removed.push(id);
  }
  return removed;
}

function toGroup(key: GroupKey, newestFirstGroup: Snapshot[], kept: Map<Snapshot, string[]>, whyRemoved: (s: Snapshot) => string[]): ForgetGroup {
  const oldestFirst = [...newestFirstGroup].reverse();
  return {
    key,
    keep: oldestFirst.filter((s) => kept.has(s)).map((s) => ({ snapshot: s, reasons: kept.get(s)! })),
    remove: oldestFirst.filter((s) => !kept.has(s)).map((s) => ({ snapshot: s, reasons: whyRemoved(s) })),
  };
}

function assertNoGroupEmptied(plans: ForgetGroup[], allowEmptyGroup: boolean): void {
  const emptied = plans.filter((g) => g.keep.length === 0 && g.remove.length > 0);
  if (emptied.length > 0 && !allowEmptyGroup) throw new EmptyGroupError(emptied);
}

/**
 * The snapshots of one group (newest first) the policy keeps, each with its reasons in decision
 * order, and those the caps took away from them, with the caps' reasons.
 */
function applyPolicy(group: Snapshot[], policy: ForgetPolicy, options: PlanOptions): { kept: Map<Snapshot, string[]>; capped: Map<Snapshot, string[]> } {
  const kept = new Map<Snapshot, string[]>();
  const keep = (s: Snapshot, reason: string): void => {
    const reasons = kept.get(s);
    if (reasons) reasons.push(reason);
    else kept.set(s, [reason]);
  };
  const timeOf = (s: Snapshot): Date => new Date(s.record.time);
  const now = options.now.getTime();
  const ageCutoff = policy.maxAgeDays ? now - policy.maxAgeDays * DAY_MS : -Infinity;
  const capsOnly = !hasKeepRule(policy);

  if (capsOnly) {
    // Only caps given: they cap "keep everything"; the survivors' reasons are filled in below.
    for (const s of group) kept.set(s, []);
  }
  for (const rule of COUNT_RULES) {
    const n = policy[rule] ?? 0;
    if (n === 0) continue;
    const buckets = new Set<string>();
    for (const s of group) {
      const bucket = rule === 'last' ? s.id : bucketOf(rule, timeOf(s));
      if (buckets.has(bucket)) continue;
      if (buckets.size >= n) break;
      buckets.add(bucket);
      keep(s, `${rule} snapshot`);
    }
    // Too few buckets to fill the rule: keep the start of the history too (restic ≥ 0.16).
    // keep-last needs no such rule: unfilled, it already keeps every snapshot.
    if (rule !== 'last' && n !== Infinity && buckets.size < n) keep(group[group.length - 1]!, `oldest ${rule} snapshot`);
  }
  if (policy.within && !isZeroDuration(policy.within)) {
    const text = durationText(policy.within);
    const reference = group.find((s) => timeOf(s).getTime() <= now);
    const cutoff = reference ? withinCutoff(timeOf(reference), policy.within) : Infinity;
    for (const s of group) {
      const t = timeOf(s).getTime();
      if (t > now) keep(s, `within ${text} (dated in the future)`);
      else if (t > cutoff) keep(s, `within ${text}`);
    }
  }
  for (const tagList of policy.tags ?? []) {
    const wanted = tagList.split(',').filter((t) => t !== '');
    for (const s of group) {
      if (wanted.length === 0 ? s.record.tags.length === 0 : wanted.every((t) => s.record.tags.includes(t))) keep(s, wanted.length === 0 ? 'untagged' : `tag ${wanted.join(',')}`);
    }
  }

  // The caps: they only take away from what the rules keep.
  const keptNewestFirst = group.filter((s) => kept.has(s));
  const capped = new Map<Snapshot, string[]>();
  const cap = (s: Snapshot, reason: string): void => void capped.set(s, [...(capped.get(s) ?? []), reason]);
  if (policy.maxCount) for (const s of keptNewestFirst.slice(policy.maxCount)) cap(s, `beyond max_count ${policy.maxCount}`);
  if (policy.maxAgeDays) {
    const [newestKept] = keptNewestFirst;
    for (const s of keptNewestFirst) {
      if (timeOf(s).getTime() >= ageCutoff) continue;
      if (s === newestKept && !options.allowEmptyGroup) keep(s, `newest kept snapshot: max_age_days ${policy.maxAgeDays} does not remove it`);
      else cap(s, `older than max_age_days ${policy.maxAgeDays}`);
    }
  }
  for (const s of capped.keys()) kept.delete(s);
  if (capsOnly) {
    for (const [s, reasons] of kept) {
      if (policy.maxCount) reasons.unshift(`within max_count ${policy.maxCount}`);
      if (policy.maxAgeDays && timeOf(s).getTime() >= ageCutoff) reasons.unshift(`younger than max_age_days ${policy.maxAgeDays}`);
    }
  }
  return { kept, capped };
}
