/**
 * The in-memory index of every blob in the repository (docs/FORMAT.md §5, "in memory").
 *
 * Tens of millions of blobs must fit, so there is no JS object per blob. Each blob type has a
 * sorted table of two parallel typed arrays:
 *   heads: the id's bytes 2–3 (a big-endian u16)                                  2 bytes
 *   rows:  the id's bytes 4–31 (7 words) · pack number · offset · length · raw length  44 bytes
 * = 46 bytes a blob. The id's first two bytes are not stored: they are the row's bucket, the
 * row's place between bucketStart[b] and bucketStart[b + 1] in a 65 536-entry table of where
 * each value of them starts. A lookup reads its bucket's bounds, binary-searches the bucket's
 * heads (about 300 bytes at 10 M blobs, where a search over whole rows would touch a row per
 * step), then compares the rest of the id in the rows sharing the head (mostly one): O(log n). Reading a row's full id in
 * order walks bucketStart alongside; at random it binary-searches bucketStart (17 steps).
 *
 * The sorted table is sized exactly; new blobs go to a pending table (full rows: the id's
 * first 4 bytes, then a row, in fixed-size chunks that never move) with an open-addressing hash
 * (4 bytes a slot), merged in (radix sort of the new rows, then a two-way merge bucket by
 * bucket) when it grows past a quarter of the sorted rows, bounded to [65 536, 2^20]. A table without rows
 * costs nothing; pack ids live in one buffer of 32-byte ids with a hash over them.
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

/** A row's words: the id's bytes 4–31 as stored in memory, then the location. */
const ROW = 11;
const REST_WORDS = 7;
const PACK = 7;
const OFFSET = 8;
const LENGTH = 9;
const RAW_LENGTH = 10;
/** A pending row: the id's first 4 bytes (big-endian), then a row. */
const PENDING_ROW = ROW + 1;
const CHUNK_BITS = 12;
const CHUNK_ROWS = 1 << CHUNK_BITS;
const BUCKETS = 65536;
const MIN_PENDING_MERGE = 65536;
const MAX_PENDING_MERGE = 1 << 20;
const PACK_ID_BYTES = 32;

/** The 4 bytes of `bytes` at `at` as a big-endian u32 (an id's first 4 bytes by default). */
function readPrefix(bytes: Uint8Array, at = 0): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

const scratchWords = new Uint32Array(REST_WORDS);
const scratchBytes = new Uint8Array(scratchWords.buffer);

/** The id's last 28 bytes as words, in a shared scratch array (valid until the next call). */
function restWords(id: Uint8Array): Uint32Array {
  for (let k = 0; k < 28; k++) scratchBytes[k] = id[4 + k]!;
  return scratchWords;
}

function restEquals(words: Uint32Array, at: number, rest: Uint32Array): boolean {
  for (let k = 0; k < REST_WORDS; k++) if (words[at + k] !== rest[k]) return false;
  return true;
}

/** A 32-byte id from its first 4 bytes and the row at word `at` of `words`. */
function idOf(prefix: number, words: Uint32Array, at: number): Buffer {
  const id = Buffer.allocUnsafe(32);
  id.writeUInt32BE(prefix, 0);
  for (let k = 0; k < REST_WORDS; k++) scratchWords[k] = words[at + k]!;
  id.set(scratchBytes, 4);
  return id;
}

/** Whether a row in `pack` is as good as any: outside the packs flagged in `avoid`. */
function preferred(avoid: Uint8Array | undefined, pack: number): boolean {
  return !avoid || avoid[pack] !== 1;
}

/** Rows added since the last merge, in chunks of CHUNK_ROWS that are allocated as needed and never copied. */
class PendingRows {
  private readonly chunks: Uint32Array[] = [];
  count = 0;

  push(id: Uint8Array, pack: number, offset: number, length: number, rawLength: number): number {
    const i = this.count++;
    const at = (i & (CHUNK_ROWS - 1)) * PENDING_ROW;
    if (at === 0) this.chunks.push(new Uint32Array(CHUNK_ROWS * PENDING_ROW));
    const w = this.chunks[i >>> CHUNK_BITS]!;
    w[at] = readPrefix(id);
    const rest = restWords(id);
    for (let k = 0; k < REST_WORDS; k++) w[at + 1 + k] = rest[k]!;
    w[at + 1 + PACK] = pack;
    w[at + 1 + OFFSET] = offset;
    w[at + 1 + LENGTH] = length;
    w[at + 1 + RAW_LENGTH] = rawLength;
    return i;
  }

  /** The chunk holding row i; its row starts at word rowAt(i) (its prefix one word before). */
  chunk(i: number): Uint32Array {
    return this.chunks[i >>> CHUNK_BITS]!;
  }

