/**
 * Issue 11, items 1, 4, 5 and 6: a backup that was paused (a suspended laptop, `kill -STOP`)
 * while prunes ran elsewhere must not save a snapshot pointing at data they deleted; a stale
 * index file copied back must not make backups incomplete; Ctrl-C while a backup flushes stops
 * it; prune and check release their lock on SIGINT/SIGTERM.
 *
 * Other processes' clocks are shifted with libfaketime (Debian package `faketime`, a real
 * LD_PRELOAD shim, no hook in bh): that is how a 6-hour suspension looks to the prunes. Its
 * monotonic clock is left alone, as a suspended machine's is.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun, expectOk, initRepo, makeTempDir, removeDir, signal, startRunning, summaryOf, waitFor, type Running, type TestRepo } from './helpers/cli.js';
import { packNames } from './helpers/repo-lib.js';
import { compareTrees } from './helpers/tree-compare.js';

const MiB = 1024 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;
const FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

let work: string;

beforeAll(async () => {
  work = await makeTempDir('bh-lock-loss-');
});

afterAll(async () => {
  if (work) await removeDir(work);
});

/** The environment that runs a process `offset` (e.g. '+3h') ahead of the real clock, or as `file` says. */
function shiftedClock(clock: { offset: string } | { file: string }): Record<string, string> {
  const env: Record<string, string> = { LD_PRELOAD: FAKETIME_LIB, FAKETIME_DONT_FAKE_MONOTONIC: '1' };
  if ('offset' in clock) env['FAKETIME'] = clock.offset;
  else Object.assign(env, { FAKETIME_TIMESTAMP_FILE: clock.file, FAKETIME_CACHE_DURATION: '1' });
  return env;
}

/** The state letter of a process (/proc/PID/stat): 'T' once it is stopped. */
function processState(pid: number): string {
  try {
    return /\) (\w)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? '';
  } catch {
    return '';
  }
}

function hexNames(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => HEX64.test(n)) : [];
}

function statusLines(running: Running): { message_type: string; bytes_read?: number }[] {
  return running
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{') && l.endsWith('}'))
    .map((l) => JSON.parse(l) as { message_type: string; bytes_read?: number });
}

/** A directory holding one file: `shared` (bytes also in an older, forgotten snapshot) followed by `fresh` new bytes. */
async function fileDir(name: string, shared: Buffer, fresh: number): Promise<string> {
  const dir = join(work, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'data.bin'), Buffer.concat([shared, randomBytes(fresh)]));
  return dir;
}

async function newRepo(name: string): Promise<TestRepo> {
  const dir = join(work, name);
  await mkdir(dir);
  return initRepo(dir);
}

