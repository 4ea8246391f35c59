/**
 * Chunks the repository already has are not compressed again (src/snapshot/known-blobs.ts):
 * - the filter itself: every indexed id is found, an empty index gives no filter, and few
 *   absent ids are taken for present;
 * - through the real CLI (workers from dist/): a copy of a backed-up tree under another path
 *   (new inodes, so every file counts as changed) adds almost nothing and restores exactly;
 *   the same after the first snapshot was forgotten and pruned, when its chunks are only in
 *   condemned packs and the repository must seal them itself; check --read-data passes.
 */
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MasterIndex } from '../src/repo/master-index.js';
import { KnownBlobFilter } from '../src/snapshot/known-blobs.js';
import { backupSnapshot, expectOk, hashTree, initRepo, makeTempDir, removeDir, summaryOf, type TestRepo } from './helpers/cli.js';

let work: string;

beforeAll(async () => {
  work = await makeTempDir('bh-known-');
});
afterAll(async () => {
  await removeDir(work);
});

describe('KnownBlobFilter', () => {
  it('finds every indexed data blob, gives no filter for an index without data, and rarely claims an absent id', () => {
    const index = new MasterIndex();
    expect(KnownBlobFilter.ofIndex(index)).toBeUndefined();
    const ids = Array.from({ length: 20_000 }, () => randomBytes(32));
    for (let p = 0; p < 20; p++) {
      const blobs = ids.slice(p * 1000, (p + 1) * 1000).map((id, i) => ({ type: 'data' as const, id, offset: i * 100, length: 100, rawLength: 90 }));
      index.addPack(randomBytes(32), blobs);
    }
    const filter = KnownBlobFilter.ofIndex(index)!;
    expect(ids.every((id) => filter.mayHave(id))).toBe(true);
    const absent = Array.from({ length: 20_000 }, () => randomBytes(32));
    const claimed = absent.filter((id) => filter.mayHave(id)).length;
    expect(claimed / absent.length).toBeLessThan(0.05);
    // A filter rebuilt in another thread from the shared memory answers alike.
    const view = new KnownBlobFilter(filter.shared);
    expect(ids.every((id) => view.mayHave(id)) && absent.every((id) => view.mayHave(id) === filter.mayHave(id))).toBe(true);
  });
});

describe('backing up chunks the repository has', () => {
  let repo: TestRepo;
  let source: string;

  beforeAll(async () => {
    repo = await initRepo(await mkdtemp(join(work, 'r-')));
    source = await mkdtemp(join(work, 'src-'));
    for (let i = 0; i < 6; i++) await writeFile(join(source, `small-${i}`), randomBytes(3000 + i));
    // Several chunks each (1 MiB average).
    await writeFile(join(source, 'large-a'), randomBytes(5 * 1024 * 1024));
    await writeFile(join(source, 'large-b'), Buffer.concat([randomBytes(2 * 1024 * 1024), Buffer.alloc(3 * 1024 * 1024, 'x')]));
  });

  const backup = async (path: string): Promise<{ snapshot_id: string; bytes_added: number }> => summaryOf(expectOk(await repo.run(['backup', path, '--json']), 'backup'));

  const expectRestores = async (snapshot: string, path: string): Promise<void> => {
    const target = await mkdtemp(join(work, 'restore-'));
    const r = await repo.run(['restore', snapshot, '--target', target]);
    expect(r.code, r.stderr).toBe(0);
    expect(await hashTree(join(target, path))).toEqual(await hashTree(source));
  };

  const snapshots: string[] = [];

  it('a copy under another path adds only its trees, restores exactly, and check --read-data passes', async () => {
    snapshots.push(await backupSnapshot(repo, source));
    const copy = join(work, 'copy');
    await cp(source, copy, { recursive: true });
    const second = await backup(copy);
    snapshots.push(second.snapshot_id);
    expect(second.bytes_added).toBeLessThan(64 * 1024);
    await expectRestores(second.snapshot_id, copy);
    const check = await repo.run(['check', '--read-data']);
    expect(check.code, check.stderr).toBe(0);
  });

  it('chunks only in condemned packs (forgotten and pruned, not yet deleted) are stored again, sealed by the main thread', async () => {
    const forget = await repo.run(['forget', ...snapshots, '--allow-empty-group', '--prune']);
    expect(forget.code, forget.stderr).toBe(0);
    const again = join(work, 'again');
    await cp(source, again, { recursive: true });
    const third = await backup(again);
    // Everything is written anew: the condemned copies must not be relied on.
    expect(third.bytes_added).toBeGreaterThan(5 * 1024 * 1024);
    await expectRestores(third.snapshot_id, again);
    const check = await repo.run(['check', '--read-data']);
    expect(check.code, check.stderr).toBe(0);
  });
});
