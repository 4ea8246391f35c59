/**
 * Crash safety (docs/FORMAT.md §10): a backup killed with SIGKILL at any instant leaves a repository
 * that `check --read-data` passes and that the next backup uses.
 *
 * One source tree (~62 MiB of incompressible data in 35 files) is generated once. Each scenario
 * gets its own copy of one freshly initialised, empty repository, runs `bh backup` with index
 * checkpoints every 0.2 s, and SIGKILLs it at a moment chosen by looking at the repository itself
 * (lock, pack, index and snapshot files appearing), not by wall-clock time. States that last a
 * while (between packs: ~16 MiB of chunking) are caught by polling; the short windows around the
 * end of the backup (final index, snapshot temp file, rename, lock release) by single-stepping the
 * backup (SIGSTOP / look / SIGCONT), so the kill lands exactly in the state the test saw, however
 * loaded the machine is. After the kill:
 *
 * - `bh check --read-data` exits 0 (notes about unreferenced packs are allowed);
 * - the lock the killed run left behind does not block the next backup (shared locks; a lock of
 *   a dead process on this host is stale);
 * - the next backup succeeds, and when an index checkpoint had landed before the kill it adds
 *   fewer bytes than the source holds (what was durable is reused);
 * - the snapshot restores to a tree equal in content to the source.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { type FSWatcher, readdirSync, readFileSync, watch } from 'node:fs';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bh, initRepo, makeTempDir, removeDir, startBh, type RunResult, type TestRepo, hashTree } from './helpers/cli.js';

const MiB = 1024 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;
/** The index checkpoint interval the killed backups run with (seconds). */
const CHECKPOINT = '0.2';
/** Per-scenario limit (ms): each runs several backups, checks and restores of ~62 MiB on two shared cores. */
const SCENARIO_TIMEOUT = 180_000;

let work: string;
let source: string;
let template: string;
let templateEnv: Record<string, string>;
let sourceHashes: Map<string, string>;
let sourceBytes = 0;
/** Packs a complete, uninterrupted backup of `source` writes into a fresh copy of the template. */
let packsOfCleanBackup = 0;
let copies = 0;
/** Backups started by the test and possibly still alive (even SIGSTOPped) if a test times out. */
const children = new Set<ChildProcess>();

// ---- repository inspection (synchronous: runs while the backup is frozen) -----------------------

function namesIn(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => HEX64.test(n));
  } catch {
    return [];
  }
}

function tempFilesIn(dir: string): number {
  try {
    return readdirSync(dir).filter((n) => n.startsWith('.tmp-')).length;
  } catch {
    return 0;
  }
}

function countPacks(repoPath: string): number {
  let n = 0;
  const data = join(repoPath, 'data');
  for (const sub of readdirSync(data)) n += namesIn(join(data, sub)).length;
  return n;
}

/**
 * Counts pack files cheaply: listing all 256 data folders costs milliseconds, so each folder is
 * watched (inotify) and only folders that changed are listed again. `count()` is exact once the
 * event loop has had a turn to take in the events of everything that happened before.
 */
class PackCounter {
  private readonly counts = new Map<string, number>();
  private readonly dirty = new Set<string>();
  private readonly watchers: FSWatcher[] = [];

  constructor(private readonly data: string) {
    for (const sub of readdirSync(data)) {
      this.watchers.push(
        watch(join(data, sub), () => this.dirty.add(sub)),
      );
      this.counts.set(sub, namesIn(join(data, sub)).length);
    }
  }

  count(): number {
    for (const sub of this.dirty) this.counts.set(sub, namesIn(join(this.data, sub)).length);
    this.dirty.clear();
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }

  close(): void {
    for (const w of this.watchers) w.close();
  }
}

interface RepoState {
  packs: number;
  index: number;
  snapshots: number;
  locks: number;
  /** Temp files in snapshots/: a snapshot being written. */
  snapshotTemp: number;
}

/** What a kill trigger looks at. */
class Probe {
  private readonly counter: PackCounter;

  constructor(readonly repoPath: string, readonly started: number) {
    this.counter = new PackCounter(join(repoPath, 'data'));
  }