describe('a paused backup and prunes that ran meanwhile', () => {
  it('refuses to save a snapshot whose deduplicated data prune deleted (clock of the prunes 3 h and 6 h ahead)', async () => {
    const repo = await newRepo('paused');
    const shared = randomBytes(3 * MiB);
    const old = await fileDir('old', shared, 0);
    const oldSnapshot = summaryOf<{ snapshot_id: string }>(expectOk(await repo.run(['backup', '--json', old]), 'first backup')).snapshot_id;
    expectOk(await repo.run(['forget', '--allow-empty-group', oldSnapshot]), 'forget');
    const packsOfOld = await packNames(repo.path);

    // The new file starts with the old content: the backup deduplicates against the forgotten packs.
    const source = await fileDir('new', shared, 4 * MiB);
    const backup = startRunning(['backup', '--json', '--limit-upload', '1000', source], { env: repo.env });
    await waitFor(backup, () => statusLines(backup).some((l) => l.message_type === 'status' && (l.bytes_read ?? 0) > 0), 'data being read');
    // Frozen (waitFor stops it): 3 h later a prune condemns what no snapshot uses; 6 h later another deletes it.
    expectOk(await repo.run(['prune'], { env: shiftedClock({ offset: '+3h' }) }), 'prune at +3 h');
    expectOk(await repo.run(['prune'], { env: shiftedClock({ offset: '+6h' }) }), 'prune at +6 h');
    const left = await packNames(repo.path);
    expect([...packsOfOld].filter((p) => left.has(p)), 'the prunes deleted the forgotten packs').toEqual([]);

    signal(backup, 'SIGCONT');
    const r = await backup.done;
    expect(r.code, describeRun('resumed backup', r)).toBe(1);
    expect(r.stderr).toMatch(/pack\(s\) this snapshot needs were .*while it was being made.*No snapshot was saved; run the command again/s);
    expect(hexNames(join(repo.path, 'snapshots')), 'no snapshot may point at deleted data').toEqual([]);
    expect(hexNames(join(repo.path, 'locks'))).toEqual([]);
    expectOk(await repo.run(['check']), 'check after the refused backup');

    // Run again, it stores the data anew and the snapshot restores.
    expectOk(await repo.run(['backup', source]), 'backup again');
    expectOk(await repo.run(['check', '--read-data']), 'check --read-data');
    const target = join(work, 'paused-restore');
    expectOk(await repo.run(['restore', 'latest', '--target', target]), 'restore');
    expect(await compareTrees(source, join(target, source))).toEqual([]);
  });

  it('refuses a snapshot whose deduplicated pack a prune condemned while the backup looked gone (+3 h), and keeps one condemned while its lock was fresh', async () => {
    for (const offset of ['+3h', '+0']) {
      const repo = await newRepo(`condemned${offset}`);
      const shared = randomBytes(3 * MiB);
      const old = await fileDir(`condemned-old${offset}`, shared, 0);
      const oldSnapshot = summaryOf<{ snapshot_id: string }>(expectOk(await repo.run(['backup', '--json', old]), 'first backup')).snapshot_id;
      expectOk(await repo.run(['forget', '--allow-empty-group', oldSnapshot]), 'forget');
      const source = await fileDir(`condemned-new${offset}`, shared, 4 * MiB);
      const backup = startRunning(['backup', '--json', '--limit-upload', '1000', source], { env: repo.env });
      await waitFor(backup, () => statusLines(backup).some((l) => l.message_type === 'status' && (l.bytes_read ?? 0) > 0), 'data being read');
      // One prune: it condemns the forgotten packs the paused backup deduplicated against.
      expectOk(await repo.run(['prune'], { env: shiftedClock({ offset }) }), `prune at ${offset}`);
      signal(backup, 'SIGCONT');
      const r = await backup.done;
      if (offset === '+3h') {
        expect(r.code, describeRun('resumed backup', r)).toBe(1);
        expect(r.stderr).toMatch(/condemned by a prune that may have taken this process for gone/);
        expect(hexNames(join(repo.path, 'snapshots'))).toEqual([]);
      } else {
        // Condemned while our lock was fresh: the deleting prune waits for us, and the next one revives the pack.
        expect(r.code, describeRun('resumed backup', r)).toBe(0);
        expect(hexNames(join(repo.path, 'snapshots'))).toHaveLength(1);
      }
      expectOk(await repo.run(['check', '--read-data']), 'check --read-data');
    }
  });

  it('gives up a lock that went unrefreshed past the stale time: its own clock jumped 6 h (exit 11, no snapshot)', async () => {
    const repo = await newRepo('suspended');
    const clockFile = join(work, 'suspended-clock');
    writeFileSync(clockFile, '+0\n');
    const source = await fileDir('suspended-src', randomBytes(0), 3 * MiB);
    const backup = startRunning(['backup', '--json', '--limit-upload', '1000', source], { env: { ...repo.env, ...shiftedClock({ file: clockFile }) } });
    await waitFor(backup, () => statusLines(backup).some((l) => l.message_type === 'status' && (l.bytes_read ?? 0) > 0), 'data being read');
    // The machine sleeps for 6 hours: its wall clock jumps, its monotonic clock does not.
    writeFileSync(clockFile, '+6h\n');
    await new Promise((r) => setTimeout(r, 1100)); // libfaketime rereads the file once a second
    signal(backup, 'SIGCONT');
    const r = await backup.done;
    expect(r.code, describeRun('resumed backup', r)).toBe(11);
    expect(r.stderr).toMatch(/lock on .* was last refreshed 360 min ago|lock on .* was last refreshed 6\.0 h ago/);
    expect(r.stderr).toMatch(/stopped before writing anything that relied on it/);
    expect(hexNames(join(repo.path, 'snapshots'))).toEqual([]);
    expectOk(await repo.run(['check']), 'check');
  });
});

