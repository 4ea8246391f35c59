/**
 * The in-memory index of every blob in the repository (docs/FORMAT.md §5, "in memory").
 *
 * Tens of millions of blobs must fit, so there is no JS object per blob. Each blob type has one
 * Uint32Array of 12-word rows, sorted by blob id:
 *   prefix (the id's first 4 bytes, big-endian) · rest of the id (7 words) · pack number
 *   · offset · length · raw length                                              = 48 bytes a blob
 * Rows are kept whole (row-major) so a lookup or a sort touches one or two cache lines per row.
 * Lookups go through a 65 536-entry bucket table on the top 16 bits of the prefix, then a binary
 * search inside the bucket: O(log n) with few cache misses. The sorted table is sized exactly
 * (a loaded index costs 48 bytes a blob plus two 256 KiB bucket tables); new blobs go to a
 * small pending table with a hash (4 bytes a slot), merged in (radix sort of the new rows, then
 * a sequential two-way merge) when it grows past a quarter of the sorted rows: amortised O(1).
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

const ROW = 12;
const REST = 1;
const REST_WORDS = 7;
const PACK = 8;
const OFFSET = 9;
const LENGTH = 10;
const RAW_LENGTH = 11;
const MIN_PENDING_MERGE = 65536;
const MAX_PENDING_MERGE = 1 << 20;

class Rows {
  readonly words: Uint32Array;
  count = 0;

  constructor(readonly capacity: number) {
    this.words = new Uint32Array(capacity * ROW);
  }

  push(id: Uint8Array, pack: number, offset: number, length: number, rawLength: number): number {
    const i = this.count++;
    const w = this.words;
    const base = i * ROW;
    w[base] = readPrefix(id);
    const rest = restWords(id);
    for (let k = 0; k < REST_WORDS; k++) w[base + REST + k] = rest[k]!;
    w[base + PACK] = pack;
    w[base + OFFSET] = offset;
    w[base + LENGTH] = length;
    w[base + RAW_LENGTH] = rawLength;
    return i;
  }

  prefix(i: number): number {
    return this.words[i * ROW]!;
  }

  field(i: number, field: number): number {
    return this.words[i * ROW + field]!;
  }

  id(i: number): Buffer {
    const id = Buffer.allocUnsafe(32);
    id.writeUInt32BE(this.prefix(i), 0);
    Buffer.from(this.words.buffer, this.words.byteOffset + (i * ROW + REST) * 4, REST_WORDS * 4).copy(id, 4);
    return id;
  }

  restEquals(i: number, rest: Uint32Array): boolean {
    const base = i * ROW + REST;
    for (let k = 0; k < REST_WORDS; k++) if (this.words[base + k] !== rest[k]) return false;
    return true;
  }

  /** A copy with room for `capacity` rows. */
  grown(capacity: number): Rows {
    const out = new Rows(capacity);
    out.words.set(this.words.subarray(0, this.count * ROW));
    out.count = this.count;
    return out;
  }
}

function readPrefix(id: Uint8Array): number {
  return ((id[0]! << 24) | (id[1]! << 16) | (id[2]! << 8) | id[3]!) >>> 0;
}

const scratchWords = new Uint32Array(REST_WORDS);
const scratchBytes = new Uint8Array(scratchWords.buffer);

/** The id's last 28 bytes as words, in a shared scratch array (valid until the next call). */
function restWords(id: Uint8Array): Uint32Array {
  for (let k = 0; k < 28; k++) scratchBytes[k] = id[4 + k]!;
  return scratchWords;
}

/** Order of rows [from, to) of `rows` by prefix: two stable 16-bit LSD radix passes. */
function radixOrder(rows: Rows, from: number, to: number): Uint32Array {
  const n = to - from;
  const keys = new Uint32Array(n);
  for (let i = 0; i < n; i++) keys[i] = rows.prefix(from + i);
  let order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let scratch = new Uint32Array(n);
  const counts = new Uint32Array(65537);
  for (const shift of [0, 16]) {
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[((keys[i]! >>> shift) & 0xffff) + 1]!++;
    for (let b = 1; b <= 65536; b++) counts[b]! += counts[b - 1]!;
    for (let j = 0; j < n; j++) {
      const i = order[j]!;
      scratch[counts[(keys[i]! >>> shift) & 0xffff]!++] = i;
    }
    [order, scratch] = [scratch, order];
  }
  for (let j = 0; j < n; j++) order[j]! += from;
  return order;
}

/**
 * One blob type's rows: a sorted table sized exactly to its rows (what loading an index
 * builds), and a small pending table of rows added since, found through an open-addressing
 * hash (slots hold row + 1; 0 is empty) keyed by the id's first 4 bytes. Rows are numbered
 * sorted first, then pending.
 */