  get elapsedMs(): number {
    return Date.now() - this.started;
  }

  packs(): number {
    return this.counter.count();
  }


  index(): number {
    return namesIn(join(this.repoPath, 'index')).length;
  }

  snapshots(): number {
    return namesIn(join(this.repoPath, 'snapshots')).length;
  }

  locks(): number {
    return namesIn(join(this.repoPath, 'locks')).length;
  }

  snapshotTemp(): number {
    return tempFilesIn(join(this.repoPath, 'snapshots'));
  }

  state(): RepoState {
    return { packs: this.packs(), index: this.index(), snapshots: this.snapshots(), locks: this.locks(), snapshotTemp: this.snapshotTemp() };
  }

  close(): void {
    this.counter.close();
  }
}

// ---- source tree -------------------------------------------------------------------------------


/** Random bytes generated in 1 MiB pieces. */
function randomFile(size: number): Buffer {
  const pieces: Buffer[] = [];
  for (let left = size; left > 0; left -= MiB) pieces.push(randomBytes(Math.min(MiB, left)));
  return Buffer.concat(pieces);
}

async function makeSource(root: string): Promise<void> {
  const sizes: number[] = [];
  for (let i = 0; i < 3; i++) sizes.push(8 * MiB + 4099 * i); // multi-chunk files
  for (let i = 0; i < 11; i++) sizes.push(3 * MiB + 7919 * i);
  for (let i = 0; i < 21; i++) sizes.push(150_000 + 13_331 * i);
  for (const [i, size] of sizes.entries()) {
    const dir = join(root, `d${i % 4}`, i % 3 === 0 ? 'deep' : '');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `f${String(i).padStart(2, '0')}.bin`), randomFile(size));
    sourceBytes += size;
  }
}

// ---- repository copies and bh runs -------------------------------------------------------------

interface ScenarioRepo extends TestRepo {
  dir: string;
}

/** A fresh copy of the empty template repository (same keys, so the same chunk boundaries). */
async function freshRepo(): Promise<ScenarioRepo> {
  const dir = join(work, `scenario-${++copies}`);
  const path = join(dir, 'repo');
  await cp(template, path, { recursive: true });
  const env = { ...templateEnv, BH_REPO: path };
  return { dir, path, env, run: (args, options = {}) => bh(args, { ...options, env: { ...env, ...options.env } }) };
}

interface KillOutcome {
  /** False when the backup finished on its own before the kill point was reached. */
  killed: boolean;
  /** Repository state when SIGKILL was sent (exact in step mode: the process was frozen). */
  atKill: RepoState;
  /** Repository state once the process is gone. */
  after: RepoState;
  result: RunResult;
  elapsedMs: number;
}

/** Whether every thread of `pid` is stopped (or the process is gone). */
function isFrozen(pid: number): boolean {
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
      const state = stat[stat.lastIndexOf(')') + 2];
      if (state !== 'T' && state !== 't' && state !== 'Z' && state !== 'X') return false;
    }
    return true;
  } catch {
    return true;
  }
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Starts `bh backup` and SIGKILLs it as soon as `trigger` holds.
 *
 * Once `stepFrom` holds, the process is single-stepped: SIGCONT, let it run ~1 ms, SIGSTOP, wait
 * until every thread is stopped, then evaluate `trigger` on the frozen repository and, if it holds,
 * SIGKILL the still-frozen process: the kill lands exactly in the state `trigger` saw, however
 * loaded the machine is. Before that (and always when `stepFrom` is undefined) the process runs
 * freely and `trigger` is polled. Stepping costs speed, so it starts only near the kill point.
 */
