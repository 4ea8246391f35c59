/**
 * The in-memory index of every blob in the repository (docs/FORMAT.md §5, "in memory").
 *
 * Tens of millions of blobs must fit, so there is no JS object per blob. Each blob type has a
 * table of parallel typed arrays sorted by blob id:
 *   prefix u32 (the id's first 4 bytes, big-endian) · rest of the id (28 bytes) · pack number u32
 *   · offset u32 · length u32 · raw length u32                                  = 48 bytes a blob
 * Lookups binary-search the prefix column (O(log n)). New blobs go to a small pending table
 * (a Map, bounded) that is merged in by an O(n) radix sort when it grows past a quarter of the
 * table, so the amortised cost of an insert stays O(1).
 */
import type { BlobType } from './crypto.js';
import type { PackedBlob } from './pack.js';

export interface BlobLocation {
  packId: Buffer;
  offset: number;
  length: number;
  rawLength: number;
}

export interface IndexEntry extends BlobLocation {
  type: BlobType;
  id: Buffer;
}

const ID_REST = 28;
const MIN_PENDING_MERGE = 65536;

class Columns {
  prefix: Uint32Array;
  rest: Uint8Array;
  pack: Uint32Array;
  offset: Uint32Array;
  length: Uint32Array;
  rawLength: Uint32Array;
  count = 0;

  constructor(capacity: number) {
    this.prefix = new Uint32Array(capacity);
    this.rest = new Uint8Array(capacity * ID_REST);
    this.pack = new Uint32Array(capacity);
    this.offset = new Uint32Array(capacity);
    this.length = new Uint32Array(capacity);
    this.rawLength = new Uint32Array(capacity);
  }

  get capacity(): number {
    return this.prefix.length;
  }

  push(id: Uint8Array, pack: number, offset: number, length: number, rawLength: number): number {
    const i = this.count++;
    this.prefix[i] = readPrefix(id);
    this.rest.set(id.subarray(4, 32), i * ID_REST);
    this.pack[i] = pack;
    this.offset[i] = offset;
    this.length[i] = length;
    this.rawLength[i] = rawLength;
    return i;
  }

  id(i: number): Buffer {
    const id = Buffer.allocUnsafe(32);
    id.writeUInt32BE(this.prefix[i]!, 0);
    id.set(this.rest.subarray(i * ID_REST, (i + 1) * ID_REST), 4);
    return id;
  }

  restEquals(i: number, id: Uint8Array): boolean {
    const base = i * ID_REST;
    for (let k = 0; k < ID_REST; k++) if (this.rest[base + k] !== id[4 + k]) return false;
    return true;
  }

  /** A copy holding rows in `order`, with room for `capacity` rows. */
  permuted(order: Uint32Array, capacity: number): Columns {
    const out = new Columns(capacity);
    for (let j = 0; j < order.length; j++) {
      const i = order[j]!;
      out.prefix[j] = this.prefix[i]!;
      out.rest.set(this.rest.subarray(i * ID_REST, (i + 1) * ID_REST), j * ID_REST);
      out.pack[j] = this.pack[i]!;
      out.offset[j] = this.offset[i]!;
      out.length[j] = this.length[i]!;
      out.rawLength[j] = this.rawLength[i]!;
    }
    out.count = order.length;
    return out;
  }
}

function readPrefix(id: Uint8Array): number {
  return ((id[0]! << 24) | (id[1]! << 16) | (id[2]! << 8) | id[3]!) >>> 0;
}

/** Row order sorting `keys[0..n)` ascending: two stable 16-bit LSD radix passes. */
function radixOrder(keys: Uint32Array, n: number): Uint32Array {
  let order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let scratch = new Uint32Array(n);
  for (const shift of [0, 16]) {
    const counts = new Uint32Array(65537);
    for (let i = 0; i < n; i++) counts[((keys[i]! >>> shift) & 0xffff) + 1]!++;
    for (let b = 1; b <= 65536; b++) counts[b]! += counts[b - 1]!;
    for (let j = 0; j < n; j++) {
      const i = order[j]!;
      scratch[counts[(keys[i]! >>> shift) & 0xffff]!++] = i;
    }
    [order, scratch] = [scratch, order];
  }
  return order;
}

