import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MasterIndex } from '../src/repo/master-index.js';
import type { PackedBlob } from '../src/repo/pack.js';

function blobs(count: number, type: 'data' | 'tree' = 'data'): PackedBlob[] {
  let offset = 0;
  return Array.from({ length: count }, (_, i) => {
    const length = 100 + (i % 7);
    const blob = { type, id: randomBytes(32), offset, length, rawLength: length * 2 };
    offset += length;
    return blob;
  });
}

describe('MasterIndex', () => {
  it('finds every blob it was given, across pending merges, and nothing else', () => {
    const index = new MasterIndex();
    const packs = Array.from({ length: 40 }, () => ({ id: randomBytes(32), blobs: blobs(5000) }));
    // 200 000 blobs: several pending-table merges happen on the way.
    for (const pack of packs) index.addPack(pack.id, pack.blobs);
    expect(index.blobCount).toBe(200_000);
    for (const pack of packs.filter((_, i) => i % 5 === 0)) {
      for (const blob of pack.blobs) {
        expect(index.lookup('data', blob.id)).toEqual({ packId: pack.id, offset: blob.offset, length: blob.length, rawLength: blob.rawLength });
      }
    }
    for (let i = 0; i < 1000; i++) expect(index.has('data', randomBytes(32))).toBe(false);
    // The same id as another type is a different blob.
    expect(index.has('tree', packs[0]!.blobs[0]!.id)).toBe(false);
  });

  it('keeps ids that share their first four bytes apart', () => {
    const index = new MasterIndex();
    const prefix = randomBytes(4);
    const ids = Array.from({ length: 50 }, () => Buffer.concat([prefix, randomBytes(28)]));
    const pack = randomBytes(32);
    index.addPack(
      pack,
      ids.map((id, i) => ({ type: 'tree' as const, id, offset: i * 10, length: 10, rawLength: 10 })),
    );
    ids.forEach((id, i) => expect(index.lookup('tree', id)?.offset).toBe(i * 10));
    expect(index.has('tree', Buffer.concat([prefix, randomBytes(28)]))).toBe(false);
  });

  it('agrees with a Map on random sequences of inserts and lookups', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.constantFrom('data', 'tree' as const)), { maxLength: 300 }), fc.boolean(), (entries, bulk) => {
        const index = new MasterIndex();
        if (bulk) index.beginBulkLoad();
        const reference = new Map<string, number>();
        const pack = Buffer.alloc(32, 7);
        entries.forEach(([id, type], i) => {
          const key = type + Buffer.from(id).toString('hex');
          index.addPack(pack, [{ type, id: Buffer.from(id), offset: i, length: 1, rawLength: 1 }]);
          if (!reference.has(key)) reference.set(key, i);
        });
        if (bulk) index.endBulkLoad();
        for (const [id, type] of entries) {
          const found = index.lookup(type, id);
          expect(found).toBeDefined();
          // Duplicates may resolve to any copy; every copy holds the same blob.
          expect(entries[found!.offset]![0]).toEqual(id);
        }
        expect([...index.entries()].length).toBe(entries.length);
      }),
    );
  });
});
