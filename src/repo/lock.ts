/**
 * Repository locks (`locks/<id>`, docs/FORMAT.md §8): sealed JSON records that say who works on
 * the repository. Three kinds: shared (backup, restore, copy, check and every read-only
 * command), prune (excludes other prunes and exclusive work, not backups: prune's two-phase
 * delete lets backups run beside it), exclusive (repair, key removal: excludes everything).
 *
 * Taking a lock: list, write ours, wait the settle time, list again, and back off if a
 * conflicting lock is there (restic's protocol; safe without atomic rename or file locks, as on
 * S3). A lock is refreshed (rewritten under a new name, then the old one removed) every
 * REFRESH_MS while held and is stale once it is older than STALE_MS, or at once when it names a
 * process of this host that no longer runs.
 */
import { hostname, userInfo } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockConflictError } from './errors.js';

export type LockKind = 'shared' | 'prune' | 'exclusive';

export interface LockRecord {
  version: 1;
  /** When this lock file was written (refreshes write a new one). */
  time: string;
  host: string;
  pid: number;
  username: string;
  /** True for exclusive locks; kept beside `kind` so every reader agrees on what excludes all. */
  exclusive: boolean;
  /** Absent in records of older writers: then `exclusive` decides (exclusive or shared). */
  kind?: LockKind;
  /** When the holder took its first lock (kept across refreshes): prune waits for holders that started before a condemnation. */
  started?: string;
}

export const REFRESH_MS = 5 * 60 * 1000;
export const STALE_MS = 30 * 60 * 1000;
/**
 * A holder counts its own lock as lost once it went this long without a refresh: one refresh
 * interval before others may count it stale, which leaves room for clock skew between hosts.
 */
export const LOST_AFTER_MS = STALE_MS - REFRESH_MS;

export function newLockRecord(kind: LockKind, started: string): LockRecord {
  return { version: 1, time: new Date().toISOString(), host: hostname(), pid: process.pid, username: userInfo().username, exclusive: kind === 'exclusive', kind, started };
}

export function lockKindOf(lock: LockRecord): LockKind {
  return lock.kind ?? (lock.exclusive ? 'exclusive' : 'shared');
}

/** Whether two locks may not be held at once. */
export function conflicts(a: LockKind, b: LockKind): boolean {
  return a === 'exclusive' || b === 'exclusive' || (a === 'prune' && b === 'prune');
}

export function isStale(lock: LockRecord, now = Date.now()): boolean {
  const time = Date.parse(lock.time);
  if (Number.isNaN(time) || now - time > STALE_MS) return true;
  if (lock.host === hostname() && lock.pid !== process.pid) {
    try {
      process.kill(lock.pid, 0);
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }
  return false;
}

export function describeLock(id: string, lock: LockRecord): string {
  return `${lock.username}@${lock.host} (pid ${lock.pid}, ${lockKindOf(lock)} lock ${id.slice(0, 8)}, since ${lock.started ?? lock.time})`;
}

/** Throws LockConflictError when `others` forbid taking a lock of this kind. */
export function assertCompatible(kind: LockKind, others: { id: string; lock: LockRecord }[], location: string): void {
  const blocking = others.filter(({ lock }) => !isStale(lock) && conflicts(kind, lockKindOf(lock)));
  if (blocking.length === 0) return;
  const { id, lock } = blocking[0]!;
  throw new LockConflictError(
    `cannot take a ${kind} lock: ${location} is locked by ${describeLock(id, lock)}; ` +
      `wait for it to finish (--retry-lock DURATION waits), or run 'bh unlock' if that process is gone`,
  );
}

export interface LockOptions {
  /** Keep trying this long (ms) while the repository is locked by others; 0 fails at once. */
  retryMs?: number;
  /** Wait between writing our lock and listing again (ms); default from lockSettleMs(). */
  settleMs?: number;
}

/**
 * Settle time between writing a lock and the second listing. The second listing must show
 * every lock whose write finished before ours did. A local file system shows it at once
 * (rename is atomic and readdir sees it); remote stores get restic's 200 ms for listings that
 * lag a little behind writes (S3-compatible stores other than AWS, SFTP servers on network
 * file systems). BH_LOCK_SETTLE_MS overrides.
 */
export function lockSettleMs(location: string, env: NodeJS.ProcessEnv = process.env): number {
  const fromEnv = Number(env['BH_LOCK_SETTLE_MS']);
  if (env['BH_LOCK_SETTLE_MS'] !== undefined && Number.isFinite(fromEnv) && fromEnv >= 0) return fromEnv;
  return /^[a-z][a-z0-9+]*:/i.test(location) ? 200 : 0;
}

/** Pause before the next attempt while waiting for a lock: grows to 5 s, with jitter so racing lockers drift apart. */
export async function lockRetryPause(attempt: number, remainingMs: number): Promise<void> {
  const base = Math.min(5000, 100 * 2 ** attempt);
  await sleep(Math.max(0, Math.min(remainingMs, base / 2 + Math.random() * base)));
}
