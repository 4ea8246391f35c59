/**
 * One run of a job (`bh run`, and each slot of `bh schedule`):
 *
 *   run lock → status "started" → observer.started (heartbeat /start) → pre-hook → pre-flight →
 *   backup to every destination (each followed by [RETENTION]) → database dumps likewise
 *   (dumps.ts) → post-hook → status with the
 *   outcome → observer.finished (heartbeat, notifications, metrics; recorded too) → unlock.
 *
 * A destination that fails is recorded and the others still run. The run never spawns bh: it
 * calls the archiver (runBackup) for the first destination and the copier (copySnapshots) for
 * the others, initialising a repository on first use.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { cacheDirFromEnv } from '../repo/cache.js';
import { parseRawKey, type Secret } from '../repo/keyfile.js';
import type { Repository } from '../repo/repository.js';
import { RepositorySession } from '../repo/session.js';
import { AbortedError } from '../snapshot/archiver.js';
import { runBackup } from '../snapshot/backup.js';
import { copySnapshots } from '../snapshot/copy.js';
import { compilePatterns } from '../snapshot/exclude.js';
import { executeForget, planForget } from '../snapshot/forget.js';
import { DEFAULT_PRUNE_OPTIONS, runPrune } from '../snapshot/prune.js';
import { loadSnapshots } from '../snapshot/snapshot.js';
import type { Destination, Job, JobSecret, Retention } from './config.js';
import { dumpTasks } from './dumps.js';
import { describeHookFailure, hookSucceeded, runHook } from './hooks.js';
import { type DestinationOutcome, type RunRecord, acquireRunLock, jobPaths, recordRun } from './state.js';

/** Every bh run snapshot carries this tag, so `bh snapshots --tag bh-run` tells job runs from manual backups. */
export const RUN_TAG = 'bh-run';

export interface RunEvents {
  /** A line of progress for people ("backing up into /srv/a"). */
  step(message: string): void;
  /** Something that went wrong but did not stop the run. */
  warn(message: string): void;
}

/**
 * Who hears about a run (alerting.ts: heartbeat, notifications, metrics, log). Neither call may
 * throw: a channel that fails is recorded in the run, never fails it.
 */
export interface RunObserver {
  /** Once the run holds its lock and is recorded as started. */
  started(run: RunRecord): Promise<void>;
  /** Once the outcome is recorded; what it adds to `run` (deliveries, pings) is recorded again. */
  finished(run: RunRecord): Promise<void>;
}

export interface RunOptions {
  job: Job;
  stateDir: string;
  dryRun: boolean;
  /** The environment hooks inherit. */
  env: Readonly<Record<string, string | undefined>>;
  signal?: AbortSignal | undefined;
  /** None for a dry run: it tells nobody. */
  observer?: RunObserver | undefined;
  events: RunEvents;
}

/** Thrown inside a run to stop it before any backup (pre-hook or pre-flight): the run is "aborted". */
class PreflightFailure extends Error {}

export async function runJob(options: RunOptions): Promise<RunRecord> {
  const { job, dryRun } = options;
  const paths = jobPaths(options.stateDir, job.file);
  // A dry run changes nothing, the state directory included.
  const lock = dryRun ? undefined : await acquireRunLock(paths.lock);
  const run: RunRecord = { id: randomBytes(8).toString('hex'), state: 'started', dryRun, started: new Date().toISOString(), destinations: [] };
  const save = async (): Promise<void> => {
    if (!dryRun) await recordRun(paths.status, job.file, run);
  };
  try {
    await save();
    await options.observer?.started(run);
    await stepsOfRun(options, run);
  } catch (error) {
    run.state = error instanceof AbortedError || options.signal?.aborted ? 'interrupted' : 'aborted';
    run.error = error instanceof Error ? error.message : String(error);
  } finally {
    run.finished = new Date().toISOString();
    try {
      await save();
      if (options.observer) {
        await options.observer.finished(run);
        await save();
      }
    } finally {
      await lock?.release();
    }
  }
  return run;
}

