/**
 * `bh run` and `bh status` end to end: real config files, real local destination repositories,
 * the real CLI, a real HTTP server on 127.0.0.1 as the heartbeat monitor. What a run stored is
 * checked by restoring it and comparing with the source on disk; what it recorded by reading
 * the status file; the run lock by running two jobs at once.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobPaths } from '../src/jobs/state.js';
import { ROOT, type RunResult, bh, hashTree, makeTempDir, removeDir, startBh } from './helpers/cli.js';

type Json = Record<string, unknown>;
const PASS = 'job pass: 100% #secret';

let tmp: string;
let source: string;
let server: Server;
let heartbeatUrl: string;
const pings: string[] = [];

beforeAll(async () => {
  tmp = await makeTempDir('bh-jobs-run-');
  source = join(tmp, 'source');
  mkdirSync(join(source, 'sub'), { recursive: true });
  writeFileSync(join(source, 'a.txt'), 'alpha\n');
  writeFileSync(join(source, 'sub/b.bin'), Buffer.alloc(300_000, 7));
  writeFileSync(join(source, 'skip.tmp'), 'excluded');
  server = createServer((req, res) => {
    pings.push(req.url ?? '');
    res.end('OK');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  heartbeatUrl = `http://127.0.0.1:${address.port}/ping/`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await removeDir(tmp);
});

function detail(r: RunResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

let jobCount = 0;
interface TestJob {
  config: string;
  stateDir: string;
  dir: string;
  run(args?: string[]): Promise<RunResult>;
  status(): Json;
}

/** A job directory with its config; `sections` are appended to the required ones. */
function makeJob(destinations: string[], sections = ''): TestJob {
  const dir = join(tmp, `job-${++jobCount}`);
  mkdirSync(dir);
  const config = join(dir, 'config.ini');
  const heartbeat = `[HEARTBEAT]\nurl = ${heartbeatUrl}job-${jobCount}\ntimeout = 5\n`;
  writeFileSync(
    config,
    `[META]\nschema_version = 3\n[DEFAULT]\nsource_dir = ${source}\nmode = incremental\nexclude_patterns = *.tmp\n[MODES]\nlocal = True\nssh = False\n[BACKUPS]\nbackup_dirs = ${destinations.join(', ')}\n[ENCRYPTION]\npassphrase = \${JOB_PASS}\n${heartbeat}${sections}`,
  );
  const stateDir = join(dir, 'state');
  return {
    config,
    stateDir,
    dir,
    run: (args = []) => bh(['run', '--config', config, '--state-dir', stateDir, ...args], { env: { JOB_PASS: PASS } }),
    status: () => JSON.parse(readFileSync(jobPaths(stateDir, config).status, 'utf8')) as Json,
  };
}

function pingsFor(job: TestJob): number {
  return pings.filter((p) => p === `/ping/${job.config.split('/').at(-2)}`).length;
}

async function snapshotsOf(repo: string): Promise<Json[]> {
  const r = await bh(['snapshots', '-r', repo, '--json'], { env: { BH_PASSWORD: PASS } });
  expect(r.code, detail(r)).toBe(0);
  return JSON.parse(r.stdout) as Json[];
}

function runRecord(r: RunResult): Json {
  const line = r.stdout.split('\n').find((l) => l.includes('"message_type":"run"'));
  expect(line, detail(r)).toBeDefined();
  return JSON.parse(line!) as Json;
}

/** Bytes of every file below `dir`, as the file system counts them. */
function bytesBelow(dir: string): number {
  let sum = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    sum += entry.isDirectory() ? bytesBelow(path) : statSync(path).size;
  }
  return sum;
}

