/**
 * Locks: kinds and conflicts through the real CLI (exit 11 naming the holder), --retry-lock,
 * stale locks of dead processes, and the write / settle / re-list protocol raced in-process on
 * a local backend (two lockers never both hold conflicting locks).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openBackend, type Backend } from '../src/backends/index.js';
import { LockConflictError, LockLostError } from '../src/repo/errors.js';
import type { LockKind } from '../src/repo/lock.js';
import { Repository, type RepositoryLock } from '../src/repo/repository.js';
import { initRepo, makeTempDir, removeDir, type TestRepo } from './helpers/cli.js';
import { openLibraryRepo } from './helpers/repo-lib.js';

let work: string;
let repo: TestRepo;

beforeAll(async () => {
  work = await makeTempDir('bh-locks-');
  repo = await initRepo(await mkdtemp(join(work, 'r-')));
});
afterAll(async () => {
  await removeDir(work);
});

async function holding<T>(kind: LockKind, body: () => Promise<T>): Promise<T> {
  const library = await openLibraryRepo(repo);
  const lock = await library.lock(kind);
  try {
    return await body();
  } finally {
    await lock.release();
  }
}

describe('locks', () => {
  it('an exclusive lock holder makes shared commands fail with exit 11 naming it; shared ones coexist', async () => {
    await holding('exclusive', async () => {
      const result = await repo.run(['snapshots']);
      expect(result.code).toBe(11);
      expect(result.stderr).toContain(`${userInfo().username}@${hostname()} (pid ${process.pid}, exclusive lock`);
      // Every command that opens the repository locks it first.
      for (const args of [['ls', 'latest'], ['restore', 'latest', '--target', join(work, 'never')], ['stats'], ['backup', work], ['key', 'list']]) {
        const other = await repo.run(args);
        expect(other.code, `bh ${args.join(' ')}: ${other.stderr}`).toBe(11);
      }
    });
    await holding('shared', async () => {
      expect((await repo.run(['snapshots'])).code).toBe(0);
      expect((await repo.run(['check'])).code).toBe(0);
      const repair = await repo.run(['repair', 'index']);
      expect(repair.code).toBe(11);
      expect(repair.stderr).toContain(`pid ${process.pid}, shared lock`);
    });
  });

  it('a prune lock lets shared commands run and keeps other prunes and exclusive work out', async () => {
    await holding('prune', async () => {
      expect((await repo.run(['snapshots'])).code).toBe(0);
      const source = await mkdtemp(join(work, 'src-'));
      await writeFile(join(source, 'file'), 'backed up beside a prune');
      const backup = await repo.run(['backup', source]);
      expect(backup.code, backup.stderr).toBe(0);
      const prune = await repo.run(['prune']);
      expect(prune.code).toBe(11);
      expect(prune.stderr).toContain(`pid ${process.pid}, prune lock`);
      expect((await repo.run(['repair', 'index'])).code).toBe(11);
    });
  });

  it('--retry-lock waits for the holder to go, then succeeds; without it, or too short, exit 11', async () => {
    const library = await openLibraryRepo(repo);
    const lock = await library.lock('exclusive');
    const short = await repo.run(['snapshots', '--retry-lock', '200ms']);
    expect(short.code).toBe(11);
    // Started while the lock is held (bh starts in well under 5 s), released while it waits.
    const waiting = repo.run(['snapshots', '--retry-lock', '1m']);
    await new Promise((resolve) => setTimeout(resolve, 5000));
    await lock.release();
    const result = await waiting;
    expect(result.code, result.stderr).toBe(0);
    const bad = await repo.run(['snapshots', '--retry-lock', 'soon']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--retry-lock: 'soon' is not a duration");
  });

  it('ignores the lock of a dead process on this host, and unlock removes it', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout);
    const library = await openLibraryRepo(repo);
    const now = new Date().toISOString();
    await library.saveJson('lock', { version: 1, time: now, started: now, host: hostname(), pid: deadPid, username: 'ghost', exclusive: true, kind: 'exclusive' });
    expect((await repo.run(['snapshots'])).code).toBe(0);
    const unlock = await repo.run(['unlock']);
    expect(unlock.code).toBe(0);
    expect(unlock.stdout).toContain(`ghost@${hostname()} (pid ${deadPid}, exclusive lock`);
    expect(await library.listLocks()).toEqual([]);
  });

  it('racing lockers never both hold conflicting locks (write, settle, re-list)', async () => {
    const a = await openLibraryRepo(repo);
    const b = await openLibraryRepo(repo);
    const pairs: [LockKind, LockKind][] = [
      ['exclusive', 'exclusive'],
      ['exclusive', 'shared'],
      ['prune', 'prune'],
      ['prune', 'exclusive'],
    ];
    let wins = 0;
    for (let round = 0; round < 24; round++) {
      const [kindA, kindB] = pairs[round % pairs.length]!;
      const settleMs = round % 2 === 0 ? 0 : 20;
      // Even rounds fail at the first conflict (exactly simultaneous lockers usually both back
      // off); odd ones retry with jitter for a while, so that one of them usually wins.
      const retryMs = round % 2 === 0 ? 0 : 400;
      const results = await Promise.allSettled([a.lock(kindA, { settleMs, retryMs }), b.lock(kindB, { settleMs, retryMs })]);
      const held = results.filter((r): r is PromiseFulfilledResult<RepositoryLock> => r.status === 'fulfilled').map((r) => r.value);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(LockConflictError);
      expect(held.length).toBeLessThanOrEqual(1);
      wins += held.length;
      for (const lock of held) await lock.release();
      expect(await a.listLocks()).toEqual([]);
    }
    // Backing off is allowed, but with retries the protocol must not fail every time.
    expect(wins).toBeGreaterThan(0);
    // Compatible kinds both get their locks.
    const both = await Promise.all([a.lock('shared'), b.lock('prune')]);
    for (const lock of both) await lock.release();
  });

  it('a lock whose refreshes keep failing is lost before others may count it stale: its signal aborts and writes relying on it stop', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    try {
      const backend = await openBackend(repo.path, { env: process.env });
      let refusing = false;
      // The store starts refusing lock writes (a full disk, revoked credentials, a dropped link).
      const flaky = Object.assign(Object.create(backend) as Backend, {
        write: (...args: Parameters<Backend['write']>) => (refusing && args[0].type === 'locks' ? Promise.reject(new Error('store refuses writes')) : backend.write(...args)),
      });
      const library = await Repository.open(flaky, { kind: 'password', password: Buffer.from(repo.env['BH_PASSWORD']!) });
      const lock = await library.lock('shared');
      refusing = true;
      const settle = async (): Promise<void> => {
        for (let i = 0; i < 50; i++) await Promise.resolve();
      };
      // Four failed refreshes (20 minutes): still safely fresh in others' eyes (stale after 30).
      for (let tick = 1; tick <= 4; tick++) {
        await vi.advanceTimersByTimeAsync(5 * 60_000);
        await settle();
        expect(lock.signal.aborted, `after ${tick * 5} minutes`).toBe(false);
      }
      expect(() => library.assertLocksHeld()).not.toThrow();
      // The fifth fails too: the next try would come after others may count the lock stale.
      await vi.advanceTimersByTimeAsync(5 * 60_000);
      await settle();
      expect(lock.signal.aborted).toBe(true);
      expect(lock.signal.reason).toBeInstanceOf(LockLostError);
      expect(() => library.assertLocksHeld()).toThrow(/could not be refreshed for 25 min \(store refuses writes\).*stopped before writing anything that relied on it/);
      refusing = false;
      await lock.release();
    } finally {
      vi.useRealTimers();
    }
  });
});