class BlobTable {
  private sorted = new Rows(0);
  private pending = new Rows(1024);
  /** bucketStart[b] = first sorted row whose prefix >>> 16 is b; bucketStart[65536] = sorted rows. */
  private readonly bucketStart = new Uint32Array(65537);
  /** Allocated with the first pending row: a table only read (restore, check) never pays for it. */
  private slots = new Int32Array(0);
  /** In bulk mode pending rows are only appended (not findable) until the next merge(). */
  bulk = false;

  get size(): number {
    return this.sorted.count + this.pending.count;
  }

  add(id: Uint8Array, pack: number, offset: number, length: number, rawLength: number): void {
    const p = this.pending;
    if (p.count === p.capacity) this.pending = p.grown(p.capacity * 2);
    const row = this.pending.push(id, pack, offset, length, rawLength);
    if (this.bulk) return;
    if (this.slots.length === 0) this.slots = new Int32Array(slotCountFor(this.sorted.count));
    const mask = this.slots.length - 1;
    let slot = this.pending.prefix(row) & mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = row + 1;
    if (this.pending.count >= this.slots.length / 2) this.merge();
  }

  /**
   * Row number of `id`, or -1. With `avoid` (a flag per pack number), a row in a pack not
   * flagged is preferred over one in a flagged pack when the blob has several copies.
   */
  find(id: Uint8Array, avoid?: Uint8Array): number {
    const r = this.sorted;
    const key = readPrefix(id);
    const rest = restWords(id);
    const bucket = key >>> 16;
    let lo = this.bucketStart[bucket]!;
    let hi = this.bucketStart[bucket + 1]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (r.prefix(mid) < key) lo = mid + 1;
      else hi = mid;
    }
    let found = -1;
    const better = (row: number): boolean => {
      if (found < 0) found = row;
      return !avoid || avoid[this.field(row, PACK)] !== 1;
    };
    for (let i = lo; i < r.count && r.prefix(i) === key; i++) if (r.restEquals(i, rest) && better(i)) return i;
    if (this.slots.length === 0) return found;
    const p = this.pending;
    const mask = this.slots.length - 1;
    for (let slot = key & mask; this.slots[slot] !== 0; slot = (slot + 1) & mask) {
      const row = this.slots[slot]! - 1;
      if (p.prefix(row) === key && p.restEquals(row, rest) && better(r.count + row)) return r.count + row;
    }
    return found;
  }

  field(row: number, field: number): number {
    return row < this.sorted.count ? this.sorted.field(row, field) : this.pending.field(row - this.sorted.count, field);
  }

  id(row: number): Buffer {
    return row < this.sorted.count ? this.sorted.id(row) : this.pending.id(row - this.sorted.count);
  }

  /**
   * Sorts the pending rows and merges them with the sorted ones (a sequential two-way merge)
   * into a table of exactly the rows' size; the pending table starts over.
   */
  merge(): void {
    const r = this.sorted;
    const p = this.pending;
    const n = r.count + p.count;
    if (p.count > 0) {
      const order = radixOrder(p, 0, p.count);
      const out = new Rows(n);
      const a = r.words;
      const b = p.words;
      const dst = out.words;
      let i = 0;
      let j = 0;
      for (let o = 0; o < n; o++) {
        const fromSorted = j >= order.length || (i < r.count && a[i * ROW]! <= b[order[j]! * ROW]!);
        const src = fromSorted ? a : b;
        const from = (fromSorted ? i++ : order[j++]!) * ROW;
        const to = o * ROW;
        for (let k = 0; k < ROW; k++) dst[to + k] = src[from + k]!;
      }
      out.count = n;
      this.sorted = out;
      this.pending = new Rows(1024);
    }
    const starts = this.bucketStart;
    starts.fill(0);
    for (let i = 0; i < n; i++) starts[(this.sorted.prefix(i) >>> 16) + 1]!++;
    for (let b = 1; b <= 65536; b++) starts[b]! += starts[b - 1]!;
    this.slots = new Int32Array(0);
  }
}

/** Pending rows may reach a quarter of the sorted ones (within bounds) before a merge; the hash is kept half empty. */
function slotCountFor(sortedRows: number): number {
  const pendingLimit = Math.min(MAX_PENDING_MERGE, Math.max(MIN_PENDING_MERGE, sortedRows >>> 2));
  return 2 ** Math.ceil(Math.log2(pendingLimit * 2));
}

export class MasterIndex {
  private readonly tables: Record<BlobType, BlobTable> = { data: new BlobTable(), tree: new BlobTable() };
  private packIds: Buffer[] = [];
  private packNumbers = new Map<string, number>();
  /** 1 for a condemned pack, by pack number (grown on demand); see condemn(). */
  private condemnedFlags = new Uint8Array(0);
  /** When each condemned pack was condemned (ms), by pack number. */
  private readonly condemnedAt = new Map<number, number>();

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

  /** Whether a copy of the blob lives in a pack that is not condemned: only such copies may be deduplicated against. */
  hasLive(type: BlobType, id: Uint8Array): boolean {
    const row = this.findRow(type, id);
    return row >= 0 && !this.isCondemnedNumber(this.tables[type].field(row, PACK));
  }

