/**
 * Tree reads by pack (src/repo/tree-packs.ts), at the library level: a repository in a temp
 * folder, opened through a decorator that records every read the repository makes of its
 * backend. A decorator rather than server logs because the question here is which reads the
 * code chooses (whole pack or range), and a local backend answers it exactly.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, type ByteRange, type FileRef, LocalBackend, type ReadExtent, isWholeFile } from '../src/backends/index.js';
import { Repository } from '../src/repo/repository.js';
import { makeTempDir, removeDir } from './helpers/cli.js';

const SECRET = { kind: 'password' as const, password: Buffer.from('tree packs') };
const TREES = 60;

interface Read {
  name: string;
  range: ByteRange | undefined;
}

/** The backend, with every read of a pack recorded. */
function counting(backend: Backend, reads: Read[]): Backend {
  return {
    location: backend.location,
    list: (type) => backend.list(type),
    stat: (ref) => backend.stat(ref),
    read: (ref: FileRef, extent: ReadExtent) => {
      if (ref.type === 'data') reads.push({ name: ref.name, range: isWholeFile(extent) ? undefined : extent });
      return backend.read(ref, extent);
    },
    write: (ref, data) => backend.write(ref, data),
    remove: (ref) => backend.remove(ref),
    create: () => backend.create(),
    close: () => backend.close(),
  };
}

let tmp: string;
let repoDir: string;
const trees: Buffer[] = [];
const ids: Buffer[] = [];

beforeAll(async () => {
  tmp = await makeTempDir('bh-tree-packs-');
  repoDir = join(tmp, 'repo');
  const repo = await Repository.init(new LocalBackend(repoDir), SECRET, { scrypt: { N: 1024, r: 8, p: 1 } });
  const indexed = await repo.loadIndex(await repo.listSnapshots());
  for (let i = 0; i < TREES; i++) {
    // Tree blobs are opaque to the repository layer; any bytes do.
    const tree = Buffer.concat([Buffer.from(`tree ${i} `), randomBytes(2000)]);
    trees.push(tree);
    ids.push((await indexed.saveBlob('tree', Buffer.from(tree))).id);
  }
  await indexed.flush();
  await indexed.close();
});

afterAll(async () => {
  if (tmp) await removeDir(tmp);
});

async function openCounting(reads: Read[]) {
  const repo = await Repository.open(counting(new LocalBackend(repoDir), reads), SECRET);
  return repo.loadIndex(await repo.listSnapshots());
}

describe('tree reads by pack', () => {
  it('reads the pack once, whole, for all its trees', async () => {
    const reads: Read[] = [];
    const indexed = await openCounting(reads);
    for (let i = 0; i < TREES; i++) expect((await indexed.loadBlob('tree', ids[i]!)).equals(trees[i]!)).toBe(true);
    expect(reads).toHaveLength(1);
    expect(reads[0]!.range).toBeUndefined();
  });

  it('trees asked for at once share one read', async () => {
    const reads: Read[] = [];
    const indexed = await openCounting(reads);
    const loaded = await Promise.all(ids.map((id) => indexed.loadBlob('tree', id)));
    loaded.forEach((tree, i) => expect(tree.equals(trees[i]!)).toBe(true));
    expect(reads).toHaveLength(1);
  });

  it('a pack that does not hash to its name is read tree by tree: only the damaged tree fails', async () => {
    const reads: Read[] = [];
    const indexed = await openCounting(reads);
    const where = indexed.index.lookup('tree', ids[7]!)!;
    const packHex = where.packId.toString('hex');
    const path = join(repoDir, 'data', packHex.slice(0, 2), packHex);
    const original = await readFile(path);
    const damaged = Buffer.from(original);
    damaged[where.offset + Math.floor(where.length / 2)]! ^= 0x01;
    await writeFile(path, damaged);
    try {
      expect(createHash('sha256').update(damaged).digest('hex')).not.toBe(packHex);
      for (let i = 0; i < TREES; i++) {
        if (i === 7) await expect(indexed.loadBlob('tree', ids[i]!)).rejects.toThrow(packHex);
        else expect((await indexed.loadBlob('tree', ids[i]!)).equals(trees[i]!)).toBe(true);
      }
      // One whole read that failed its hash, then one ranged read per tree.
      expect(reads[0]!.range).toBeUndefined();
      expect(reads.slice(1).every((r) => r.range !== undefined)).toBe(true);
      expect(reads).toHaveLength(1 + TREES);
    } finally {
      await writeFile(path, original);
    }
  });
  it('a pack padded with junk is not read whole: every tree is read by its range and opens', async () => {
    const reads: Read[] = [];
    const indexed = await openCounting(reads);
    const packHex = indexed.index.lookup('tree', ids[0]!)!.packId.toString('hex');
    const path = join(repoDir, 'data', packHex.slice(0, 2), packHex);
    const size = (await stat(path)).size;
    // 1 GiB more, sparse: costs no disk, and would cost the memory if it were read.
    await truncate(path, size + 1024 ** 3);
    try {
      for (let i = 0; i < TREES; i++) expect((await indexed.loadBlob('tree', ids[i]!)).equals(trees[i]!)).toBe(true);
      expect(reads[0]!.range).toBeUndefined();
      expect(reads.slice(1).every((r) => r.range !== undefined)).toBe(true);
      expect(reads).toHaveLength(1 + TREES);
    } finally {
      await truncate(path, size);
    }
  });
});