  rowAt(i: number): number {
    return (i & (CHUNK_ROWS - 1)) * PENDING_ROW + 1;
  }

  prefix(i: number): number {
    return this.chunk(i)[this.rowAt(i) - 1]!;
  }

  field(i: number, field: number): number {
    return this.chunk(i)[this.rowAt(i) + field]!;
  }

  id(i: number): Buffer {
    const at = this.rowAt(i);
    return idOf(this.chunk(i)[at - 1]!, this.chunk(i), at);
  }
}

/** Order of the pending rows by prefix: two stable 16-bit LSD radix passes. */
function radixOrder(rows: PendingRows): Uint32Array {
  const n = rows.count;
  const keys = new Uint32Array(n);
  for (let i = 0; i < n; i++) keys[i] = rows.prefix(i);
  let order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let scratch = new Uint32Array(n);
  const counts = new Uint32Array(BUCKETS + 1);
  for (const shift of [0, 16]) {
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[((keys[i]! >>> shift) & 0xffff) + 1]!++;
    for (let b = 1; b <= BUCKETS; b++) counts[b]! += counts[b - 1]!;
    for (let j = 0; j < n; j++) {
      const i = order[j]!;
      scratch[counts[(keys[i]! >>> shift) & 0xffff]!++] = i;
    }
    [order, scratch] = [scratch, order];
  }
  return order;
}

/** The sorted rows of a table (see the top of this file). */
interface SortedRows {
  count: number;
  /** The id's bytes 2–3 (big-endian), a row each. */
  heads: Uint16Array;
  rows: Uint32Array;
  /** bucketStart[b] = first row whose id starts with the two bytes b; bucketStart[65536] = count. Empty while count is 0. */
  bucketStart: Uint32Array;
}

const NO_SORTED_ROWS: SortedRows = { count: 0, heads: new Uint16Array(0), rows: new Uint32Array(0), bucketStart: new Uint32Array(0) };

/** The bucket (the id's first two bytes) of sorted row i: the last b with bucketStart[b] <= i. */
function bucketOf(sorted: SortedRows, i: number): number {
  const starts = sorted.bucketStart;
  let lo = 0;
  let hi = BUCKETS - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (starts[mid]! <= i) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * One blob type's rows: the sorted table and the pending one, whose rows are found through an
 * open-addressing hash (slots hold row + 1; 0 is empty) keyed by the id's first 4 bytes. Rows
 * are numbered sorted first, then pending.
 */
class BlobTable {
  private sorted = NO_SORTED_ROWS;
  private pending = new PendingRows();
  /** Allocated with the first pending row: a table only read (restore, check) never pays for it. */
  private slots = new Int32Array(0);
  /** In bulk mode pending rows are only appended (not findable) until the next merge(). */
  bulk = false;

  get size(): number {
    return this.sorted.count + this.pending.count;
  }

  add(id: Uint8Array, pack: number, offset: number, length: number, rawLength: number): void {
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
    const key = readPrefix(id);
    const rest = restWords(id);
    let found = -1;
    const s = this.sorted;
    if (s.count > 0) {
      const head = key & 0xffff;
      const heads = s.heads;
      let lo = s.bucketStart[key >>> 16]!;
      const end = s.bucketStart[(key >>> 16) + 1]!;
      let hi = end;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (heads[mid]! < head) lo = mid + 1;
        else hi = mid;
      }
      for (let i = lo; i < end && heads[i] === head; i++) {
        if (!restEquals(s.rows, i * ROW, rest)) continue;
        if (preferred(avoid, s.rows[i * ROW + PACK]!)) return i;
        if (found < 0) found = i;
      }
    }
    if (this.slots.length === 0) return found;
    const p = this.pending;
    const mask = this.slots.length - 1;
    for (let slot = key & mask; this.slots[slot] !== 0; slot = (slot + 1) & mask) {
      const row = this.slots[slot]! - 1;
      const chunk = p.chunk(row);
      const at = p.rowAt(row);
      if (chunk[at - 1] !== key || !restEquals(chunk, at, rest)) continue;
      if (preferred(avoid, chunk[at + PACK]!)) return s.count + row;
      if (found < 0) found = s.count + row;
    }
    return found;
  }

  field(row: number, field: number): number {
    const s = this.sorted;
    return row < s.count ? s.rows[row * ROW + field]! : this.pending.field(row - s.count, field);
  }

  id(row: number): Buffer {
    const s = this.sorted;
    if (row >= s.count) return this.pending.id(row - s.count);
    return idOf(((bucketOf(s, row) << 16) | s.heads[row]!) >>> 0, s.rows, row * ROW);
  }

  /** Every row's first 4 id bytes (big-endian) and the word after them (bytes 4–7 as stored), in row order. */
  forEachHead(fn: (prefix: number, next: number) => void): void {
    const s = this.sorted;
    for (let i = 0, bucket = 0; i < s.count; i++) {
      while (s.bucketStart[bucket + 1]! <= i) bucket++;
      fn(((bucket << 16) | s.heads[i]!) >>> 0, s.rows[i * ROW]!);
    }
    const p = this.pending;
    for (let i = 0; i < p.count; i++) fn(p.prefix(i), p.field(i, 0));
  }

  /**
   * Sorts the pending rows and merges them with the sorted ones, bucket by bucket (a sequential
   * two-way merge on the heads), into a table of exactly the rows' size; the pending table
   * starts over.
   */
  merge(): void {
    this.slots = new Int32Array(0);
    const p = this.pending;
    if (p.count === 0) return;
    const s = this.sorted;
    const n = s.count + p.count;
    const order = radixOrder(p);
    const out: SortedRows = { count: n, heads: new Uint16Array(n), rows: new Uint32Array(n * ROW), bucketStart: new Uint32Array(BUCKETS + 1) };
    let o = 0;
    let j = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      out.bucketStart[bucket] = o;
      let i = s.count > 0 ? s.bucketStart[bucket]! : 0;
      const end = s.count > 0 ? s.bucketStart[bucket + 1]! : 0;
      for (; j < p.count && p.prefix(order[j]!) >>> 16 === bucket; j++) {
        const head = p.prefix(order[j]!) & 0xffff;
        let before = i;
        while (before < end && s.heads[before]! <= head) before++;
        o = copySorted(s, i, before, out, o);
        i = before;
        const chunk = p.chunk(order[j]!);
        const from = p.rowAt(order[j]!);
        for (let k = 0; k < ROW; k++) out.rows[o * ROW + k] = chunk[from + k]!;
        out.heads[o++] = head;
      }
      o = copySorted(s, i, end, out, o);
    }
    out.bucketStart[BUCKETS] = n;
    this.sorted = out;
    this.pending = new PendingRows();
  }
}