  /** Where the blob is, preferring a copy outside condemned packs. */
  lookup(type: BlobType, id: Uint8Array): BlobLocation | undefined {
    const row = this.findRow(type, id);
    if (row < 0) return undefined;
    const table = this.tables[type];
    return { packId: this.packIds[table.field(row, PACK)]!, offset: table.field(row, OFFSET), length: table.field(row, LENGTH), rawLength: table.field(row, RAW_LENGTH) };
  }

  // ---- condemned packs (prune's first phase, docs/FORMAT.md §5) -------------------------------

  /**
   * Marks an indexed pack condemned since `since` (ms): its blobs stay readable but are found
   * only when no other copy exists, and hasLive() ignores them.
   */
  condemn(packId: Buffer, since: number): void {
    const pack = this.packNumbers.get(packId.toString('hex'));
    if (pack === undefined) throw new Error(`cannot condemn pack ${packId.toString('hex')}: it is not in the index`);
    if (this.condemnedFlags.length <= pack) {
      const grown = new Uint8Array(Math.max(pack + 1, this.condemnedFlags.length * 2, 64));
      grown.set(this.condemnedFlags);
      this.condemnedFlags = grown;
    }
    this.condemnedFlags[pack] = 1;
    this.condemnedAt.set(pack, since);
  }

  /** When the pack was condemned (ms), or undefined for a live pack. */
  condemnedSince(packNumber: number): number | undefined {
    return this.condemnedAt.get(packNumber);
  }

  get condemnedCount(): number {
    return this.condemnedAt.size;
  }

  private isCondemnedNumber(pack: number): boolean {
    return this.condemnedFlags[pack] === 1;
  }

  // ---- rows (prune walks the index by row number, with one bit per row) ------------------------

  /** Row number of the blob in its type's table (preferring a copy outside condemned packs), or -1. Stable until blobs are added. */
  findRow(type: BlobType, id: Uint8Array): number {
    return this.tables[type].find(id, this.condemnedAt.size > 0 ? this.condemnedFlags : undefined);
  }

  rowCount(type: BlobType): number {
    return this.tables[type].size;
  }

  /** Pack number (see packId()) of a row. */
  rowPack(type: BlobType, row: number): number {
    return this.tables[type].field(row, PACK);
  }

  /** Stored length (bytes of the envelope in its pack) of a row. */
  rowLength(type: BlobType, row: number): number {
    return this.tables[type].field(row, LENGTH);
  }

  /**
   * For every pack holding blobs of `type`: where its last such blob ends (pack id hex → bytes).
   * Packs hold one blob type, so for them this is the pack's size less its header. One pass
   * over the type's rows.
   */
  blobExtents(type: BlobType): Map<string, number> {
    const table = this.tables[type];
    const byNumber = new Map<number, number>();
    for (let row = 0; row < table.size; row++) {
      const pack = table.field(row, PACK);
      const end = table.field(row, OFFSET) + table.field(row, LENGTH);
      if (end > (byNumber.get(pack) ?? 0)) byNumber.set(pack, end);
    }
    return new Map([...byNumber].map(([pack, end]) => [this.packIds[pack]!.toString('hex'), end]));
  }

  /**
   * The first 8 bytes of every indexed id of `type` (condemned packs too), as two words: bytes
   * 0–3 big-endian, bytes 4–7 as a Uint32Array over them reads them (the platform's order). Ids
   * are uniformly random, so these are enough for a filter over them.
   */
  forEachIdHead(type: BlobType, fn: (first: number, second: number) => void): void {
    const table = this.tables[type];
    for (let row = 0; row < table.size; row++) fn(table.field(row, 0), table.field(row, REST));
  }

  rowEntry(type: BlobType, row: number): IndexEntry {
    const table = this.tables[type];
    return { type, id: table.id(row), packId: this.packIds[table.field(row, PACK)]!, offset: table.field(row, OFFSET), length: table.field(row, LENGTH), rawLength: table.field(row, RAW_LENGTH) };
  }

  packId(packNumber: number): Buffer {
    return this.packIds[packNumber]!;
  }

  /**
   * Bulk loading (reading index files): rows are appended without hashing and are not findable
   * until endBulkLoad() sorts them in one pass.
   */
  beginBulkLoad(): void {
    this.tables.data.bulk = true;
    this.tables.tree.bulk = true;
  }

  endBulkLoad(): void {
    for (const table of [this.tables.data, this.tables.tree]) {
      table.bulk = false;
      table.merge();
    }
  }

  /** Every indexed blob, one object at a time (for check and stats; not for hot paths). */
  *entries(type?: BlobType): Generator<IndexEntry> {
    for (const t of type ? [type] : (['data', 'tree'] as const)) {
      const table = this.tables[t];
      for (let i = 0; i < table.size; i++) yield this.rowEntry(t, i);
    }
  }

  packs(): Buffer[] {
    return [...this.packIds];
  }
}
