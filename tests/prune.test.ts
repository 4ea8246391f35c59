/**
 * bh prune, through the real CLI on local repositories: space of removed snapshots is freed
 * (measured on disk), the two-phase delete keeps condemned packs for the margin and revives
 * those a snapshot uses again, and what remains restores byte-exact and passes check --read-data.
 * Snapshot records are removed through the library (Repository.removeFile), as `bh forget`
 * would.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupSnapshot, hashTree, initRepo, makeTempDir, randomFilesDir, removeDir, type TestRepo } from './helpers/cli.js';
import { openLibraryRepo, packNames, sizeOnDisk } from './helpers/repo-lib.js';

let work: string;

beforeAll(async () => {
  work = await makeTempDir('bh-prune-');
});
afterAll(async () => {
  await removeDir(work);
});

async function freshRepo(): Promise<TestRepo> {
  return initRepo(await mkdtemp(join(work, 'r-')));
}

interface PruneJson {
  condemn: string[];
  repack: string[];
  delete: string[];
  revive: string[];
  waiting: string[];
  unindexed: string[];
  blocking_locks: string[];
}

async function prune(repo: TestRepo, args: string[] = []): Promise<PruneJson> {
  const result = await repo.run(['prune', '--json', ...args]);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout.trim().split('\n').pop()!) as PruneJson;
}

async function removeSnapshot(repo: TestRepo, id: string): Promise<void> {
  const library = await openLibraryRepo(repo);
  await library.removeFile('snapshot', id);
}

/** Restores snapshot `id` and compares it, byte for byte, with `expected` (hashes of `source`). */
async function expectRestores(repo: TestRepo, id: string, source: string, expected: Map<string, string>): Promise<void> {
  const target = join(work, `restore-${randomBytes(4).toString('hex')}`);
  const result = await repo.run(['restore', id, '--target', target]);
  expect(result.code, result.stderr).toBe(0);
  expect(await hashTree(join(target, source))).toEqual(expected);
  await rm(target, { recursive: true, force: true });
}

async function expectCheckPasses(repo: TestRepo): Promise<void> {
  const result = await repo.run(['check', '--read-data']);
  expect(result.code, result.stdout + result.stderr).toBe(0);
}