async function killBackupWhen(repo: ScenarioRepo, trigger: (probe: Probe) => boolean, stepFrom?: (probe: Probe) => boolean): Promise<KillOutcome> {
  const probe = new Probe(repo.path, Date.now());
  const child = startBh(['backup', '--json', source], { env: { ...repo.env, BH_CHECKPOINT_SECONDS: CHECKPOINT } });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin!.end();
  let exited = false;
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', () => (exited = true));
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  const pid = child.pid!;
  let killed = false;
  let atKill = probe.state();
  let stepping = false;
  try {
    while (!exited) {
      stepping ||= stepFrom?.(probe) ?? false;
      if (stepping) {
        child.kill('SIGSTOP');
        const deadline = Date.now() + 5000;
        while (!isFrozen(pid) && Date.now() < deadline);
      }
      // Let the pack counter take in the file events that led up to this moment.
      await nextTurn();
      await nextTurn();
      if (trigger(probe)) {
        atKill = probe.state();
        killed = child.kill('SIGKILL');
        break;
      }
      if (stepping) child.kill('SIGCONT');
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  } finally {
    if (!exited && !killed) child.kill('SIGKILL');
  }
  const { code, signal } = await closed;
  // A kill sent in the same instant the process exited by itself does not count.
  if (signal !== 'SIGKILL') killed = false;
  const after = probe.state();
  probe.close();
  return { killed, atKill, after, result: { code, signal, stdout, stderr }, elapsedMs: probe.elapsedMs };
}

/**
 * Kills a backup into a fresh repository copy; when the machine was too slow for the kill to land
 * where `landed` wants (a long time slice let the backup run past the point), tries again on
 * another fresh copy, up to `tries` times. Returns the last attempt. `makeTrigger` gives each
 * attempt its own trigger (triggers may keep state).
 */
async function killWithRetries(
  makeTrigger: () => (probe: Probe) => boolean,
  stepFrom: (probe: Probe) => boolean,
  landed: (outcome: KillOutcome) => boolean,
  tries = 3,
): Promise<{ repo: ScenarioRepo; outcome: KillOutcome }> {
  for (let attempt = 1; ; attempt++) {
    const repo = await freshRepo();
    const outcome = await killBackupWhen(repo, makeTrigger(), stepFrom);
    if (landed(outcome) || attempt >= tries) return { repo, outcome };
    if (process.env['BH_TEST_VERBOSE']) console.log(`attempt ${attempt}: kill landed at ${JSON.stringify(outcome.atKill)}; retrying`);
    await removeDir(repo.dir);
  }
}

interface BackupSummary {
  snapshot_id: string | null;
  parent: string | null;
  bytes_added: number;
  total_bytes: number;
  files_new: number;
  files_unmodified: number;
}

function summaryOf(result: RunResult): BackupSummary {
  const lines = result.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as { message_type: string });
  const summary = lines.find((l) => l.message_type === 'summary');
  if (!summary) throw new Error(`no summary in backup output:\n${result.stdout}\n${result.stderr}`);
  return summary as unknown as BackupSummary;
}

function describeRun(what: string, r: RunResult): string {
  return `${what}: exit ${r.code} signal ${r.signal}\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`;
}

/** Everything that must hold after a killed backup; returns the recovery backup's summary. */
async function verifyRecovery(repo: ScenarioRepo, outcome: KillOutcome, restoreSnapshot = 'latest'): Promise<BackupSummary> {
  const context = `kill at ${outcome.elapsedMs} ms, state at kill ${JSON.stringify(outcome.atKill)}, after ${JSON.stringify(outcome.after)}`;
  if (process.env['BH_TEST_VERBOSE']) console.log(context);

  const t0 = Date.now();
  // 1. The repository is sound: every index file, pack and snapshot reads back.
  const check = await repo.run(['check', '--read-data']);
  const t1 = Date.now();
  expect(check.code, `${context}\n${describeRun('check --read-data', check)}`).toBe(0);
  expect(check.stdout).not.toMatch(/^error:/m);

  // 2. A killed process cannot release its lock: it stays behind (and must not block anyone, below).
  if (outcome.killed && outcome.atKill.locks > 0) expect(outcome.after.locks, context).toBeGreaterThan(0);

  // 3. The next backup succeeds and reuses what was durable.
  const backup = await repo.run(['backup', '--json', source]);
  expect(backup.code, `${context}\n${describeRun('backup after kill', backup)}`).toBe(0);
  const summary = summaryOf(backup);
  const t2 = Date.now();
  expect(summary.snapshot_id).toMatch(HEX64);
  expect(summary.total_bytes).toBe(sourceBytes);
  if (outcome.atKill.index > 0 || outcome.atKill.snapshots > 0) {
    expect(summary.bytes_added, `${context}: a checkpoint had landed, so the next backup must reuse its packs`).toBeLessThan(summary.total_bytes);
  }

  // 4. The snapshot restores to exactly the source.
  const target = join(repo.dir, 'restore');
  const restore = await repo.run(['restore', restoreSnapshot, '--target', target]);
  expect(restore.code, describeRun('restore', restore)).toBe(0);
  const restored = await hashTree(join(target, source));
  expect(restored.size).toBe(sourceHashes.size);
  expect(restored).toEqual(sourceHashes);
  if (process.env['BH_TEST_VERBOSE']) console.log(`timing: check ${t1 - t0} ms, backup ${t2 - t1} ms, restore+compare ${Date.now() - t2} ms`);
  return summary;
}