describe('bh run', () => {
  it('backs the source up into every destination, runs the hooks, pings the heartbeat and records the run', async () => {
    const repos = [join(tmp, 'ok-1'), join(tmp, 'ok-2')];
    const envFile = join(tmp, 'post-env.txt');
    const job = makeJob(repos, `[HOOKS]\npre_backup = echo preparing; echo on-stderr >&2\npost_backup = env > ${envFile}\n`);
    const r = await job.run(['--json']);
    expect(r.code, detail(r)).toBe(0);
    const run = runRecord(r);
    expect(run['state']).toBe('success');
    expect((run['preHook'] as Json)['output']).toBe('preparing\non-stderr\n');

    const outcomes = run['destinations'] as Json[];
    for (const [i, repo] of repos.entries()) {
      const snapshots = await snapshotsOf(repo);
      expect(snapshots.length).toBe(1);
      expect(snapshots[0]!['id']).toBe(outcomes[i]!['snapshotId']);
      expect(snapshots[0]!['tags']).toEqual(['bh-run']);
      const target = join(tmp, `restore-${i}`);
      const restore = await bh(['restore', 'latest', '-r', repo, '--target', target], { env: { BH_PASSWORD: PASS } });
      expect(restore.code, detail(restore)).toBe(0);
      const expected = await hashTree(source);
      expected.delete('skip.tmp');
      expect(await hashTree(join(target, source))).toEqual(expected);
    }

    // Backed up once, into the first destination; copied into the second.
    expect(outcomes[0]!['copiedFrom']).toBeUndefined();
    expect(outcomes[1]!['copiedFrom']).toBe(repos[0]);
    const check = await bh(['check', '-r', repos[1]!, '--read-data'], { env: { BH_PASSWORD: PASS } });
    expect(check.code, detail(check)).toBe(0);

    const env = readFileSync(envFile, 'utf8');
    expect(env).toContain('BH_RUN_STATUS=success');
    expect(env).toContain(`BH_DESTINATIONS_OK=${repos[0]}\n${repos[1]}`);
    expect(env).toContain(`BH_SNAPSHOT_IDS=${outcomes.map((o) => o['snapshotId']).join(' ')}`);
    expect(env).not.toContain(PASS);
    expect(env).not.toContain('JOB_PASS');

    expect(pingsFor(job)).toBe(1);
    const status = job.status();
    const runs = status['runs'] as Json[];
    expect(runs.length).toBe(1);
    expect(runs[0]!['state']).toBe('success');
    expect(Object.keys(status['lastSuccess'] as Json).sort()).toEqual([...repos].sort());
    expect(statSync(jobPaths(job.stateDir, job.config).lock, { throwIfNoEntry: false })).toBeUndefined();
    expect(readFileSync(jobPaths(job.stateDir, job.config).status, 'utf8')).not.toContain(PASS);
  });

  it('a failing pre-hook aborts the run with exit 2: no repository, no heartbeat, the failure recorded', async () => {
    const repo = join(tmp, 'never-created');
    const job = makeJob([repo], '[HOOKS]\npre_backup = echo disk not ready >&2; exit 7\npost_backup = touch should-not-exist\n');
    const r = await job.run();
    expect(r.code, detail(r)).toBe(2);
    expect(r.stderr).toContain('the pre-backup hook exited with status 7: backup not started');
    expect(r.stdout).toContain('disk not ready');
    expect(existsSync(repo)).toBe(false);
    expect(existsSync(join(job.dir, 'should-not-exist'))).toBe(false);
    expect(pingsFor(job)).toBe(0);
    const run = (job.status()['runs'] as Json[])[0]!;
    expect(run['state']).toBe('aborted');
    expect((run['preHook'] as Json)['exitCode']).toBe(7);
  });

  it('a pre-hook that outlives timeout_seconds is stopped, and the run aborted', async () => {
    const job = makeJob([join(tmp, 'not-this-either')], '[HOOKS]\npre_backup = sleep 30\ntimeout_seconds = 1\n');
    const started = Date.now();
    const r = await job.run();
    expect(r.code, detail(r)).toBe(2);
    expect(r.stderr).toContain('the pre-backup hook did not finish in time and was stopped');
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('an unreachable destination fails alone: the others get their snapshot, exit 3, the status file names it', async () => {
    const blocker = join(tmp, 'a-regular-file');
    writeFileSync(blocker, 'not a directory');
    // The first destination is the unreachable one: the next takes the backup, the last gets a copy.
    const repos = [join(blocker, 'repo'), join(tmp, 'partial-1'), join(tmp, 'missing-disk/repo'), join(tmp, 'partial-2')];
    const envFile = join(tmp, 'partial-env.txt');
    const job = makeJob(repos, `[HOOKS]\npost_backup = env > ${envFile}\n`);
    const r = await job.run();
    expect(r.code, detail(r)).toBe(3);
    expect((await snapshotsOf(repos[1]!)).length).toBe(1);
    expect((await snapshotsOf(repos[3]!)).length).toBe(1);
    expect(existsSync(join(tmp, 'missing-disk'))).toBe(false);
    expect(pingsFor(job)).toBe(0);
    expect(readFileSync(envFile, 'utf8')).toContain(`BH_RUN_STATUS=partial`);
    expect(readFileSync(envFile, 'utf8')).toContain(`BH_DESTINATIONS_FAILED=${repos[0]}\n${repos[2]}`);

    const status = job.status();
    const run = (status['runs'] as Json[])[0]!;
    expect(run['state']).toBe('partial');
    const byLocation = new Map((run['destinations'] as Json[]).map((d) => [d['location'], d]));
    expect(byLocation.get(repos[1])!['ok']).toBe(true);
    expect(byLocation.get(repos[1])!['copiedFrom']).toBeUndefined();
    expect(byLocation.get(repos[3])!['copiedFrom']).toBe(repos[1]);
    expect(byLocation.get(repos[0])!['ok']).toBe(false);
    expect(byLocation.get(repos[0])!['error']).toMatch(/ENOTDIR/);
    expect(byLocation.get(repos[2])!['error']).toContain('does not exist (is the disk mounted?)');
    expect(Object.keys(status['lastSuccess'] as Json).sort()).toEqual([repos[1], repos[3]].sort());
  });

  it('a second run of the same job refuses while the first runs (exit 11); a lock of a dead process is taken over', async () => {
    const repo = join(tmp, 'overlap');
    // The first run's pre-hook waits for a gate the test opens only after the second run returned.
    const gate = join(tmp, 'overlap-gate');
    const job = makeJob([repo], `[HOOKS]\npre_backup = i=0; while [ ! -e ${gate} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n`);
    const lockFile = jobPaths(job.stateDir, job.config).lock;
    const first = startBh(['run', '--config', job.config, '--state-dir', job.stateDir], { env: { JOB_PASS: PASS } });
    const firstDone = new Promise<number | null>((resolve) => first.on('close', resolve));
    // The lock is created (O_EXCL) and then written: wait until it holds its record.
    const readOwner = (): Json | undefined => {
      try {
        return JSON.parse(readFileSync(lockFile, 'utf8')) as Json;
      } catch {
        return undefined;
      }
    };
    for (let i = 0; i < 200 && !readOwner(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    const owner = readOwner()!;
    expect(owner['pid']).toBe(first.pid);
    expect(owner['host']).toBe(hostname());

    const second = await job.run();
    expect(second.code, detail(second)).toBe(11);
    expect(second.stderr).toContain(`another run of this job is in progress (pid ${first.pid} on ${hostname()}`);
    writeFileSync(gate, '');
    expect(await firstDone).toBe(0);
    expect((await snapshotsOf(repo)).length).toBe(1);
    expect(existsSync(lockFile)).toBe(false);

    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => dead.on('close', resolve));
    writeFileSync(lockFile, JSON.stringify({ pid: dead.pid, host: hostname(), started: new Date(0).toISOString() }));
    const third = await job.run();
    expect(third.code, detail(third)).toBe(0);
    expect(existsSync(lockFile)).toBe(false);
    expect((await snapshotsOf(repo)).length).toBe(2);
  });

  it('[RETENTION] forgets only this job\'s own old snapshots after a complete backup, and deletes no data', async () => {
    const repo = join(tmp, 'retention');
    const job = makeJob([repo], '[RETENTION]\nmax_count = 2\nmax_age_days = 30\n');
    const first = await job.run(['--json']);
    expect(first.code, detail(first)).toBe(0);
    const env = { BH_PASSWORD: PASS };
    // An old job snapshot (to age out), and a manual one of the same path (never the job's to forget).
    const old = await bh(['backup', '-r', repo, '--tag', 'bh-run', '--time', '2020-01-01 00:00:00', source, '--json'], { env });
    expect(old.code, detail(old)).toBe(0);
    const manual = await bh(['backup', '-r', repo, '--time', '2020-01-02 00:00:00', source, '--json'], { env });
    expect(manual.code, detail(manual)).toBe(0);
    const idOf = (r: RunResult): string => (r.stdout.split('\n').map((l) => (l ? (JSON.parse(l) as Json) : {})).find((l) => l['message_type'] === 'summary')!['snapshot_id'] as string);
    const oldId = idOf(old);
    const manualId = idOf(manual);

    const packsBefore = readdirSync(join(repo, 'data'), { recursive: true }).filter((f) => String(f).length > 3);
    const second = await job.run(['--json']);
    expect(second.code, detail(second)).toBe(0);
    expect(((runRecord(second)['destinations'] as Json[])[0]!['forgotten'] as string[])).toEqual([oldId]);
    const third = await job.run(['--json']);
    expect(third.code, detail(third)).toBe(0);
    const firstId = (runRecord(first)['destinations'] as Json[])[0]!['snapshotId'];
    expect(((runRecord(third)['destinations'] as Json[])[0]!['forgotten'] as string[])).toEqual([firstId]);
    // Then prune ran: two-phase, so nothing is deleted yet, and the repository checks clean.
    expect((runRecord(third)['destinations'] as Json[])[0]!['prune']).toMatchObject({ packsDeleted: 0 });
    const check = await bh(['check', '-r', repo, '--read-data'], { env });
    expect(check.code, detail(check)).toBe(0);

    const left = (await snapshotsOf(repo)).map((s) => s['id']).sort();
    const runIds = [second, third].map((r) => (runRecord(r)['destinations'] as Json[])[0]!['snapshotId']);
    expect(left).toEqual([manualId, ...runIds].sort());
    const packsAfter = readdirSync(join(repo, 'data'), { recursive: true }).filter((f) => String(f).length > 3);
    for (const pack of packsBefore) expect(packsAfter).toContain(pack);
    // The forgotten snapshots' data is still there for the manual snapshot: it restores whole.
    const target = join(tmp, 'restore-manual');
    const restore = await bh(['restore', manualId, '-r', repo, '--target', target], { env });
    expect(restore.code, detail(restore)).toBe(0);
    expect(await hashTree(join(target, source))).toEqual(await hashTree(source));
  });

  it('SIGTERM stops a run (exit 130): the hook is killed, the lock released, the run recorded as interrupted', async () => {
    const marker = join(tmp, 'hook-survived');
    const job = makeJob([join(tmp, 'interrupted')], `[HOOKS]\npre_backup = sleep 3; touch ${marker}\n`);
    const lockFile = jobPaths(job.stateDir, job.config).lock;
    const child = startBh(['run', '--config', job.config, '--state-dir', job.stateDir], { env: { JOB_PASS: PASS } });
    const done = new Promise<number | null>((resolve) => child.on('close', resolve));
    for (let i = 0; i < 100 && !existsSync(lockFile); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.kill('SIGTERM');
    expect(await done).toBe(130);
    await new Promise((resolve) => setTimeout(resolve, 3500));
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(lockFile)).toBe(false);
    expect(existsSync(join(tmp, 'interrupted'))).toBe(false);
    expect((job.status()['runs'] as Json[])[0]!['state']).toBe('interrupted');
  });

  it('stops before any backup (exit 2) when the source is missing or [PREFLIGHT] expected_mount is not mounted', async () => {
    const notMounted = join(tmp, 'mnt-data');
    mkdirSync(notMounted);
    const job = makeJob([join(notMounted, 'repo')], `[PREFLIGHT]\nenabled = True\nexpected_mount = ${notMounted}\n`);
    const r = await job.run();
    expect(r.code, detail(r)).toBe(2);
    expect(r.stderr).toContain(`${notMounted} is not a mounted file system`);
    expect(existsSync(join(notMounted, 'repo'))).toBe(false);

    const gone = makeJob([join(tmp, 'no-source-repo')]);
    writeFileSync(gone.config, readFileSync(gone.config, 'utf8').replace(`source_dir = ${source}`, `source_dir = ${join(tmp, 'vanished')}`));
    const g = await gone.run();
    expect(g.code, detail(g)).toBe(2);
    expect(g.stderr).toContain(`the source directory ${join(tmp, 'vanished')} does not exist`);
  });

  it('--dry-run reads everything but creates no repository, runs no hook and writes no state', async () => {
    const repo = join(tmp, 'dry');
    const job = makeJob([repo], `[HOOKS]\npre_backup = touch ${join(tmp, 'dry-hook-ran')}\n`);
    const r = await job.run(['--dry-run']);
    expect(r.code, detail(r)).toBe(0);
    expect(r.stdout).toContain('dry run: would run the pre-backup hook');
    expect(existsSync(repo)).toBe(false);
    expect(existsSync(join(tmp, 'dry-hook-ran'))).toBe(false);
    expect(existsSync(job.stateDir)).toBe(false);
    expect(pingsFor(job)).toBe(0);
  });
});

describe('bh status', () => {
  it('shows the last runs, last success per destination, snapshot counts, stored bytes and staleness', async () => {
    const good = join(tmp, 'status-good');
    const bad = join(tmp, 'status-missing-disk/repo');
    const job = makeJob([good, bad], '[SCHEDULE]\ntimes = 03:00, 15:00\n');
    expect((await job.run()).code).toBe(3);
    writeFileSync(join(source, 'new.txt'), 'second run');
    expect((await job.run()).code).toBe(3);

    const r = await bh(['status', '--config', job.config, '--state-dir', job.stateDir, '--json'], { env: { JOB_PASS: PASS } });
    expect(r.code, detail(r)).toBe(0);
    const status = JSON.parse(r.stdout) as { runs: Json[]; intervalMs: number; destinations: Json[]; version: Json };
    expect(status.version['bh']).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
    expect(status.version['node']).toBe(process.versions.node);
    expect(status.runs.map((x) => x['state'])).toEqual(['partial', 'partial']);
    expect(status.intervalMs).toBe(12 * 3600_000);
    const [g, b] = status.destinations;
    expect(g!['location']).toBe(good);
    expect(g!['snapshots']).toBe(2);
    expect(g!['storedBytes']).toBe(bytesBelow(good));
    expect(g!['stale']).toBe(false);
    expect(Date.parse(g!['lastSuccess'] as string)).toBe(Date.parse((status.runs[1]!['finished'] as string)));
    expect(b!['lastSuccess']).toBeNull();
    expect(b!['stale']).toBe(true);
    expect(b!['snapshots']).toBeNull();

    const text = await bh(['status', '--config', job.config, '--state-dir', job.stateDir], { env: { JOB_PASS: PASS } });
    expect(text.code, detail(text)).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`${good}\\s+\\S+\\s+\\S+\\s+no\\s+2\\s+`));
    expect(text.stdout).toMatch(/never\s+-\s+STALE/);
    expect(text.stdout.split('\n')[0]).toMatch(/^bh \d+\.\d+\.\d+ \(commit [0-9a-f]{12}/);
  });
});