describe('bh prune', () => {
  it('frees the space of a removed snapshot, measured on disk, after the margin', async () => {
    const repo = await freshRepo();
    const a = await randomFilesDir(work, 3, 700_000);
    const b = await randomFilesDir(work, 3, 500_000);
    const idA = await backupSnapshot(repo, a);
    const idB = await backupSnapshot(repo, b);
    const hashesB = await hashTree(b);
    await removeSnapshot(repo, idA);
    const before = await sizeOnDisk(repo.path);

    const dry = await repo.run(['prune', '--dry-run', '--delete-after', '0s']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/would condemn 2 unused packs/);
    expect(await sizeOnDisk(repo.path)).toBe(before);

    const first = await prune(repo, ['--delete-after', '0s']);
    expect(first.condemn).toHaveLength(2); // A's data pack and its tree pack
    expect(first.delete).toHaveLength(0);
    // Condemned packs are still there after the first prune.
    const packs = await packNames(repo.path);
    for (const pack of first.condemn) expect(packs.has(pack)).toBe(true);

    const second = await prune(repo, ['--delete-after', '0s']);
    expect(second.delete.sort()).toEqual([...first.condemn].sort());
    const after = await sizeOnDisk(repo.path);
    // A held 2.1 MB of random data: at least that much is gone.
    expect(before - after).toBeGreaterThan(2_000_000);
    const left = await packNames(repo.path);
    for (const pack of first.condemn) expect(left.has(pack)).toBe(false);

    await expectRestores(repo, idB, b, hashesB);
    await expectCheckPasses(repo);
    // Nothing left to do: a third prune changes nothing.
    const third = await prune(repo, ['--delete-after', '0s']);
    expect([...third.condemn, ...third.delete, ...third.repack]).toEqual([]);
  }, 120_000);

  it('repacks a partly used pack and keeps the used blobs', async () => {
    const repo = await freshRepo();
    const dir = await randomFilesDir(work, 4, 400_000);
    const first = await backupSnapshot(repo, dir);
    await rm(join(dir, 'f1'));
    await rm(join(dir, 'f2'));
    const second = await backupSnapshot(repo, dir);
    const hashes = await hashTree(dir);
    await removeSnapshot(repo, first);
    const before = await sizeOnDisk(repo.path);
    const plan = await prune(repo, ['--delete-after', '0s', '--max-unused', '0%']);
    expect(plan.repack.length).toBeGreaterThanOrEqual(1);
    const done = await prune(repo, ['--delete-after', '0s', '--max-unused', '0%']);
    expect(done.delete).toEqual(expect.arrayContaining(plan.repack));
    expect(before - (await sizeOnDisk(repo.path))).toBeGreaterThan(700_000);
    await expectRestores(repo, second, dir, hashes);
    await expectCheckPasses(repo);
  });

  it('two-phase: keeps condemned packs for the margin, revives one a snapshot uses again, and waits for lock holders', async () => {
    const repo = await freshRepo();
    const a = await randomFilesDir(work, 2, 600_000);
    const hashesA = await hashTree(a);
    const idA = await backupSnapshot(repo, a);
    await backupSnapshot(repo, await randomFilesDir(work, 1, 300_000));
    // The record of A, kept to play a backup that finishes after the prune (it had
    // deduplicated against A's packs before they were condemned).
    const recordA = await readFile(join(repo.path, 'snapshots', idA));
    await removeSnapshot(repo, idA);

    const first = await prune(repo);
    expect(first.condemn).toHaveLength(2);
    const second = await prune(repo);
    expect(second.delete).toEqual([]);
    expect(second.waiting.sort()).toEqual([...first.condemn].sort());
    const packs = await packNames(repo.path);
    for (const pack of first.condemn) expect(packs.has(pack)).toBe(true);

    // The late snapshot record comes back: its packs are revived, not deleted.
    await writeFile(join(repo.path, 'snapshots', idA), recordA);
    const third = await prune(repo, ['--delete-after', '0s']);
    expect(third.revive.sort()).toEqual([...first.condemn].sort());
    expect(third.delete).toEqual([]);
    const kept = await packNames(repo.path);
    for (const pack of first.condemn) expect(kept.has(pack)).toBe(true);
    await expectRestores(repo, idA, a, hashesA);
    await expectCheckPasses(repo);

    // Condemned again: a new backup of the same data does not deduplicate against condemned
    // packs, it stores the data again (so deleting them later cannot hurt it).
    await removeSnapshot(repo, idA);
    expect((await prune(repo)).condemn.sort()).toEqual([...first.condemn].sort());
    const sizeBefore = await sizeOnDisk(repo.path);
    const again = await backupSnapshot(repo, a);
    expect((await sizeOnDisk(repo.path)) - sizeBefore).toBeGreaterThan(1_000_000);
    await expectRestores(repo, again, a, hashesA);

    // A lock holder that started before a condemnation holds back its deletion.
    await removeSnapshot(repo, again);
    const library = await openLibraryRepo(repo);
    const held = await library.lock('shared');
    try {
      const condemning = await prune(repo, ['--delete-after', '0s']);
      expect(condemning.condemn.length).toBeGreaterThan(0);
      const blocked = await prune(repo, ['--delete-after', '0s']);
      expect(blocked.delete).toEqual([]);
      expect(blocked.waiting.sort()).toEqual([...condemning.condemn].sort());
      expect(blocked.blocking_locks.join()).toContain(`pid ${process.pid}`);
    } finally {
      await held.release();
    }
    const freed = await prune(repo, ['--delete-after', '0s']);
    expect(freed.delete.length).toBeGreaterThan(0);
    expect((await repo.run(['snapshots', '--json'])).stdout).not.toContain(again);
    await expectCheckPasses(repo);
  }, 180_000);

  it('bh forget --prune removes the snapshot and condemns its data in one run', async () => {
    const repo = await freshRepo();
    const a = await randomFilesDir(work, 1, 300_000);
    const first = await backupSnapshot(repo, a);
    await writeFile(join(a, 'f0'), randomBytes(300_000));
    const second = await backupSnapshot(repo, a);
    const result = await repo.run(['forget', '--keep-last', '1', '--prune', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n').map((l) => JSON.parse(l) as { removed?: string[]; condemn?: string[] });
    expect(lines[0]!.removed).toEqual([first]);
    expect(lines[lines.length - 1]!.condemn!.length).toBeGreaterThan(0);
    expect(existsSync(join(repo.path, 'snapshots', first))).toBe(false);
    expect(existsSync(join(repo.path, 'snapshots', second))).toBe(true);
  });

  it('refuses to prune when a snapshot reaches a blob no index lists', async () => {
    const repo = await freshRepo();
    const a = await randomFilesDir(work, 1, 200_000);
    await backupSnapshot(repo, a);
    for (const name of readdirSync(join(repo.path, 'index'))) await rm(join(repo.path, 'index', name));
    const packsBefore = await packNames(repo.path);
    const result = await repo.run(['prune', '--delete-after', '0s']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/in no index.*repair index/);
    expect(await packNames(repo.path)).toEqual(packsBefore);
    expect(existsSync(join(repo.path, 'snapshots'))).toBe(true);
  });
});

describe('bh repair', () => {
  it('repair index rebuilds a lost index from the pack headers', async () => {
    const repo = await freshRepo();
    const dir = await randomFilesDir(work, 3, 300_000);
    const hashes = await hashTree(dir);
    const id = await backupSnapshot(repo, dir);
    for (const name of readdirSync(join(repo.path, 'index'))) await rm(join(repo.path, 'index', name));
    expect((await repo.run(['check'])).code).toBe(1);
    const repaired = await repo.run(['repair', 'index']);
    expect(repaired.code, repaired.stderr).toBe(0);
    expect(readdirSync(join(repo.path, 'index')).length).toBeGreaterThan(0);
    await expectCheckPasses(repo);
    await expectRestores(repo, id, dir, hashes);
  });

  it('repair snapshots rewrites a snapshot without the files whose pack is gone, naming them', async () => {
    const repo = await freshRepo();
    const dir = await randomFilesDir(work, 2, 300_000);
    await backupSnapshot(repo, dir);
    const packsOfFirst = await packNames(repo.path);
    await writeFile(join(dir, 'late'), randomBytes(300_000));
    const second = await backupSnapshot(repo, dir);
    const newPacks = [...(await packNames(repo.path))].filter((p) => !packsOfFirst.has(p));
    // The data pack of the second backup holds only the file 'late'; the other new pack holds trees.
    const dataPack = newPacks.find((p) => statSync(join(repo.path, 'data', p.slice(0, 2), p)).size > 200_000)!;
    await rm(join(repo.path, 'data', dataPack.slice(0, 2), dataPack));

    const dry = await repo.run(['repair', 'snapshots', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stderr).toContain(`file ${join(dir, 'late')} would be left out`);
    expect(existsSync(join(repo.path, 'snapshots', second))).toBe(true);

    const result = await repo.run(['repair', 'snapshots']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(`snapshot ${second.slice(0, 8)}: file ${join(dir, 'late')} left out`);
    expect(existsSync(join(repo.path, 'snapshots', second))).toBe(false);
    await expectCheckPasses(repo);

    const list = JSON.parse((await repo.run(['snapshots', '--json'])).stdout) as { id: string; tags: string[] }[];
    const repaired = list.find((s) => s.tags.includes('repaired'))!;
    expect(repaired).toBeDefined();
    await rm(join(dir, 'late'));
    await expectRestores(repo, repaired.id, dir, await hashTree(dir));
  });
});