/** Copies sorted rows [from, to) of `src` to row `at` of `dst`; returns the row after them. */
function copySorted(src: SortedRows, from: number, to: number, dst: SortedRows, at: number): number {
  if (to - from > 16) {
    dst.heads.set(src.heads.subarray(from, to), at);
    dst.rows.set(src.rows.subarray(from * ROW, to * ROW), at * ROW);
  } else {
    for (let i = from; i < to; i++) dst.heads[at + i - from] = src.heads[i]!;
    for (let w = from * ROW, d = at * ROW; w < to * ROW; w++, d++) dst.rows[d] = src.rows[w]!;
  }
  return at + to - from;
}


/** Pending rows may reach a quarter of the sorted ones (within bounds) before a merge; the hash is kept half empty. */
function slotCountFor(sortedRows: number): number {
  const pendingLimit = Math.min(MAX_PENDING_MERGE, Math.max(MIN_PENDING_MERGE, sortedRows >>> 2));
  return 2 ** Math.ceil(Math.log2(pendingLimit * 2));
}

/** Pack ids by pack number: one buffer of 32-byte ids, and an open-addressing hash over them (slots hold number + 1). */
class PackIds {
  private bytes = Buffer.alloc(0);
  private slots = new Int32Array(0);
  count = 0;

  /** The pack's number, or -1. */
  numberOf(id: Uint8Array): number {
    if (id.length !== PACK_ID_BYTES || this.count === 0) return -1;
    const mask = this.slots.length - 1;
    for (let slot = hashOf(id) & mask; this.slots[slot] !== 0; slot = (slot + 1) & mask) {
      const pack = this.slots[slot]! - 1;
      if (this.bytes.compare(id, 0, PACK_ID_BYTES, pack * PACK_ID_BYTES, (pack + 1) * PACK_ID_BYTES) === 0) return pack;
    }
    return -1;
  }

  /** The number of a pack not numbered yet. */
  add(id: Uint8Array): number {
    if (id.length !== PACK_ID_BYTES) throw new Error(`a pack id is ${PACK_ID_BYTES} bytes, not ${id.length}`);
    const pack = this.count++;
    if (this.bytes.length < this.count * PACK_ID_BYTES) {
      // Capacity doubles from 64 ids, so the hash (twice the capacity) stays a power of two.
      const capacity = Math.max(64, (2 * this.bytes.length) / PACK_ID_BYTES);
      const grown = Buffer.alloc(capacity * PACK_ID_BYTES);
      this.bytes.copy(grown);
      this.bytes = grown;
      this.slots = new Int32Array(capacity * 2);
      for (let p = 0; p < pack; p++) this.place(p);
    }
    this.bytes.set(id, pack * PACK_ID_BYTES);
    this.place(pack);
    return pack;
  }

