/**
 * Temporary files of interrupted writes (docs/FORMAT.md §1.1). The local and SFTP backends write
 * a file under `.tmp-<hex>` beside its final name and then rename it; a process killed in
 * between leaves the temporary file, up to a whole pack, that no listing shows.
 *
 * One whose last modification is older than the lock stale time (STALE_MS) belongs to no
 * running write: a write in progress keeps its temporary file's mtime fresh, and a process that
 * made no progress for that long counts as dead, as its lock does. `check` lists them all as
 * notes; `prune` removes the stale ones and leaves younger ones to a later run.
 */
import type { Backend, TemporaryFile } from '../backends/backend.js';
import { STALE_MS } from './lock.js';

export interface Temporaries {
  /** Older than the stale time: left by a dead process. */
  stale: TemporaryFile[];
  /** Younger: a write may still be running. */
  young: TemporaryFile[];
}

/** The backend's temporary files, by age at `now`; none on a backend without them (S3). */
export async function findTemporaries(backend: Backend, now: number): Promise<Temporaries> {
  const all = (await backend.temporaries?.list()) ?? [];
  return { stale: all.filter((f) => now - f.mtimeMs >= STALE_MS), young: all.filter((f) => now - f.mtimeMs < STALE_MS) };
}

/** The stale time in words, for messages. */
export const STALE_AGE_TEXT = `${STALE_MS / 60_000} minutes`;
