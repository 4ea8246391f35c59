/**
 * Snapshot records (`snapshots/<id>`, docs/FORMAT.md §7) and how commands pick them.
 */
import { resolve } from 'node:path';
import { AuthenticationError } from '../repo/crypto.js';
import type { Repository, SnapshotList } from '../repo/repository.js';
import { DamagedFileError, FormatError } from '../repo/errors.js';
import { uniqueByPrefix } from '../repo/id-prefix.js';
import { NotFoundError } from '../repo/storage.js';
import type { DumpRecord } from './streams.js';

export type BackupMode = 'full' | 'incremental' | 'differential';

export interface SnapshotSummary {
  files_new: number;
  files_changed: number;
  files_unmodified: number;
  dirs_new: number;
  dirs_changed: number;
  dirs_unmodified: number;
  /** Bytes of file content read from disk. */
  bytes_read: number;
  /** Bytes the backup added to the repository (after dedup, compression and encryption). */
  bytes_added: number;
  /** Sum of the sizes of every file in the snapshot. */
  total_bytes: number;
  total_files: number;
  errors: number;
  backup_start: string;
  backup_end: string;
}

export interface SnapshotRecord {
  version: 1;
  time: string;
  tree: string;
  paths: string[];
  host: string;
  username: string;
  uid: number;
  gid: number;
  tags: string[];
  mode: BackupMode;
  parent: string | null;
  excludes: string[];
  program_version: string;
  summary?: SnapshotSummary;
  /** Set by `bh copy`: the id of the snapshot this one copies (the first one, if that was a copy too). */
  original?: string;
  /** Set by `bh repair snapshots`: the id of the snapshot this one replaced. */
  repaired_from?: string;
  /** Set by database dumps: engine, versions, and per file the database and binary log position (FORMAT.md §7). */
  dump?: DumpRecord;
}

export interface Snapshot {
  id: string;
  record: SnapshotRecord;
}

export function validateSnapshot(value: unknown, what: string): SnapshotRecord {
  const s = value as SnapshotRecord;
  const ok =
    typeof s === 'object' && s !== null && s.version === 1 && typeof s.time === 'string' && !Number.isNaN(Date.parse(s.time)) &&
    typeof s.tree === 'string' && /^[0-9a-f]{64}$/.test(s.tree) && Array.isArray(s.paths) && typeof s.host === 'string' &&
    Array.isArray(s.tags) && ['full', 'incremental', 'differential'].includes(s.mode) &&
    (s.original === undefined || (typeof s.original === 'string' && /^[0-9a-f]{64}$/.test(s.original)));
  if (!ok) throw new FormatError(`${what}: snapshot record is malformed`);
  return s;
}

/** The snapshot a copy stands for: its `original`, or itself. Copies of one backup share it. */
export function originOf(snapshot: Snapshot): string {
  return snapshot.record.original ?? snapshot.id;
}

export type DamagedSnapshotHandler = (id: string, error: Error) => void;

/**
 * The readable snapshots of one listing, oldest first, and that listing: the index loaded next
 * must cover it, `repo.loadIndex(snapshots.listing)` (read order, docs/FORMAT.md §10).
 */
export interface LoadedSnapshots extends Array<Snapshot> {
  readonly listing: SnapshotList;
}

/**
 * Lists the snapshots and reads every readable one. A damaged snapshot file is left out and
 * handed to `onDamaged`: one bad record must not keep the others from being listed, restored or
 * used as a parent (`check` still reports it).
 */
export async function loadSnapshots(repo: Repository, onDamaged: DamagedSnapshotHandler): Promise<LoadedSnapshots> {
  const listing = await repo.listSnapshots();
  const out: Snapshot[] = [];
  for (const name of listing.names) {
    try {
      out.push({ id: name, record: validateSnapshot(await repo.loadJson('snapshot', name), `snapshots/${name}`) });
    } catch (error) {
      if (error instanceof NotFoundError) continue;
      if (!(error instanceof FormatError || error instanceof DamagedFileError || error instanceof AuthenticationError)) throw error;
      onDamaged(name, error);
    }
  }
  out.sort((a, b) => Date.parse(a.record.time) - Date.parse(b.record.time) || a.id.localeCompare(b.id));
  return Object.assign(out, { listing });
}

