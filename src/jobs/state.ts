/**
 * What a job keeps between runs, in its state directory (README.md, "Moving from Backup
 * Handler"): the run lock `<job>.lock` and the status file `<job>.status.json`.
 *
 * State directory: --state-dir, else $STATE_DIRECTORY (systemd's StateDirectory=), else
 * $XDG_STATE_HOME/bh, else ~/.local/state/bh. A job is named after its config file plus a hash
 * of its absolute path, so two config.ini files in different folders never share a lock.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { basename, join } from 'node:path';
import type { Delivery } from '../notify/channel.js';
import type { HeartbeatOutcome } from '../notify/heartbeat.js';

export function defaultStateDir(env: Readonly<Record<string, string | undefined>>): string {
  const systemd = env['STATE_DIRECTORY']?.split(':')[0];
  if (systemd) return systemd;
  const xdg = env['XDG_STATE_HOME'];
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.local/state'), 'bh');
}

export function jobName(configFile: string): string {
  const stem = basename(configFile).replace(/\.ini$/i, '').replace(/[^A-Za-z0-9_.-]/g, '_');
  return `${stem}-${createHash('sha256').update(configFile).digest('hex').slice(0, 8)}`;
}

export interface JobPaths {
  dir: string;
  lock: string;
  status: string;
}

export function jobPaths(stateDir: string, configFile: string): JobPaths {
  const name = jobName(configFile);
  return { dir: stateDir, lock: join(stateDir, `${name}.lock`), status: join(stateDir, `${name}.status.json`) };
}

/** Writes `text` to `path` so that readers see the old file or the whole new one (temp + fsync + rename). */
export async function writeFileAtomic(path: string, text: string, mode = 0o600): Promise<void> {
  const temp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}

// ---- run lock --------------------------------------------------------------------------------

export interface RunLockOwner {
  pid: number;
  host: string;
  started: string;
}

/** Another run of the same job holds the lock. */
export class RunLockedError extends Error {
  constructor(readonly lockFile: string, readonly owner: RunLockOwner | undefined) {
    super(
      owner
        ? `another run of this job is in progress (pid ${owner.pid} on ${owner.host}, started ${owner.started}); lock file ${lockFile}. ` +
            (owner.host === hostname() ? 'Wait for it to finish.' : 'It was taken on another host: remove the lock file only if you are sure that run is gone.')
        : `another run of this job is starting (lock file ${lockFile} is being written); wait for it to finish`,
    );
    this.name = 'RunLockedError';
  }
}

/** A lock file whose content cannot be read is another run between create and write, unless it is this old. */
const UNREADABLE_LOCK_GRACE_MS = 60_000;

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseOwner(text: string): RunLockOwner | undefined {
  try {
    const value = JSON.parse(text) as Partial<RunLockOwner>;
    if (typeof value.pid === 'number' && typeof value.host === 'string' && typeof value.started === 'string') return value as RunLockOwner;
  } catch {
    // falls through: not a complete lock record
  }
  return undefined;
}

export interface RunLock {
  file: string;
  release(): Promise<void>;
}

/**
 * Takes the job's run lock: created with O_EXCL, holding pid, host and start time. An existing
 * lock is stale (and replaced) only when it names this host and its pid no longer exists.
 */
export async function acquireRunLock(file: string): Promise<RunLock> {
  await mkdir(join(file, '..'), { recursive: true, mode: 0o700 });
  const owner: RunLockOwner = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o644);
      try {
        await handle.writeFile(JSON.stringify(owner) + '\n');
        await handle.sync();
      } finally {
        await handle.close();
      }
      return { file, release: () => releaseRunLock(file) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw lockError(error, file);
    }
    const text = await readFile(file, 'utf8').catch(() => undefined);
    const holder = text === undefined ? undefined : parseOwner(text);
    const age = Date.now() - ((await stat(file).catch(() => undefined))?.mtimeMs ?? 0);
    const stale = holder ? holder.host === owner.host && !processExists(holder.pid) : age > UNREADABLE_LOCK_GRACE_MS;
    if (!stale) throw new RunLockedError(file, holder);
    await unlink(file).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }
}

function lockError(error: unknown, file: string): Error {
  if ((error as NodeJS.ErrnoException).code === 'EEXIST') return new RunLockedError(file, parseOwner(readFileSafe(file)));
  return error as Error;
}

