/**
 * Per-file SHA-256 in tree nodes (docs/FORMAT.md §6.1, addition 1): what bh records is what
 * coreutils' `sha256sum` computes from the files on disk; unchanged files keep their parent's
 * value; snapshots made before the addition stay readable and restorable, and `restore
 * --verify` checks the hash where one is recorded.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSnapshots } from '../src/snapshot/snapshot.js';
import { decodeTree, encodeTree, type TreeNode } from '../src/snapshot/tree.js';
import type { IndexedRepository } from '../src/repo/repository.js';
import { type TestRepo, backupSnapshot, expectOk, initRepo, makeTempDir, removeDir } from './helpers/cli.js';
import { openLibraryRepo } from './helpers/repo-lib.js';
import { compareTrees } from './helpers/tree-compare.js';

let dir: string;
let repo: TestRepo;
let src: string;

/** `sha256sum` of every file below `root`, by path relative to it. */
function sha256sum(root: string, names: string[]): Map<string, string> {
  const out = execFileSync('sha256sum', names, { cwd: root, encoding: 'utf8' });
  return new Map(out.trim().split('\n').map((line) => [line.slice(66), line.slice(0, 64)]));
}

/** The `sha256` of every file of a snapshot (bh ls --json), by path relative to `root`. */
async function recorded(snapshot: string, root: string): Promise<Map<string, string | undefined>> {
  const r = expectOk(await repo.run(['ls', snapshot, '--recursive', '--json']), 'ls');
  const entries = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { path: string; type: string; sha256?: string });
  return new Map(entries.filter((e) => e.type === 'file').map((e) => [e.path.slice(root.length + 1), e.sha256]));
}

beforeAll(async () => {
  dir = await makeTempDir('bh-legacy-sha-');
  repo = await initRepo(dir);
  src = join(dir, 'src');
  await mkdir(join(src, 'sub'), { recursive: true });
  await writeFile(join(src, 'empty'), '');
  await writeFile(join(src, 'small.txt'), 'hello\n');
  // Several chunks (max 8 MiB, avg 1 MiB): the hash spans chunk boundaries.
  await writeFile(join(src, 'sub', 'big.bin'), randomBytes(5 * 1024 * 1024 + 17));
  await writeFile(join(src, 'sub', 'ünï cödé.txt'), 'non-ASCII name');
});

afterAll(async () => {
  await removeDir(dir);
});

const NAMES = ['empty', 'small.txt', 'sub/big.bin', 'sub/ünï cödé.txt'];

