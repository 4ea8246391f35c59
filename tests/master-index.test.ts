import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BlobLocation, type IndexEntry, MasterIndex } from '../src/repo/master-index.js';
import type { BlobType } from '../src/repo/crypto.js';
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

/** A copy of a blob as the reference holds it: the pack by number, and where the blob is in it. */
interface Copy {
  pack: number;
  offset: number;
  length: number;
  rawLength: number;
}

/**
 * What MasterIndex must answer, kept the obvious way: pack ids in the order they were first
 * added, each blob's copies in a Map keyed by type and id hex, and every row added.
 */
class ReferenceIndex {
  readonly packs: Buffer[] = [];
  readonly condemned = new Map<number, number>();
  readonly copies = new Map<string, Copy[]>();
  readonly rows: Record<BlobType, IndexEntry[]> = { data: [], tree: [] };

  packNumber(packId: Buffer): number {
    return this.packs.findIndex((p) => p.equals(packId));
  }

  addPack(packId: Buffer, blobs: readonly PackedBlob[]): void {
    if (this.packNumber(packId) < 0) this.packs.push(Buffer.from(packId));
    const pack = this.packNumber(packId);
    for (const { type, id, offset, length, rawLength } of blobs) {
      const key = `${type}:${id.toString('hex')}`;
      this.copies.set(key, [...(this.copies.get(key) ?? []), { pack, offset, length, rawLength }]);
      this.rows[type].push({ type, id: Buffer.from(id), packId: this.packs[pack]!, offset, length, rawLength });
    }
  }

  copiesOf(type: BlobType, id: Uint8Array): Copy[] {
    return this.copies.get(`${type}:${Buffer.from(id).toString('hex')}`) ?? [];
  }
}

const rowKey = (e: IndexEntry): string => `${e.type}:${e.id.toString('hex')}@${e.packId.toString('hex')}:${e.offset}:${e.length}:${e.rawLength}`;

/** Every answer about one id: has, hasLive, lookup (any copy, a live one when there is one) and findRow. */
function expectLookupsAgree(index: MasterIndex, reference: ReferenceIndex, type: BlobType, id: Buffer): void {
  const copies = reference.copiesOf(type, id);
  const live = copies.filter((c) => !reference.condemned.has(c.pack));
  expect(index.has(type, id)).toBe(copies.length > 0);
  expect(index.hasLive(type, id)).toBe(live.length > 0);
  const found = index.lookup(type, id);
  const row = index.findRow(type, id);
  if (copies.length === 0) {
    expect(found).toBeUndefined();
    expect(row).toBe(-1);
    return;
  }
  const candidates = (live.length > 0 ? live : copies).map((c) => ({ packId: reference.packs[c.pack]!, offset: c.offset, length: c.length, rawLength: c.rawLength }));
  expect(candidates).toContainEqual(found);
  expect(index.rowEntry(type, row)).toEqual({ type, id, ...found });
}

/** Row walks (rowEntry, rowPack, rowLength, forEachIdHead, entries, blobExtents) and the pack table against the reference. */
function expectWalksAgree(index: MasterIndex, reference: ReferenceIndex): void {
  expect(index.packCount).toBe(reference.packs.length);
  expect(index.packs()).toEqual(reference.packs);
  reference.packs.forEach((packId, n) => {
    expect(index.packId(n)).toEqual(packId);
    expect(index.hasPack(packId)).toBe(true);
    expect(index.condemnedSince(n)).toBe(reference.condemned.get(n));
  });
  expect(index.condemnedCount).toBe(reference.condemned.size);
  expect(index.blobCount).toBe(reference.rows.data.length + reference.rows.tree.length);
  for (const type of ['data', 'tree'] as const) {
    const count = index.rowCount(type);
    expect(count).toBe(reference.rows[type].length);
    // Compared as strings: one deep comparison of objects per row would make this test slow.
    const rows = Array.from({ length: count }, (_, row) => index.rowEntry(type, row));
    const keys = rows.map(rowKey);
    expect([...keys].sort()).toEqual(reference.rows[type].map(rowKey).sort());
    expect(rows.map((_, row) => `${index.packId(index.rowPack(type, row)).toString('hex')}:${index.rowLength(type, row)}`)).toEqual(rows.map((e) => `${e.packId.toString('hex')}:${e.length}`));
    const heads: string[] = [];
    index.forEachIdHead(type, (first, second) => heads.push(`${first}:${second}`));
    expect(heads).toEqual(rows.map((e) => `${e.id.readUInt32BE(0)}:${new Uint32Array(Uint8Array.from(e.id.subarray(4, 8)).buffer)[0]!}`));
    expect([...index.entries(type)].map(rowKey)).toEqual(keys);
    const extents = new Map<string, number>();
    for (const e of rows) extents.set(e.packId.toString('hex'), Math.max(extents.get(e.packId.toString('hex')) ?? 0, e.offset + e.length));
    expect(index.blobExtents(type)).toEqual(extents);
  }
  expect([...index.entries()].map(rowKey)).toEqual([...index.entries('data'), ...index.entries('tree')].map(rowKey));
}