class BlobTable {
  /** Sorted rows [0, sorted); rows past it are pending, found through `pending`. */
  private columns = new Columns(1024);
  private sorted = 0;
  private pending = new Map<string, number>();

  get size(): number {
    return this.columns.count;
  }

  add(id: Uint8Array, pack: number, offset: number, length: number, rawLength: number): void {
    if (this.columns.count === this.columns.capacity) this.grow();
    const row = this.columns.push(id, pack, offset, length, rawLength);
    this.pending.set(Buffer.from(id.buffer, id.byteOffset, 32).toString('hex'), row);
    if (this.pending.size >= Math.max(MIN_PENDING_MERGE, this.sorted / 4)) this.merge();
  }

  find(id: Uint8Array): number {
    const c = this.columns;
    const key = readPrefix(id);
    let lo = 0;
    let hi = this.sorted;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (c.prefix[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.sorted && c.prefix[i] === key; i++) if (c.restEquals(i, id)) return i;
    if (this.pending.size === 0) return -1;
    return this.pending.get(Buffer.from(id.buffer, id.byteOffset, 32).toString('hex')) ?? -1;
  }

  get rows(): Columns {
    return this.columns;
  }

  /** Sorts every row, pending included; called when pending grows and once after bulk loading. */
  merge(): void {
    const n = this.columns.count;
    const order = radixOrder(this.columns.prefix, n);
    this.columns = this.columns.permuted(order, Math.max(1024, this.columns.capacity));
    this.sorted = n;
    this.pending.clear();
  }

  private grow(): void {
    const old = this.columns;
    const order = new Uint32Array(old.count);
    for (let i = 0; i < old.count; i++) order[i] = i;
    this.columns = old.permuted(order, old.capacity * 2);
  }
}

export class MasterIndex {
  private readonly tables: Record<BlobType, BlobTable> = { data: new BlobTable(), tree: new BlobTable() };
  private packIds: Buffer[] = [];
  private packNumbers = new Map<string, number>();

  get blobCount(): number {
    return this.tables.data.size + this.tables.tree.size;
  }

  get packCount(): number {
    return this.packIds.length;
  }

  addPack(packId: Buffer, blobs: readonly PackedBlob[]): void {
    const key = packId.toString('hex');
    let pack = this.packNumbers.get(key);
    if (pack === undefined) {
      pack = this.packIds.length;
      this.packIds.push(packId);
      this.packNumbers.set(key, pack);
    }
    for (const blob of blobs) this.tables[blob.type].add(blob.id, pack, blob.offset, blob.length, blob.rawLength);
  }

  hasPack(packId: Buffer): boolean {
    return this.packNumbers.has(packId.toString('hex'));
  }

  has(type: BlobType, id: Uint8Array): boolean {
    return this.tables[type].find(id) >= 0;
  }

  lookup(type: BlobType, id: Uint8Array): BlobLocation | undefined {
    const table = this.tables[type];
    const row = table.find(id);
    if (row < 0) return undefined;
    const c = table.rows;
    return { packId: this.packIds[c.pack[row]!]!, offset: c.offset[row]!, length: c.length[row]!, rawLength: c.rawLength[row]! };
  }

  /** Sorts what bulk loading added; lookups work without it, only faster with it. */
  optimize(): void {
    this.tables.data.merge();
    this.tables.tree.merge();
  }

  /** Every indexed blob, one object at a time (for check and stats; not for hot paths). */
  *entries(type?: BlobType): Generator<IndexEntry> {
    for (const t of type ? [type] : (['data', 'tree'] as const)) {
      const c = this.tables[t].rows;
      for (let i = 0; i < c.count; i++) {
        yield { type: t, id: c.id(i), packId: this.packIds[c.pack[i]!]!, offset: c.offset[i]!, length: c.length[i]!, rawLength: c.rawLength[i]! };
      }
    }
  }

  packs(): Buffer[] {
    return [...this.packIds];
  }
}