async function stepsOfRun(options: RunOptions, run: RunRecord): Promise<void> {
  const { job, dryRun, events } = options;
  const hookOptions = { timeoutSeconds: job.hooks.timeoutSeconds, cwd: dirname(job.file), signal: options.signal };
  const baseEnv: Record<string, string | undefined> = { ...options.env, BH_CONFIG_FILE: job.file, BH_RUN_ID: run.id };
  for (const name of job.secretVariables) delete baseEnv[name];

  if (job.hooks.pre !== undefined) {
    if (dryRun) events.step(`dry run: would run the pre-backup hook: ${job.hooks.pre}`);
    else {
      events.step(`running the pre-backup hook: ${job.hooks.pre}`);
      run.preHook = await runHook(job.hooks.pre, { ...hookOptions, env: baseEnv });
      if (!hookSucceeded(run.preHook)) throw new PreflightFailure(`${describeHookFailure('the pre-backup', run.preHook)}: backup not started`);
    }
  }
  checkPreflight(job);
  const secret = await loadSecret(job.secret);

  run.destinations = await fanOut(job.destinations, secret, options, { paths: [job.source], backup: (repo, outcome) => backupStep(repo, outcome, options) });
  const dumps = dumpTasks(job);
  if (dumps.length > 0) run.dumps = [];
  const dumpOptions = { tags: [RUN_TAG], dryRun, env: options.env, signal: options.signal, warn: events.warn, step: events.step };
  for (const task of dumps) {
    run.dumps!.push({ engine: task.engine, destinations: await fanOut(job.destinations, secret, options, { paths: task.paths, backup: (repo, outcome) => task.backup(repo, outcome, dumpOptions) }) });
  }
  if (options.signal?.aborted) throw new AbortedError();

  const outcomes = [...run.destinations, ...(run.dumps ?? []).flatMap((d) => d.destinations)];
  const failed = outcomes.filter((d) => !d.ok);
  run.state = failed.length === 0 ? 'success' : failed.length === outcomes.length ? 'failure' : 'partial';

  if (job.hooks.post !== undefined) {
    if (dryRun) events.step(`dry run: would run the post-backup hook: ${job.hooks.post}`);
    else {
      events.step(`running the post-backup hook: ${job.hooks.post}`);
      run.postHook = await runHook(job.hooks.post, { ...hookOptions, env: { ...baseEnv, ...resultEnv(run) } });
      if (!hookSucceeded(run.postHook)) {
        events.warn(describeHookFailure('the post-backup', run.postHook));
        if (run.state === 'success') run.state = 'partial';
      }
    }
  }
}

/** What the post-backup hook learns about the run, in its environment. */
function resultEnv(run: RunRecord): Record<string, string> {
  return {
    BH_RUN_STATUS: run.state,
    BH_DESTINATIONS_OK: run.destinations.filter((d) => d.ok).map((d) => d.location).join('\n'),
    BH_DESTINATIONS_FAILED: run.destinations.filter((d) => !d.ok).map((d) => d.location).join('\n'),
    BH_SNAPSHOT_IDS: [...run.destinations, ...(run.dumps ?? []).flatMap((d) => d.destinations)].flatMap((d) => (d.snapshotId ? [d.snapshotId] : [])).join(' '),
  };
}

function checkPreflight(job: Job): void {
  if (!existsSync(job.source)) throw new PreflightFailure(`the source directory ${job.source} does not exist`);
  const mount = job.preflight.expectedMount;
  if (mount !== undefined && !isMountPoint(mount)) throw new PreflightFailure(`${mount} is not a mounted file system ([PREFLIGHT] expected_mount): mount it, then run again`);
}

/** A directory is a mount point when it sits on another device than its parent (or is the root). */
function isMountPoint(path: string): boolean {
  try {
    const here = statSync(path);
    const parent = statSync(dirname(path));
    return here.isDirectory() && (here.dev !== parent.dev || here.ino === parent.ino);
  } catch {
    return false;
  }
}

export async function loadSecret(secret: JobSecret): Promise<Secret> {
  if (secret.kind === 'passphrase') return { kind: 'password', password: Buffer.from(secret.passphrase) };
  try {
    return parseRawKey(await readFile(secret.path), secret.path);
  } catch (error) {
    throw new PreflightFailure(`cannot use the key file: ${(error as Error).message}`);
  }
}

/** What a fan-out backs up: the job's source directory, or a database dump (dumps.ts). */
interface BackupWork {
  /** The snapshot's paths, which [RETENTION] groups by. */
  paths: string[];
  backup(repo: Repository, outcome: DestinationOutcome): Promise<void>;
}

/**
 * How the source reaches every destination: one backup, into the first destination that takes
 * it (the primary), then `bh copy` of that snapshot into each later destination, while the
 * primary stays open and locked. A destination that fails is recorded and the next one still
 * runs; when the primary fails, the next destination becomes the primary and gets the backup.
 * A repository that a copy creates shares the primary's chunking keys, so copies to it move
 * chunks and trees as they are, without re-hashing.
 */