/** 32 bytes from `head` followed by `tail`. */
const idFrom = ([head, tail]: [Uint8Array, Uint8Array]): Buffer => Buffer.concat([head, tail]);
const bytes = (n: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: n, maxLength: n });
/** Ids that often share their first 2 or 4 bytes (one bucket; one head), or all but the last 4. */
const idArb: fc.Arbitrary<Buffer> = fc.oneof(
  bytes(32).map((b) => Buffer.from(b)),
  fc.tuple(fc.constantFrom(Uint8Array.of(0, 0), Uint8Array.of(0xab, 0xcd), Uint8Array.of(0xff, 0xff)), bytes(30)).map(idFrom),
  fc.tuple(fc.constantFrom(Uint8Array.of(0xab, 0xcd, 0, 1), Uint8Array.of(0xab, 0xcd, 0xff, 0xff), Uint8Array.of(0, 0, 0, 0)), bytes(28)).map(idFrom),
  fc.tuple(fc.constant(new Uint8Array(28).fill(0x5a)), bytes(4)).map(idFrom),
);
/** Pack ids: random, or numbered ones that share 28 bytes (many of them, past the pack table's first growth). */
const packArb: fc.Arbitrary<Buffer> = fc.oneof(
  bytes(32).map((b) => Buffer.from(b)),
  fc.nat(200).map((k) => {
    const id = Buffer.alloc(32, 0x77);
    id.writeUInt32BE(k, 28);
    return id;
  }),
);
const u32 = fc.nat({ max: 0xffffffff });
/** A stored blob is never empty (its envelope holds at least a nonce and a tag). */
const storedLength = fc.integer({ min: 1, max: 0xffffffff });

type Op =
  | { kind: 'add'; pack: Buffer; blobs: { type: BlobType; id: number; offset: number; length: number; rawLength: number }[] }
  | { kind: 'bulk' }
  | { kind: 'condemn'; pack: number; since: number }
  | { kind: 'lookup'; id: number; type: BlobType }
  | { kind: 'absent'; id: Buffer }
  | { kind: 'walk' };

const typeArb = fc.constantFrom<BlobType>('data', 'tree');
/** Operations, with up to `maxBlobs` blobs an addPack. */
const opsArb = (maxBlobs: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('add' as const), pack: packArb, blobs: fc.array(fc.record({ type: typeArb, id: fc.nat(), offset: u32, length: storedLength, rawLength: u32 }), { maxLength: maxBlobs }) }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'bulk' as const }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('condemn' as const), pack: fc.nat(), since: fc.nat({ max: 2 ** 45 }) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('lookup' as const), id: fc.nat(), type: typeArb }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('absent' as const), id: idArb }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'walk' as const }) },
  );

/**
 * Runs `ops` on a MasterIndex and the reference side by side. Blob ids are picked from `pool`
 * (so the same id turns up in several packs and as both types). 'bulk' toggles bulk loading:
 * rows added then are findable only after endBulkLoad(), which also merges every pending row,
 * so later adds leave sorted and pending rows side by side. Lookups wait for the bulk load to end.
 */