export interface SnapshotFilter {
  /** One host, or any of several (an empty list: any host). */
  host?: string | readonly string[] | undefined;
  tags?: string[] | undefined;
  paths?: string[] | undefined;
}

export function matchesFilter(s: SnapshotRecord, filter: SnapshotFilter): boolean {
  if (typeof filter.host === 'string' ? s.host !== filter.host : filter.host && filter.host.length > 0 && !filter.host.includes(s.host)) return false;
  if (filter.tags && filter.tags.length > 0 && !filter.tags.every((t) => s.tags.includes(t))) return false;
  // Filter paths may be relative or end in '/': compare them as the absolute paths backups record.
  if (filter.paths && filter.paths.length > 0 && !filter.paths.every((p) => s.paths.includes(resolve(p)))) return false;
  return true;
}

/**
 * A local time as `--time` takes it: "YYYY-MM-DD HH:MM:SS" (restic's form; a "T" may stand for
 * the space) or YYYYMMDD_HHMMSS (the old tool's timestamps). A date or time that does not exist
 * (month 13, 30 February, 29 February of a common year, 25:61:61) is refused, not rolled over
 * into the next day, month or year as Date would. A local time that a DST change skips is read
 * as the moment after it.
 */
export function parseLocalTime(text: string): Date {
  const fail = (why: string): never => {
    throw new Error(`'${text}': ${why}; give a local time as "YYYY-MM-DD HH:MM:SS" or YYYYMMDD_HHMMSS`);
  };
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$/.exec(text.trim()) ?? /^(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})$/.exec(text.trim());
  if (!m) return fail('not a time in an accepted form');
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12) fail(`there is no month ${m[2]} (months are 01 to 12)`);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;
  if (day < 1 || day > days) fail(`month ${m[2]} of ${m[1]} has no day ${m[3]} (it has ${days} days)`);
  if (hour > 23 || minute > 59 || second > 59) fail(`there is no time ${m[4]}:${m[5]}:${m[6]} (hours are 00 to 23, minutes and seconds 00 to 59)`);
  const date = new Date(2000, 0, 1, hour, minute, second);
  date.setFullYear(year, month - 1, day); // the Date constructor would read the years 0–99 as 1900–1999
  return date;
}

export class SnapshotNotFoundError extends Error {
  constructor(ref: string) {
    super(`no snapshot matches '${ref}'; list them with 'bh snapshots'`);
    this.name = 'SnapshotNotFoundError';
  }
}

/**
 * Resolves `latest`, a full id, or a unique id prefix (at least 4 hex digits), honouring `filter`
 * for `latest`. `before` limits `latest` to snapshots taken at or before that instant.
 */
export function findSnapshot(snapshots: Snapshot[], ref: string, filter: SnapshotFilter = {}, before?: Date): Snapshot {
  if (ref === 'latest') {
    const candidates = snapshots.filter((s) => matchesFilter(s.record, filter) && (!before || Date.parse(s.record.time) <= before.getTime()));
    const latest = candidates[candidates.length - 1];
    if (!latest) throw new SnapshotNotFoundError(before ? `latest at or before ${before.toISOString()}` : 'latest');
    return latest;
  }
  if (!/^[0-9a-f]{4,64}$/.test(ref)) throw new SnapshotNotFoundError(ref);
  const hit = uniqueByPrefix(snapshots, (s) => s.id, ref, 'snapshot');
  if (!hit) throw new SnapshotNotFoundError(ref);
  return hit;
}

/** The snapshots named by `refs` (each once, in order), or, without refs, every one matching `filter`. */
export function selectSnapshots(all: Snapshot[], refs: readonly string[], filter: SnapshotFilter): Snapshot[] {
  if (refs.length === 0) return all.filter((s) => matchesFilter(s.record, filter));
  const seen = new Set<string>();
  return refs.map((ref) => findSnapshot(all, ref, filter)).filter((s) => !seen.has(s.id) && seen.add(s.id));
}

/** The parent for change detection: none for full, the latest of the same host and paths, or the latest full one. */
export function chooseParent(snapshots: Snapshot[], mode: BackupMode, host: string, paths: string[]): Snapshot | undefined {
  if (mode === 'full') return undefined;
  const key = JSON.stringify([...paths].sort());
  const same = snapshots.filter((s) => s.record.host === host && JSON.stringify([...s.record.paths].sort()) === key && (mode === 'incremental' || s.record.mode === 'full'));
  return same[same.length - 1];
}