  /** The id of pack number `pack`: a view into the table, never written again. */
  id(pack: number): Buffer {
    return this.bytes.subarray(pack * PACK_ID_BYTES, (pack + 1) * PACK_ID_BYTES);
  }

  private place(pack: number): void {
    const mask = this.slots.length - 1;
    let slot = hashOf(this.id(pack)) & mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = pack + 1;
  }
}

/** A hash of a pack id (a SHA-256, but tests and tools may pass any 32 bytes): its first and last words, mixed. */
function hashOf(id: Uint8Array): number {
  const h = Math.imul(readPrefix(id) ^ Math.imul(readPrefix(id, 28), 0x85ebca6b), 0x9e3779b1);
  return (h ^ (h >>> 16)) >>> 0;
}

export class MasterIndex {
  private readonly tables: Record<BlobType, BlobTable> = { data: new BlobTable(), tree: new BlobTable() };
  private readonly packIds = new PackIds();
  /** 1 for a condemned pack, by pack number (grown on demand); see condemn(). */
  private condemnedFlags = new Uint8Array(0);
  /** When each condemned pack was condemned (ms), by pack number. */
  private readonly condemnedAt = new Map<number, number>();

  get blobCount(): number {
    return this.tables.data.size + this.tables.tree.size;
  }

  get packCount(): number {
    return this.packIds.count;
  }

  addPack(packId: Buffer, blobs: readonly PackedBlob[]): void {
    let pack = this.packIds.numberOf(packId);
    if (pack < 0) pack = this.packIds.add(packId);
    for (const blob of blobs) this.tables[blob.type].add(blob.id, pack, blob.offset, blob.length, blob.rawLength);
  }

  hasPack(packId: Buffer): boolean {
    return this.packIds.numberOf(packId) >= 0;
  }

  has(type: BlobType, id: Uint8Array): boolean {
    return this.tables[type].find(id) >= 0;
  }

  /** Whether a copy of the blob lives in a pack that is not condemned: only such copies may be deduplicated against. */
  hasLive(type: BlobType, id: Uint8Array): boolean {
    return this.livePack(type, id) >= 0;
  }

  /** The number of a pack outside condemned packs that holds the blob, or -1. */
  livePack(type: BlobType, id: Uint8Array): number {
    const row = this.findRow(type, id);
    if (row < 0) return -1;
    const pack = this.tables[type].field(row, PACK);
    return this.isCondemnedNumber(pack) ? -1 : pack;
  }

  /** The number of an indexed pack (see packId()), or -1. */
  packNumber(packId: Uint8Array): number {
    return this.packIds.numberOf(packId);
  }

  /** Where the blob is, preferring a copy outside condemned packs. */
  lookup(type: BlobType, id: Uint8Array): BlobLocation | undefined {
    const row = this.findRow(type, id);
    if (row < 0) return undefined;
    const table = this.tables[type];
    return { packId: this.packIds.id(table.field(row, PACK)), offset: table.field(row, OFFSET), length: table.field(row, LENGTH), rawLength: table.field(row, RAW_LENGTH) };
  }

  // ---- condemned packs (prune's first phase, docs/FORMAT.md §5) -------------------------------

  /**
   * Marks an indexed pack condemned since `since` (ms): its blobs stay readable but are found
   * only when no other copy exists, and hasLive() ignores them.
   */
  condemn(packId: Buffer, since: number): void {
    const pack = this.packIds.numberOf(packId);
    if (pack < 0) throw new Error(`cannot condemn pack ${packId.toString('hex')}: it is not in the index`);
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
    return new Map([...byNumber].map(([pack, end]) => [this.packIds.id(pack).toString('hex'), end]));
  }

  /**
   * The first 8 bytes of every indexed id of `type` (condemned packs too), as two words: bytes
   * 0–3 big-endian, bytes 4–7 as a Uint32Array over them reads them (the platform's order). Ids
   * are uniformly random, so these are enough for a filter over them.
   */
  forEachIdHead(type: BlobType, fn: (first: number, second: number) => void): void {
    this.tables[type].forEachHead(fn);
  }

  rowEntry(type: BlobType, row: number): IndexEntry {
    const table = this.tables[type];
    return { type, id: table.id(row), packId: this.packIds.id(table.field(row, PACK)), offset: table.field(row, OFFSET), length: table.field(row, LENGTH), rawLength: table.field(row, RAW_LENGTH) };
  }

  /** The id of a pack number: a view into the index's table of pack ids (do not write to it). */
  packId(packNumber: number): Buffer {
    return this.packIds.id(packNumber);
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

  /** Every pack id, by pack number (views, as packId() gives). */
  packs(): Buffer[] {
    return Array.from({ length: this.packIds.count }, (_, pack) => this.packIds.id(pack));
  }
}