function readFileSafe(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

async function releaseRunLock(file: string): Promise<void> {
  // Only our own lock: a lock that was judged stale and replaced belongs to the other run now.
  const holder = parseOwner(await readFile(file, 'utf8').catch(() => ''));
  if (holder && holder.pid === process.pid && holder.host === hostname()) await unlink(file).catch(() => undefined);
}

// ---- status file -----------------------------------------------------------------------------

/**
 * started: running (or killed without a trace); success: every step worked; partial: some
 * destination or the post-backup hook failed; failure: every destination failed; aborted: the
 * pre-backup hook or a pre-flight check stopped it before any backup; interrupted: SIGINT/SIGTERM.
 */
export type RunState = 'started' | 'success' | 'partial' | 'failure' | 'aborted' | 'interrupted';

export interface DestinationOutcome {
  location: string;
  ok: boolean;
  snapshotId?: string | undefined;
  /** Set when the snapshot was copied from the run's primary destination instead of backed up. */
  copiedFrom?: string | undefined;
  /** The repository was created by this run. */
  initialized?: boolean | undefined;
  /** Entries that could not be read (the snapshot was saved without them). */
  unreadable?: number | undefined;
  bytesAdded?: number | undefined;
  /** Snapshot ids [RETENTION] removed after the backup. */
  forgotten?: string[] | undefined;
  /** What the prune after [RETENTION] did: packs deleted now, packs condemned for a later run. */
  prune?: { packsDeleted: number; packsCondemned: number; bytesDeleted: number } | undefined;
  error?: string | undefined;
  /** Files the backup found new or changed (the primary only: copies move the same files). */
  filesNew?: number | undefined;
  filesChanged?: number | undefined;
  /** Snapshots in the repository once the run (and its retention) was done. */
  snapshots?: number | undefined;
}

/** One notification channel's delivery of one event. */
export type NotificationOutcome = Delivery & { event: string };

export interface HookOutcome {
  command: string;
  exitCode: number | null;
  timedOut: boolean;
  /** stdout and stderr interleaved, the last 64 KiB. */
  output: string;
}

export interface RunRecord {
  id: string;
  state: RunState;
  dryRun: boolean;
  started: string;
  finished?: string | undefined;
  exitCode?: number | undefined;
  error?: string | undefined;
  destinations: DestinationOutcome[];
  /** [MODES] db = True: each engine's dump snapshot, per destination (absent when the job dumps nothing). */
  dumps?: { engine: 'mysql' | 'postgres'; destinations: DestinationOutcome[] }[] | undefined;
  preHook?: HookOutcome | undefined;
  postHook?: HookOutcome | undefined;
  /** The last ping of the run (success or fail). */
  heartbeat?: HeartbeatOutcome | undefined;
  heartbeatStart?: HeartbeatOutcome | undefined;
  notifications?: NotificationOutcome[] | undefined;
}

/** The exit code of a finished run (README.md, "Moving from Backup Handler"). */
export function exitCodeOfRun(run: RunRecord): number {
  switch (run.state) {
    case 'success':
      return 0;
    case 'aborted':
      return 2;
    case 'interrupted':
      return 130;
    default:
      return 3;
  }
}

export interface StatusFile {
  version: 1;
  config: string;
  /** Newest last; the last MAX_RUNS. */
  runs: RunRecord[];
  /** Per destination location: the time of its last successful backup. */
  lastSuccess: Record<string, string>;
}

const MAX_RUNS = 50;

export function readStatus(file: string, config: string): StatusFile {
  try {
    const value = JSON.parse(readFileSync(file, 'utf8')) as StatusFile;
    if (value.version === 1 && Array.isArray(value.runs)) return value;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && !(error instanceof SyntaxError)) throw error;
  }
  return { version: 1, config, runs: [], lastSuccess: {} };
}

/** Records `run` (replacing an earlier record of the same run) and rewrites the file atomically. */
export async function recordRun(file: string, config: string, run: RunRecord): Promise<void> {
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  const status = readStatus(file, config);
  status.runs = [...status.runs.filter((r) => r.id !== run.id), run].slice(-MAX_RUNS);
  if (!run.dryRun && run.finished) {
    for (const d of run.destinations) if (d.ok) status.lastSuccess[d.location] = run.finished;
  }
  await writeFileAtomic(file, JSON.stringify(status, null, 2) + '\n', 0o644);
}