beforeAll(async () => {
  work = await makeTempDir('bh-kill-');
  source = join(work, 'src');
  await makeSource(source);
  sourceHashes = await hashTree(source);
  const init = await initRepo(join(work, 'template'));
  template = init.path;
  templateEnv = init.env;
  // A reference run: how many packs a complete backup writes (to kill just before the snapshot).
  const reference = await freshRepo();
  const done = await reference.run(['backup', '--json', source], { env: { BH_CHECKPOINT_SECONDS: CHECKPOINT } });
  if (done.code !== 0) throw new Error(describeRun('reference backup', done));
  packsOfCleanBackup = countPacks(reference.path);
  await removeDir(reference.dir);
}, SCENARIO_TIMEOUT);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  if (work) await removeDir(work);
});

describe('bh backup killed with SIGKILL', () => {
  it('has a source tree large enough to span several packs', () => {
    expect(sourceBytes).toBeGreaterThan(60 * MiB);
    expect(sourceHashes.size).toBe(35);
    // > 60 MiB in 16 MiB packs: at least 4 data packs and a tree pack.
    expect(packsOfCleanBackup).toBeGreaterThanOrEqual(5);
  });

  it('within 50 ms of starting, right after locking, after its first unindexed pack: the stale locks block nothing', async () => {
    const repo = await freshRepo();
    const checkPasses = async (what: string, outcome: KillOutcome): Promise<void> => {
      expect(outcome.killed, `${what}: ${describeRun('backup', outcome.result)}`).toBe(true);
      const check = await repo.run(['check', '--read-data']);
      expect(check.code, `${what}, state at kill ${JSON.stringify(outcome.atKill)}\n${describeRun('check --read-data', check)}`).toBe(0);
    };

    const atStart = await killBackupWhen(repo, (p) => p.elapsedMs >= 30);
    expect(atStart.elapsedMs).toBeLessThan(2000);
    expect(atStart.after).toEqual({ packs: 0, index: 0, snapshots: 0, locks: 0, snapshotTemp: 0 });
    await checkPasses('killed at start', atStart);

    const afterLock = await killBackupWhen(repo, (p) => p.locks() > 0);
    expect(afterLock.atKill).toMatchObject({ packs: 0, index: 0, snapshots: 0, locks: 1 });
    expect(afterLock.after.locks).toBe(1);
    await checkPasses('killed right after locking', afterLock);

    const afterPack = await killBackupWhen(repo, (p) => p.packs() >= 1);
    expect(afterPack.atKill).toMatchObject({ packs: 1, index: 0, snapshots: 0, locks: 2 });
    expect(afterPack.after.locks).toBe(2);
    await checkPasses('killed after the first pack', afterPack);

    const summary = await verifyRecovery(repo, afterPack);
    // Nothing was indexed, so nothing may be deduplicated against the orphan pack.
    expect(summary.bytes_added).toBeGreaterThanOrEqual(sourceBytes);
    // The two dead processes' locks are still there (they blocked nothing); `bh unlock` clears them.
    expect(namesIn(join(repo.path, 'locks'))).toHaveLength(2);
    const unlock = await repo.run(['unlock']);
    expect(unlock.code, describeRun('unlock', unlock)).toBe(0);
    expect(namesIn(join(repo.path, 'locks'))).toEqual([]);
  }, SCENARIO_TIMEOUT);

  it('after the first index checkpoint: the next backup reuses the checkpointed packs', async () => {
    const repo = await freshRepo();
    const outcome = await killBackupWhen(repo, (p) => p.index() >= 1);
    expect(outcome.killed).toBe(true);
    expect(outcome.atKill.index).toBe(1);
    expect(outcome.atKill.snapshots).toBe(0);
    const summary = await verifyRecovery(repo, outcome);
    // The checkpoint lists at least one full 16 MiB data pack.
    expect(summary.bytes_added).toBeLessThan(sourceBytes - 15 * MiB);
  }, SCENARIO_TIMEOUT);

  it('midway, after several checkpoints', async () => {
    const repo = await freshRepo();
    const outcome = await killBackupWhen(repo, (p) => p.index() >= 2 && p.packs() >= 3);
    expect(outcome.killed).toBe(true);
    expect(outcome.atKill.index).toBeGreaterThanOrEqual(2);
    expect(outcome.atKill.snapshots).toBe(0);
    const summary = await verifyRecovery(repo, outcome);
    // At least two full 16 MiB data packs were indexed.
    expect(summary.bytes_added).toBeLessThan(sourceBytes - 31 * MiB);
  }, SCENARIO_TIMEOUT);

  it('just before the snapshot is written (all packs and the final index on disk)', async () => {
    // Once every pack is on disk, wait for the next index file (the flush's) or the snapshot's
    // temp file, and kill before the snapshot gets its final name.
    const { repo, outcome } = await killWithRetries(
      () => {
        let indexWhenAllPacks = -1;
        return (p: Probe): boolean => {
          if (p.snapshots() > 0 || p.snapshotTemp() > 0) return true;
          if (p.packs() < packsOfCleanBackup) return false;
          const index = p.index();
          if (indexWhenAllPacks < 0) indexWhenAllPacks = index;
          return index > indexWhenAllPacks;
        };
      },
      (p) => p.packs() >= packsOfCleanBackup - 2,
      (o) => o.killed && o.atKill.snapshots === 0,
    );
    expect(outcome.killed, describeRun('backup', outcome.result)).toBe(true);
    expect(outcome.atKill.packs).toBe(packsOfCleanBackup);
    expect(outcome.atKill.snapshots, 'the kill came too late: the snapshot was already written').toBe(0);
    expect(outcome.after.snapshots).toBe(0);
    const summary = await verifyRecovery(repo, outcome);
    // Every data pack was indexed: the next backup only rewrites trees.
    expect(summary.bytes_added).toBeLessThan(MiB);
  }, SCENARIO_TIMEOUT);

  it('while the snapshot file is being written, or right after it got its name', async () => {
    const { repo, outcome } = await killWithRetries(
      () => (p) => p.snapshots() > 0 || p.snapshotTemp() > 0,
      (p) => p.packs() >= packsOfCleanBackup - 1,
      (o) => o.killed,
    );
    expect(outcome.killed, describeRun('backup', outcome.result)).toBe(true);
    // Either no snapshot (killed before the rename) or a whole one: never a partial one.
    expect(outcome.after.snapshots).toBe(outcome.atKill.snapshots);
    await verifyRecovery(repo, outcome);
  }, SCENARIO_TIMEOUT);

  it('just after the snapshot was written: it stays valid, the next backup uses it as parent', async () => {
    const { repo, outcome } = await killWithRetries(
      () => (p) => p.snapshots() > 0,
      (p) => p.packs() >= packsOfCleanBackup - 1,
      (o) => o.killed && o.atKill.locks > 0,
    );
    expect(outcome.killed, describeRun('backup', outcome.result)).toBe(true);
    expect(outcome.atKill.snapshots).toBe(1);
    expect(outcome.after.locks, 'killed before it could release its lock').toBe(1);
    const snapshotId = namesIn(join(repo.path, 'snapshots'))[0]!;
    // The killed run's own snapshot is the one restored and compared with the source.
    const summary = await verifyRecovery(repo, outcome, snapshotId);
    expect(summary.parent).toBe(snapshotId);
    expect(summary.files_unmodified).toBe(sourceHashes.size);
    expect(summary.bytes_added).toBeLessThan(MiB);
  }, SCENARIO_TIMEOUT);
});