describe('a stale index file copied back', () => {
  it('is ignored after two prunes superseded it, and a pack the index lists but the repository lacks is never deduplicated against', async () => {
    const repo = await newRepo('stale-index');
    const content = randomBytes(2 * MiB);
    const source = await fileDir('stale-src', content, 0);
    const first = summaryOf<{ snapshot_id: string }>(expectOk(await repo.run(['backup', '--json', source]), 'first backup')).snapshot_id;
    const [staleIndex] = hexNames(join(repo.path, 'index'));
    const staleCopy = join(work, 'stale-index-copy');
    copyFileSync(join(repo.path, 'index', staleIndex!), staleCopy);
    expectOk(await repo.run(['forget', '--allow-empty-group', first]), 'forget');
    expectOk(await repo.run(['prune', '--delete-after', '0s']), 'prune: condemn');
    expectOk(await repo.run(['prune', '--delete-after', '0s']), 'prune: delete');
    expect(await packNames(repo.path)).toEqual(new Set());

    // Someone restores an old copy of the index folder's file (two rewrites later).
    copyFileSync(staleCopy, join(repo.path, 'index', staleIndex!));
    const second = expectOk(await repo.run(['backup', '--json', source]), 'backup after the copy-back');
    expect(summaryOf<{ bytes_added: number }>(second).bytes_added, 'the content must be stored again').toBeGreaterThan(content.length / 2);
    expectOk(await repo.run(['check', '--read-data']), 'check --read-data');

    // A pack deleted by hand while an index still lists it: the backup stores its data again and says so.
    // The data pack: the largest one (the other holds the trees).
    const sizeOf = (name: string): number => statSync(join(repo.path, 'data', name.slice(0, 2), name)).size;
    const [pack] = [...(await packNames(repo.path))].sort((a, b) => sizeOf(b) - sizeOf(a));
    const other = await fileDir('stale-src-2', content, 0);
    for (const sub of readdirSync(join(repo.path, 'data'))) rmSync(join(repo.path, 'data', sub, pack!), { force: true });
    const third = expectOk(await repo.run(['backup', '--json', other]), 'backup with a pack missing');
    expect(third.stderr).toMatch(/the index lists 1 pack\(s\) the repository lacks .*their data is stored again; run 'bh check', then 'bh repair index'/);
    // As the warning says: repair the index (it drops the lost pack); the new snapshot is whole.
    expectOk(await repo.run(['repair', 'index']), 'repair index');
    expectOk(await repo.run(['check', '--read-data']), 'check --read-data after the repair');
    const target = join(work, 'stale-restore');
    expectOk(await repo.run(['restore', 'latest', '--target', target]), 'restore of the new snapshot');
    expect(await compareTrees(other, join(target, other))).toEqual([]);
  });
});

describe('interrupts', () => {
  it('Ctrl-C while a backup flushes its last packs: exit 130, no snapshot', async () => {
    const repo = await newRepo('flush-interrupt');
    const source = await fileDir('flush-src', randomBytes(0), 4 * MiB);
    const backup = startRunning(['backup', '--json', '--limit-upload', '1000', source], { env: repo.env });
    // Every byte read (the archiver is done): what is left is the throttled upload in flush.
    await waitFor(backup, () => statusLines(backup).some((l) => l.message_type === 'status' && l.bytes_read === 4 * MiB), 'every byte read');
    signal(backup, 'SIGINT');
    const r = await backup.done;
    expect(r.code, describeRun('interrupted backup', r)).toBe(130);
    expect(r.stderr).toMatch(/interrupted/);
    expect(hexNames(join(repo.path, 'snapshots'))).toEqual([]);
    expect(hexNames(join(repo.path, 'locks'))).toEqual([]);
    expectOk(await repo.run(['check']), 'check');
  });

  describe.each(['SIGINT', 'SIGTERM'] as const)('%s', (name) => {
    it(`stops check --read-data and releases its lock`, async () => {
      const repo = await newRepo(`check-${name}`);
      expectOk(await repo.run(['backup', await fileDir(`check-src-${name}`, randomBytes(0), 3 * MiB)]), 'backup');
      const check = startRunning(['check', '--read-data', '--limit-download', '500'], { env: repo.env });
      await waitFor(check, () => hexNames(join(repo.path, 'locks')).length > 0 && check.stdout().length > 0, 'check under way');
      signal(check, name);
      const r = await check.done;
      expect(r.code, describeRun('interrupted check', r)).toBe(130);
      expect(r.stderr).toMatch(/bh: interrupted/);
      expect(hexNames(join(repo.path, 'locks')), 'the lock must go with the process').toEqual([]);
    });

    it(`stops prune between its steps and releases its lock; the next prune finishes the job`, async () => {
      const repo = await newRepo(`prune-${name}`);
      const first = summaryOf<{ snapshot_id: string }>(expectOk(await repo.run(['backup', '--json', await fileDir(`prune-src-${name}`, randomBytes(0), 2 * MiB)]), 'backup')).snapshot_id;
      expectOk(await repo.run(['backup', await fileDir(`prune-src2-${name}`, randomBytes(0), 1 * MiB)]), 'second backup');
      expectOk(await repo.run(['forget', '--allow-empty-group', first]), 'forget');
      // BH_TEST_PAUSE_AT stops prune (SIGSTOP) right after it wrote its new index.
      const prune = startRunning(['prune', '--delete-after', '0s'], { env: { ...repo.env, BH_TEST_PAUSE_AT: 'index-written' } });
      await waitFor(prune, () => prune.stderr().includes('test pause at index-written') && processState(prune.child.pid!) === 'T', 'prune paused');
      signal(prune, name);
      const r = await prune.done;
      expect(r.code, describeRun('interrupted prune', r)).toBe(130);
      expect(hexNames(join(repo.path, 'locks'))).toEqual([]);
      expectOk(await repo.run(['prune', '--delete-after', '0s']), 'next prune');
      expectOk(await repo.run(['check', '--read-data']), 'check');
    });
  });
});