function runOps(pool: Buffer[], ops: readonly Op[]): void {
  const index = new MasterIndex();
  const reference = new ReferenceIndex();
  let bulk = false;
  for (const op of ops) {
    if (op.kind === 'add') {
      const blobs = op.blobs.map(({ id, ...rest }) => ({ ...rest, id: Buffer.from(pool[id % pool.length]!) }));
      index.addPack(Buffer.from(op.pack), blobs);
      reference.addPack(op.pack, blobs);
    } else if (op.kind === 'bulk') {
      if (bulk) index.endBulkLoad();
      else index.beginBulkLoad();
      bulk = !bulk;
    } else if (op.kind === 'condemn') {
      const pack = op.pack % (reference.packs.length + 1);
      if (pack === reference.packs.length) {
        const unknown = Buffer.alloc(32, 0xee);
        if (reference.packNumber(unknown) < 0) expect(() => index.condemn(unknown, op.since)).toThrow(/not in the index/);
        continue;
      }
      index.condemn(reference.packs[pack]!, op.since);
      reference.condemned.set(pack, op.since);
    } else if (op.kind === 'walk') {
      expectWalksAgree(index, reference);
    } else if (!bulk) {
      const [type, id] = op.kind === 'lookup' ? [op.type, pool[op.id % pool.length]!] : (['data', op.id] as const);
      expectLookupsAgree(index, reference, type, id);
      // A neighbour: the same id but for its last byte, absent unless the pool holds it too.
      const neighbour = Buffer.from(id);
      neighbour[31]! ^= 1;
      expectLookupsAgree(index, reference, type, neighbour);
    }
  }
  if (bulk) index.endBulkLoad();
  for (const id of pool) for (const type of ['data', 'tree'] as const) expectLookupsAgree(index, reference, type, id);
  expectWalksAgree(index, reference);
}

describe('MasterIndex', () => {
  it('finds every blob it was given, across pending merges, and nothing else', () => {
    const index = new MasterIndex();
    const packs = Array.from({ length: 40 }, () => ({ id: randomBytes(32), blobs: blobs(5000) }));
    // 200 000 blobs: several pending-table merges happen on the way.
    for (const pack of packs) index.addPack(pack.id, pack.blobs);
    expect(index.blobCount).toBe(200_000);
    for (const pack of packs.filter((_, i) => i % 5 === 0)) {
      const where = (l: BlobLocation | undefined): string => (l ? `${l.packId.toString('hex')}:${l.offset}:${l.length}:${l.rawLength}` : 'absent');
      expect(pack.blobs.map((blob) => where(index.lookup('data', blob.id)))).toEqual(pack.blobs.map((blob) => where({ packId: pack.id, ...blob })));
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

  it('agrees with a reference on random sequences of adds (bulk and incremental), condemns, lookups and row walks', () => {
    fc.assert(fc.property(fc.array(idArb, { minLength: 1, maxLength: 40 }), fc.array(opsArb(12), { maxLength: 60 }), runOps), { numRuns: 200 });
  });

  it('agrees with the reference at a size where pending rows span several chunks and pack ids outgrow their first table', () => {
    // ~8 000 incremental rows, then ~6 000 bulk-loaded ones (all merged at its end), then ~7 000 incremental again.
    const pool = fc.sample(idArb, { numRuns: 4000, seed: 42 });
    const ops = fc.sample(opsArb(40), { numRuns: 3000, seed: 7 }).filter((op, i) => (op.kind !== 'bulk' && op.kind !== 'walk') || i % 1000 === 0);
    ops.splice(1200, 0, { kind: 'bulk' });
    ops.splice(2000, 0, { kind: 'walk' }, { kind: 'bulk' });
    // Merges the last ~3 000 incremental rows into the sorted ones (many share a bucket: long runs of sorted rows).
    ops.splice(2600, 0, { kind: 'bulk' }, { kind: 'bulk' });
    runOps(pool, ops);
  });
});