async function fanOut(destinations: readonly Destination[], secret: Secret, options: RunOptions, work: BackupWork): Promise<DestinationOutcome[]> {
  const outcomes = new Map<string, DestinationOutcome>();
  const waiting = [...destinations];
  while (waiting.length > 0) {
    const destination = waiting.shift()!;
    const outcome = await inRepository(destination, secret, options, work.paths, undefined, async (primary, primaryOutcome) => {
      await work.backup(primary, primaryOutcome);
      if (primaryOutcome.snapshotId === undefined && !options.dryRun) return;
      for (const other of waiting.splice(0)) {
        outcomes.set(other.location, await inRepository(other, secret, options, work.paths, primary, (target, copyOutcome) => copyStep(primary, primaryOutcome, target, copyOutcome, options)));
      }
    });
    outcomes.set(destination.location, outcome);
  }
  return destinations.map((d) => outcomes.get(d.location)!);
}

/**
 * Opens (or, on first use, creates) the repository of `destination`, holds a shared lock on it
 * while `work` runs, then applies [RETENTION] if the work succeeded. Every error ends up in the
 * outcome (an interruption too), never in the caller.
 */
async function inRepository(
  destination: Destination,
  secret: Secret,
  options: RunOptions,
  paths: string[],
  chunkingFrom: Repository | undefined,
  work: (repo: Repository, outcome: DestinationOutcome) => Promise<void>,
): Promise<DestinationOutcome> {
  const { job, dryRun, events } = options;
  const outcome: DestinationOutcome = { location: destination.location, ok: false };
  if (options.signal?.aborted) return { ...outcome, error: 'interrupted before it started' };
  let session: RepositorySession | undefined;
  try {
    // The nightly run is what the local cache is for (README.md, "Local cache").
    // Retries of a remote backend are warnings of the run (so they reach its log too).
    const backend = { ...destination.backend, onRetry: (line: string) => events.warn(line.replace(/^bh: /, '')) };
    const warn = (message: string): void => events.warn(message);
    const sessionOptions = { backend, cache: { dir: cacheDirFromEnv(options.env), onWarning: warn }, onWarning: warn };
    session = await RepositorySession.openOrInit(destination.location, secret, sessionOptions, () => {
      if (dryRun) return undefined;
      // A missing parent is an unmounted disk far more often than a new one: never create it.
      if (destination.kind === 'local' && !existsSync(dirname(destination.location))) throw new Error(`${dirname(destination.location)} does not exist (is the disk mounted?); bh creates only the repository folder itself`);
      return { chunkingFrom };
    });
    if (!session) {
      events.step(`dry run: ${destination.location} has no repository yet; the run would create one and ${chunkingFrom ? 'copy the new snapshot into it' : 'back up every file'}`);
      return { ...outcome, ok: true };
    }
    if (session.created) {
      outcome.initialized = true;
      events.step(`created a new repository at ${destination.location}`);
    }
    if (!dryRun) await session.acquireLock('shared');
    try {
      await work(session.repo, outcome);
    } finally {
      await session.releaseLock();
    }
    // Only after a complete snapshot: older ones never make way for a failed or partial one.
    if (outcome.ok && job.retention) await applyRetention(session, job.retention, paths, outcome, options);
    // For the metrics file only: a listing that fails here fails nothing.
    if (!dryRun) outcome.snapshots = await session.repo.list('snapshots').then((files) => files.length, () => undefined);
  } catch (error) {
    outcome.ok = false;
    outcome.error = error instanceof AbortedError ? 'interrupted' : error instanceof Error ? error.message : String(error);
    if (!(error instanceof AbortedError)) events.warn(`${destination.location}: ${outcome.error}`);
  } finally {
    await session?.close().catch(() => undefined);
  }
  return outcome;
}

