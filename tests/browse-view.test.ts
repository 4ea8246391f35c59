/**
 * The snapshot file-system view without FUSE (what `bh mount` and the web page share), on a real
 * repository written by the real CLI: the layout, path resolution, ranged reads against the
 * source bytes, and the blob cache (bounded, one fetch per blob for concurrent readers).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { BlobCache } from '../src/browse/blob-cache.js';
import { SnapshotView, isDirectory, nameOf, snapshotTimeName } from '../src/browse/view.js';
import type { IndexedRepository, Repository } from '../src/repo/repository.js';
import { loadSnapshots } from '../src/snapshot/snapshot.js';
import { type TestRepo, backupSnapshot, initRepo, makeTempDir, removeDir } from './helpers/cli.js';
import { openLibraryRepo } from './helpers/repo-lib.js';

const MiB = 1024 * 1024;

let tmp: string;
let repo: TestRepo;
let library: Repository;
let src: string;
let content: Buffer;

beforeAll(async () => {
  tmp = await makeTempDir('bh-browse-');
  repo = await initRepo(tmp);
  src = join(tmp, 'src');
  await mkdir(join(src, 'dir'), { recursive: true });
  content = randomBytes(6 * MiB + 321);
  await writeFile(join(src, 'dir', 'multi.bin'), content);
  await writeFile(join(src, 'note'), 'a note\n');
  // Two snapshots taken at the same second, on two hosts, one tagged.
  await backupSnapshot(repo, src, ['--time', '2024-05-01 10:00:00', '--host', 'h1', '--tag', 'weekly']);
  await backupSnapshot(repo, src, ['--time', '2024-05-01 10:00:00', '--host', 'h2']);
  library = await openLibraryRepo(repo);
}, 60_000);

afterAll(async () => {
  await library?.backend.close();
  if (tmp) await removeDir(tmp);
});

describe('the snapshot view', () => {
  it('lays the snapshots out by id, time (apart when equal), host and tag, with latest links', async () => {
    const view = new SnapshotView(library);
    const names = async (path: string): Promise<string[]> => {
      const node = await view.resolve(path);
      if (!node || !isDirectory(node)) throw new Error(`${path} is not a directory`);
      return (await view.list(node)).map((n) => nameOf(n).toString());
    };
    const time = snapshotTimeName(new Date(2024, 4, 1, 10, 0, 0));
    expect(await names('/')).toEqual(['hosts', 'ids', 'snapshots', 'tags']);
    expect(await names('/snapshots')).toEqual([time, `${time}-1`, 'latest']);
    expect(await names('/hosts')).toEqual(['h1', 'h2']);
    expect(await names('/tags/weekly')).toEqual([time, 'latest']);
    const ids = (await view.snapshots()).map((s) => s.id.slice(0, 8)).sort();
    expect(await names('/ids')).toEqual(ids);
    // Taken at the same second: the order (and so latest) is the snapshot ids', as `bh snapshots` lists them.
    const latest = await view.resolve('/snapshots/latest');
    const listed = await view.snapshots();
    expect(latest?.kind === 'snapshot' && latest.snapshot.id).toBe(listed[listed.length - 1]!.id);
    expect(await view.resolve('/snapshots/latest/no/such/path')).toBeUndefined();
    expect(await view.resolve(`/hosts/h1/latest${src}/note`)).toMatchObject({ kind: 'entry' });
    await view.close();
  });

  it('reads any range of a multi-chunk file exactly, and nothing past its end', async () => {
    const view = new SnapshotView(library);
    const node = await view.resolve(`/snapshots/latest${src}/dir/multi.bin`);
    const reader = await view.openFile(node!);
    expect(reader.size).toBe(content.length);
    for (const [offset, length] of [[0, 10], [MiB - 5, 2 * MiB + 10], [content.length - 7, 100], [content.length, 10], [3 * MiB, 4 * MiB]] as const) {
      expect((await reader.read(offset, length)).equals(content.subarray(offset, offset + length))).toBe(true);
    }
    expect((await readFile(join(src, 'dir', 'multi.bin'))).equals(content)).toBe(true);
    await view.close();
  });
});

describe('the blob cache', () => {
  let indexed: IndexedRepository;
  let ids: Buffer[];

  beforeAll(async () => {
    const snapshots = await loadSnapshots(library, () => undefined);
    indexed = await library.loadIndex(snapshots.listing);
    const view = new SnapshotView(library);
    const node = await view.resolve(`/snapshots/latest${src}/dir/multi.bin`);
    ids = node!.kind === 'entry' ? node!.node.content! : [];
    expect(ids.length).toBeGreaterThan(2);
    await view.close();
  });

  it('fetches a blob once for readers that want it at the same time', async () => {
    let fetches = 0;
    const counting = { loadBlob: (type: 'data' | 'tree', id: Uint8Array) => (fetches++, indexed.loadBlob(type, id)) };
    const cache = new BlobCache(() => counting, 64 * MiB);
    const results = await Promise.all(Array.from({ length: 8 }, () => Promise.all(ids.map((id) => cache.get(id)))));
    expect(fetches).toBe(ids.length);
    expect(Buffer.concat(results[0]!).equals(content)).toBe(true);
    for (const result of results) expect(result.every((blob, i) => blob === results[0]![i])).toBe(true);
  });

  it('keeps no more than its bound, dropping the least recently used', async () => {
    let fetches = 0;
    const counting = { loadBlob: (type: 'data' | 'tree', id: Uint8Array) => (fetches++, indexed.loadBlob(type, id)) };
    const sizes = await Promise.all(ids.map(async (id) => (await indexed.loadBlob('data', id)).length));
    // Room for the two largest blobs, not for all of them.
    const bound = [...sizes].sort((a, b) => b - a).slice(0, 2).reduce((a, b) => a + b, 0);
    const cache = new BlobCache(() => counting, bound);
    for (const id of ids) await cache.get(id);
    expect(cache.cachedBytes).toBeLessThanOrEqual(bound);
    expect(fetches).toBe(ids.length);
    await cache.get(ids[ids.length - 1]!); // the most recent one is still there
    expect(fetches).toBe(ids.length);
    await cache.get(ids[0]!); // the first one was dropped
    expect(fetches).toBe(ids.length + 1);
  });
});
