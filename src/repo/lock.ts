/**
 * Repository locks (`locks/<id>`, docs/FORMAT.md §8): sealed JSON records that say who works on
 * the repository. Backups and checks take shared locks; destructive commands take an exclusive
 * one. A lock is refreshed (rewritten under a new name, then the old one removed) every
 * REFRESH_MS while held and is stale once it is older than STALE_MS, or at once when it names a
 * process of this host that no longer runs.
 */
import { hostname, userInfo } from 'node:os';
import { LockConflictError } from './errors.js';

export interface LockRecord {
  version: 1;
  time: string;
  host: string;
  pid: number;
  username: string;
  exclusive: boolean;
}

export const REFRESH_MS = 5 * 60 * 1000;
export const STALE_MS = 30 * 60 * 1000;

export function newLockRecord(exclusive: boolean): LockRecord {
  return { version: 1, time: new Date().toISOString(), host: hostname(), pid: process.pid, username: userInfo().username, exclusive };
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

/** Throws LockConflictError when `others` forbid taking a lock of this kind. */
export function assertCompatible(exclusive: boolean, others: { id: string; lock: LockRecord }[], location: string): void {
  const blocking = others.filter(({ lock }) => !isStale(lock) && (exclusive || lock.exclusive));
  if (blocking.length === 0) return;
  const { id, lock } = blocking[0]!;
  throw new LockConflictError(
    `${location} is locked${lock.exclusive ? ' exclusively' : ''} by ${lock.username}@${lock.host} (pid ${lock.pid}, since ${lock.time}, lock ${id.slice(0, 8)}); ` +
      `wait for it to finish, or run 'bh unlock' if that process is gone`,
  );
}
