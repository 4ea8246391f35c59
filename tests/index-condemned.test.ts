/**
 * Condemned packs in the index format (BHX2) and in the in-memory index: round trips, BHX1
 * bytes unchanged when nothing is condemned, lookups preferring copies outside condemned packs,
 * and hasLive() (what dedup uses) ignoring condemned copies.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PackStates, decodeIndexFile, encodeIndexFile, type IndexFile } from '../src/repo/index-file.js';
import { MasterIndex } from '../src/repo/master-index.js';
import type { PackedBlob } from '../src/repo/pack.js';

const blob = (id: Buffer, offset: number): PackedBlob => ({ type: 'data', id, offset, length: 100, rawLength: 150 });

describe('index files with condemned packs', () => {
  it('round-trip, and stay BHX1 when nothing is condemned', () => {
    const live = { packId: randomBytes(32), blobs: [blob(randomBytes(32), 0), blob(randomBytes(32), 100)] };
    const condemned = { packId: randomBytes(32), blobs: [blob(randomBytes(32), 0)], since: 1_764_000_000_123 };
    const file: IndexFile = { supersedes: [randomBytes(32)], packs: [live], condemned: [condemned] };
    const bytes = encodeIndexFile(file);
    expect(bytes.subarray(0, 4).toString()).toBe('BHX2');
    expect(decodeIndexFile(bytes, 'x')).toEqual(file);
    const plain = encodeIndexFile({ supersedes: [], packs: [live] });
    expect(plain.subarray(0, 4).toString()).toBe('BHX1');
    expect(encodeIndexFile({ supersedes: [], packs: [live], condemned: [] })).toEqual(plain);
    expect(decodeIndexFile(plain, 'x')).toEqual({ supersedes: [], packs: [live] });
    expect(() => decodeIndexFile(bytes.subarray(0, bytes.length - 3), 'index/x')).toThrow(/index\/x: index is malformed \(truncated\)/);
  });
});

describe('the packs of the index in force', () => {
  it('are live when any file lists them live, else condemned at the latest time, in any order of files', () => {
    const [revived, twice, once, live] = [randomBytes(32), randomBytes(32), randomBytes(32), randomBytes(32)];
    const files: IndexFile[] = [
      { supersedes: [], packs: [{ packId: live, blobs: [] }], condemned: [{ packId: revived, blobs: [], since: 10 }, { packId: twice, blobs: [], since: 30 }] },
      { supersedes: [], packs: [{ packId: revived, blobs: [] }], condemned: [{ packId: twice, blobs: [], since: 20 }, { packId: once, blobs: [], since: 5 }] },
    ];
    const expected = new Map([[live, null], [revived, null], [twice, 30], [once, 5]].map(([id, since]) => [(id as Buffer).toString('hex'), since]));
    for (const order of [files, [...files].reverse()]) {
      const states = new PackStates();
      for (const file of order) states.add(file);
      expect(states.byPack).toEqual(expected);
    }
  });
});

describe('MasterIndex with condemned packs', () => {
  it('prefers a live copy, and hasLive ignores condemned ones', () => {
    const index = new MasterIndex();
    const shared = randomBytes(32);
    const onlyCondemned = randomBytes(32);
    const condemnedPack = randomBytes(32);
    const livePack = randomBytes(32);
    // The condemned copy is added first, so without the preference it would be found first.
    index.addPack(condemnedPack, [blob(shared, 0), blob(onlyCondemned, 100)]);
    index.addPack(livePack, [blob(shared, 500)]);
    index.condemn(condemnedPack, 42);
    expect(index.lookup('data', shared)?.packId).toEqual(livePack);
    expect(index.hasLive('data', shared)).toBe(true);
    expect(index.lookup('data', onlyCondemned)?.packId).toEqual(condemnedPack);
    expect(index.has('data', onlyCondemned)).toBe(true);
    expect(index.hasLive('data', onlyCondemned)).toBe(false);
    expect(index.condemnedSince(index.packs().findIndex((p) => p.equals(condemnedPack)))).toBe(42);
    // The same after the pending rows are merged into the sorted table.
    index.beginBulkLoad();
    index.endBulkLoad();
    expect(index.lookup('data', shared)?.packId).toEqual(livePack);
    expect(index.hasLive('data', onlyCondemned)).toBe(false);
  });
});