async function backupStep(repo: Repository, outcome: DestinationOutcome, options: RunOptions): Promise<void> {
  const { job, dryRun, events } = options;
  events.step(`${dryRun ? 'dry run: ' : ''}backing up ${job.source} into ${repo.location} (${job.mode})`);
  const result = await runBackup(repo, {
    paths: [job.source],
    mode: job.mode,
    exclude: compilePatterns(job.excludes),
    excludePatterns: job.excludes,
    tags: [RUN_TAG],
    dryRun,
    signal: options.signal,
    onDamagedSnapshot: (id, error) => events.warn(`${repo.location}: snapshots/${id} cannot be read and is left out: ${error.message}`),
    onError: (e) => events.warn(`${repo.location}: cannot read ${e.path}: ${e.message}`),
    onWarning: (message) => events.warn(`${repo.location}: ${message}`),
  });
  outcome.snapshotId = result.snapshotId;
  outcome.bytesAdded = result.counters.bytes_added;
  outcome.filesNew = result.counters.files_new;
  outcome.filesChanged = result.counters.files_changed;
  outcome.unreadable = result.errors.length;
  outcome.ok = result.errors.length === 0;
  if (!outcome.ok) outcome.error = `${result.errors.length} entries could not be read and are missing from the snapshot`;
}

/** Copies the primary's new snapshot into `target`; the copy is as complete as the backup was. */
async function copyStep(primary: Repository, primaryOutcome: DestinationOutcome, target: Repository, outcome: DestinationOutcome, options: RunOptions): Promise<void> {
  const { dryRun, events } = options;
  if (dryRun) {
    events.step(`dry run: would copy the new snapshot from ${primary.location} into ${target.location}`);
    outcome.ok = true;
    return;
  }
  events.step(`copying snapshot ${primaryOutcome.snapshotId!.slice(0, 8)} from ${primary.location} into ${target.location}`);
  const result = await copySnapshots(primary, target, {
    refs: [primaryOutcome.snapshotId!],
    filter: {},
    signal: options.signal,
    onDamagedSnapshot: (id, error) => events.warn(`${target.location}: snapshots/${id} cannot be read and is left out: ${error.message}`),
  });
  outcome.snapshotId = result.copied[0]?.copy ?? result.skipped[0]?.existing;
  outcome.copiedFrom = primary.location;
  outcome.bytesAdded = result.bytesAdded;
  outcome.unreadable = primaryOutcome.unreadable;
  outcome.ok = outcome.snapshotId !== undefined && primaryOutcome.unreadable === 0;
  if (!outcome.ok) outcome.error = primaryOutcome.error ?? 'the copy made no snapshot';
}

/**
 * [RETENTION] on one repository, under a prune lock (backups of other hosts go on): forget this
 * job's own snapshots (tag bh-run, this host, the same paths: the source directory, or /mysql or
 * /postgres for dumps) beyond max_count / max_age_days, by the forget policy engine, which keeps
 * the newest snapshot whatever its age; then, when something was forgotten and [RETENTION]
 * prune is on, prune with its defaults (two-phase: packs it condemns are deleted by a later run,
 * after the safety margin). Snapshots of other hosts,
 * other paths and manual backups are never touched. A failure here fails the destination.
 */
async function applyRetention(session: RepositorySession, retention: Retention, paths: string[], outcome: DestinationOutcome, options: RunOptions): Promise<void> {
  const { dryRun, events } = options;
  const { repo } = session;
  const host = hostname();
  const lock = dryRun ? undefined : await session.acquireLock(retention.prune ? 'prune' : 'shared');
  try {
    const all = await loadSnapshots(repo, (id, error) => events.warn(`${repo.location}: snapshots/${id} cannot be read and is left out of retention: ${error.message}`));
    const own = all.filter((s) => s.record.host === host && s.record.tags.includes(RUN_TAG) && s.record.paths.join('\0') === paths.join('\0'));
    const groups = planForget(own, { maxAgeDays: retention.maxAgeDays, maxCount: retention.maxCount }, { groupBy: ['host', 'paths'], now: new Date() });
    outcome.forgotten = groups.flatMap((g) => g.remove.map((d) => d.snapshot.id));
    if (outcome.forgotten.length === 0) return;
    events.step(`${dryRun ? 'dry run: would forget' : 'forgetting'} ${outcome.forgotten.length} old snapshot(s) in ${repo.location} ([RETENTION])`);
    if (dryRun) return;
    await executeForget(repo, groups);
    if (!retention.prune) return;
    events.step(`pruning ${repo.location}`);
    const summary = await runPrune(repo, { ...DEFAULT_PRUNE_OPTIONS, ownLock: lock, onWarning: (message) => events.warn(`${repo.location}: ${message}`) });
    outcome.prune = { packsDeleted: summary.delete.length, packsCondemned: summary.condemn.length + summary.unindexed.length, bytesDeleted: summary.bytes_deleted };
  } catch (error) {
    outcome.ok = false;
    throw new Error(`retention failed after the backup (the new snapshot is stored): ${(error as Error).message}`);
  } finally {
    await session.releaseLock();
  }
}
