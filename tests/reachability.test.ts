/**
 * Issue 12, item 7: one reachability walk (src/snapshot/walk.ts walkReachable) behind prune's
 * used set, check's snapshot check and `stats --mode raw-data`. It reads each tree once however
 * many paths share it, and hands each blob no index lists to a callback with the path that
 * reached it.
 *
 * A crafted repository: a DAG of 40 levels (tree T_k holds "a" and "b", both T_(k-1): 2^40
 * paths) whose leaf file names a data blob no index lists, and one ordinary data blob.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobType } from '../src/repo/crypto.js';
import { type TreeNode, encodeTree } from '../src/snapshot/tree.js';
import { type Reached, TreeReader, walkReachable } from '../src/snapshot/walk.js';
import { describeRun, initRepo, makeTempDir, removeDir, type TestRepo } from './helpers/cli.js';
import { openLibraryRepo } from './helpers/repo-lib.js';

const LEVELS = 40;
const NODE = { mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n, ctimeNs: 0n, inode: 1n, device: 1n, links: 1, size: 0 };
const file = (name: string, content: Buffer[]): TreeNode => ({ ...NODE, name: Buffer.from(name), type: 'file', content });
const dir = (name: string, subtree: Buffer): TreeNode => ({ ...NODE, name: Buffer.from(name), type: 'dir', subtree });
/** The first path that reaches the leaf: depth-first in name order, always "a". */
const LEAF_PATH = `${'/a'.repeat(LEVELS)}/leaf`;

let tmp: string;
let repo: TestRepo;
let snapshotId: string;
const absent = randomBytes(32);
let present: Buffer;

beforeAll(async () => {
  tmp = await makeTempDir('bh-reach-');
  repo = await initRepo(tmp);
  const opened = await openLibraryRepo(repo);
  const indexed = await opened.loadIndex(await opened.listSnapshots());
  present = (await indexed.saveBlob('data', Buffer.from('stored content'))).id;
  let tree = (await indexed.saveBlob('tree', encodeTree([file('leaf', [present, absent])]))).id;
  for (let level = 0; level < LEVELS; level++) tree = (await indexed.saveBlob('tree', encodeTree([dir('a', tree), dir('b', tree)]))).id;
  await indexed.flush();
  await indexed.close();
  const record = { version: 1, time: new Date().toISOString(), tree: tree.toString('hex'), paths: ['/crafted'], host: 'crafted', username: 'u', uid: 0, gid: 0, tags: [], mode: 'full', parent: null, excludes: [], program_version: 'crafted' };
  snapshotId = await opened.saveJson('snapshot', record);
});

afterAll(() => removeDir(tmp));

describe('walkReachable', () => {
  it('reads each tree once, and reports a missing blob with the path that reached it', async () => {
    const opened = await openLibraryRepo(repo);
    const indexed = await opened.loadIndex(await opened.listSnapshots());
    const reads: string[] = [];
    const counting = { loadBlob: (type: BlobType, id: Uint8Array) => (reads.push(Buffer.from(id).toString('hex')), indexed.loadBlob(type, id)) };
    const seen = new Set<string>();
    const marks = {
      mark: (type: BlobType, id: Buffer): Reached => {
        const key = type + id.toString('hex');
        if (seen.has(key)) return 'seen';
        seen.add(key);
        return indexed.index.has(type, id) ? 'new' : 'missing';
      },
    };
    const missing: string[] = [];
    const root = Buffer.from((await opened.loadJson<{ tree: string }>('snapshot', snapshotId)).tree, 'hex');
    const trees = new TreeReader(counting);
    // Twice, as for two snapshots of the same tree: the second walk reads nothing.
    for (let i = 0; i < 2; i++) await walkReachable(trees, root, marks, { onMissing: (type, id, path) => missing.push(`${type} ${id.toString('hex')} at ${path()}`) });
    expect(reads).toHaveLength(LEVELS + 1);
    expect(new Set(reads).size).toBe(LEVELS + 1);
    expect(missing).toEqual([`data ${absent.toString('hex')} at ${LEAF_PATH}`]);
  });
});

describe('prune, check and stats share it', () => {
  it('check names the missing blob once, at its first path, and counts every tree once', async () => {
    const r = await repo.run(['check']);
    expect(r.code, describeRun('check', r)).toBe(1);
    const errors = r.stdout.split('\n').filter((line) => line.startsWith('error'));
    expect(errors).toEqual([`error: snapshot ${snapshotId}: file ${LEAF_PATH}: data blob ${absent.toString('hex')} is not in any index`]);
    expect(r.stdout).toContain(`1 snapshots, ${LEVELS + 1} trees checked`);
  });

  it('stats --mode raw-data counts each blob once and the missing one as missing', async () => {
    const r = await repo.run(['stats', '--mode', 'raw-data', '--json']);
    expect(r.code, describeRun('stats', r)).toBe(0);
    const stats = JSON.parse(r.stdout) as Record<string, number>;
    expect([stats['tree_blobs'], stats['data_blobs'], stats['missing_blobs']]).toEqual([LEVELS + 1, 1, 1]);
  });

  it('prune refuses, naming the snapshot, the path and the blob', async () => {
    const r = await repo.run(['prune', '--dry-run']);
    expect(r.code, describeRun('prune', r)).toBe(1);
    expect(r.stderr).toContain(`1 blob(s) the snapshots use are in no index (snapshot ${snapshotId.slice(0, 8)}: file ${LEAF_PATH}: data blob ${absent.toString('hex')})`);
  });
});