describe('per-file SHA-256', () => {
  it('records for every regular file what sha256sum computes, and keeps it for unchanged files', async () => {
    const first = await backupSnapshot(repo, src);
    expect(Object.fromEntries(await recorded(first, src))).toEqual(Object.fromEntries(sha256sum(src, NAMES)));

    await writeFile(join(src, 'small.txt'), 'hello again\n');
    const second = await backupSnapshot(repo, src);
    const now = sha256sum(src, NAMES);
    expect(Object.fromEntries(await recorded(second, src))).toEqual(Object.fromEntries(now));
  });

  it('records it for standard input', async () => {
    const r = expectOk(await repo.run(['backup', '--stdin', '--stdin-filename', 'dump.sql', '--json'], { input: 'SELECT 1;\n' }), 'backup --stdin');
    const id = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { snapshot_id: string }).snapshot_id;
    const ls = expectOk(await repo.run(['ls', id, '--json']), 'ls').stdout.trim().split('\n').map((l) => JSON.parse(l) as { name: string; sha256?: string });
    expect(ls.find((e) => e.name === 'dump.sql')?.sha256).toBe(execFileSync('sha256sum', { input: 'SELECT 1;\n', encoding: 'utf8' }).slice(0, 64));
  });

  it('restores and verifies a snapshot made before the addition; a backup on top of it records hashes only for the files it reads', async () => {
    // The latest snapshot of src, rewritten as bh wrote it before addition 1: no sha256 keys.
    const library = await openLibraryRepo(repo);
    const lock = await library.lock('shared');
    const snapshots = await loadSnapshots(library, () => undefined);
    const latest = snapshots.filter((s) => s.record.paths[0] === src).sort((a, b) => a.record.time.localeCompare(b.record.time)).pop()!;
    const indexed = await library.loadIndex(snapshots.listing);
    const strip = async (treeId: Buffer): Promise<Buffer> => {
      const nodes = decodeTree(await indexed.loadBlob('tree', treeId), 'tree');
      const stripped: TreeNode[] = [];
      for (const node of nodes) {
        const { sha256: _dropped, ...rest } = node;
        stripped.push(rest.subtree ? { ...rest, subtree: await strip(rest.subtree) } : rest);
      }
      const bytes = encodeTree(stripped);
      expect(bytes.includes('"sha256"')).toBe(false);
      return (await indexed.saveBlob('tree', bytes)).id;
    };
    const oldTree = await strip(Buffer.from(latest.record.tree, 'hex'));
    const oldId = await saveRecord(indexed, { ...latest.record, tree: oldTree.toString('hex'), time: new Date().toISOString() });
    await indexed.close();
    await lock.release();

    expect([...(await recorded(oldId, src)).values()].every((v) => v === undefined)).toBe(true);
    const target = join(dir, 'restore-old');
    expectOk(await repo.run(['restore', oldId, '--target', target, '--verify']), 'restore --verify of an old snapshot');
    expect(await compareTrees(src, join(target, src), { ignoreRootMtime: true })).toEqual([]);

    await writeFile(join(src, 'sub', 'ünï cödé.txt'), 'changed');
    const next = await backupSnapshot(repo, src);
    const hashes = await recorded(next, src);
    expect(hashes.get('sub/ünï cödé.txt')).toBe(sha256sum(src, ['sub/ünï cödé.txt']).get('sub/ünï cödé.txt'));
    expect(hashes.get('small.txt')).toBeUndefined();
  });

  it('restore --verify checks the recorded SHA-256: a tree whose hash disagrees with its chunks fails', async () => {
    const library = await openLibraryRepo(repo);
    const lock = await library.lock('shared');
    const snapshots = await loadSnapshots(library, () => undefined);
    const latest = snapshots.filter((s) => s.record.paths[0] === src).sort((a, b) => a.record.time.localeCompare(b.record.time)).pop()!;
    const indexed = await library.loadIndex(snapshots.listing);
    // A snapshot of one file whose recorded hash is not its content's.
    const good = decodeTree(await indexed.loadBlob('tree', Buffer.from(latest.record.tree, 'hex')), 'tree');
    const file = await findFile(indexed, good, 'small.txt');
    const forged = encodeTree([{ ...file, sha256: Buffer.alloc(32, 0xab) }]);
    const forgedId = await saveRecord(indexed, { ...latest.record, paths: ['/small.txt'], tree: (await indexed.saveBlob('tree', forged)).id.toString('hex'), time: new Date().toISOString() });
    await indexed.close();
    await lock.release();

    const plain = await repo.run(['restore', forgedId, '--target', join(dir, 'forged-plain')]);
    expectOk(plain, 'restore without --verify');
    const verified = await repo.run(['restore', forgedId, '--target', join(dir, 'forged-verify'), '--verify']);
    expect(verified.code).toBe(3);
    expect(verified.stderr).toMatch(/small\.txt.*SHA-256 is not the one recorded/);
  });
});

async function saveRecord(indexed: IndexedRepository, record: object): Promise<string> {
  return indexed.saveSnapshot(record);
}

/** The node at `name` in the tree below `nodes` (depth first). */
async function findFile(indexed: IndexedRepository, nodes: TreeNode[], name: string): Promise<TreeNode> {
  for (const node of nodes) {
    if (node.type === 'file' && node.name.toString() === name) return node;
    if (node.subtree) {
      try {
        return await findFile(indexed, decodeTree(await indexed.loadBlob('tree', node.subtree), 'tree'), name);
      } catch {
        // Not below this one.
      }
    }
  }
  throw new Error(`${name} not found`);
}
