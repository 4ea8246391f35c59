/**
 * Index files (`index/<id>`, docs/FORMAT.md §5): which blob lives where. Payload body:
 *
 *   "BHX1"
 *   u32 LE count ‖ count × superseded index id (32)
 *   u32 LE pack count, then per pack:
 *     pack id (32) ‖ u32 LE blob count ‖ blob count × ( type u8 ‖ offset u32 ‖ length u32 ‖ raw length u32 ‖ blob id 32 )
 *
 * Index files that condemn packs (prune's first phase) start with "BHX2" and end with
 *   u32 LE condemned count, then per condemned pack: the pack as above ‖ u64 LE condemned-since (ms since the epoch)
 * Readers that know only "BHX1" refuse them: a reader that ignored condemnations could dedup
 * against a pack that a later prune deletes.
 */
import { BlobTypeCode, type BlobType } from './crypto.js';
import { FormatError } from './errors.js';
import type { PackedBlob } from './pack.js';

export interface IndexedPack {
  packId: Buffer;
  blobs: PackedBlob[];
}

export interface CondemnedPack extends IndexedPack {
  /** When prune condemned the pack (ms since the epoch). */
  since: number;
}

export interface IndexFile {
  /** Index files this one replaces (written by prune / repair index before they delete those). */
  supersedes: Buffer[];
  packs: IndexedPack[];
  /** Packs no snapshot used when prune looked: still readable, never deduplicated against, deleted by a later prune (absent: none). */
  condemned?: CondemnedPack[];
}

const MAGIC = Buffer.from('BHX1', 'ascii');
const MAGIC_CONDEMNING = Buffer.from('BHX2', 'ascii');
const BLOB_ENTRY = 1 + 4 + 4 + 4 + 32;
const TYPES_BY_CODE: BlobType[] = ['data', 'tree'];

export function encodeIndexFile(index: IndexFile): Buffer {
  const condemned = index.condemned ?? [];
  const packSize = (pack: IndexedPack): number => 32 + 4 + pack.blobs.length * BLOB_ENTRY;
  let size = MAGIC.length + 4 + index.supersedes.length * 32 + 4;
  for (const pack of index.packs) size += packSize(pack);
  if (condemned.length > 0) size += 4 + condemned.reduce((sum, pack) => sum + packSize(pack) + 8, 0);
  const out = Buffer.allocUnsafe(size);
  (condemned.length > 0 ? MAGIC_CONDEMNING : MAGIC).copy(out, 0);
  let at = MAGIC.length;
  out.writeUInt32LE(index.supersedes.length, at);
  at += 4;
  for (const id of index.supersedes) at += id.copy(out, at);
  out.writeUInt32LE(index.packs.length, at);
  at += 4;
  for (const pack of index.packs) at = writePack(out, at, pack);
  if (condemned.length > 0) {
    out.writeUInt32LE(condemned.length, at);
    at += 4;
    for (const pack of condemned) {
      at = writePack(out, at, pack);
      out.writeBigUInt64LE(BigInt(pack.since), at);
      at += 8;
    }
  }
  return out;
}

function writePack(out: Buffer, start: number, pack: IndexedPack): number {
  let at = start;
  at += pack.packId.copy(out, at);
  out.writeUInt32LE(pack.blobs.length, at);
  at += 4;
  for (const blob of pack.blobs) {
    out[at] = BlobTypeCode[blob.type];
    out.writeUInt32LE(blob.offset, at + 1);
    out.writeUInt32LE(blob.length, at + 5);
    out.writeUInt32LE(blob.rawLength, at + 9);
    blob.id.copy(out, at + 13);
    at += BLOB_ENTRY;
  }
  return at;
}

export function decodeIndexFile(body: Buffer, what: string): IndexFile {
  const fail = (why: string): never => {
    throw new FormatError(`${what}: index is malformed (${why})`);
  };
  let at = 0;
  const need = (n: number): void => {
    if (at + n > body.length) fail('truncated');
  };
  need(MAGIC.length + 4);
  const magic = body.subarray(0, MAGIC.length);
  const condemning = magic.equals(MAGIC_CONDEMNING);
  if (!condemning && !magic.equals(MAGIC)) fail('bad magic');
  at = MAGIC.length;
  const supersededCount = body.readUInt32LE(at);
  at += 4;
  need(supersededCount * 32);
  const supersedes: Buffer[] = [];
  for (let i = 0; i < supersededCount; i++, at += 32) supersedes.push(Buffer.from(body.subarray(at, at + 32)));
  const readPack = (): IndexedPack => {
    need(36);
    const packId = Buffer.from(body.subarray(at, at + 32));
    const blobCount = body.readUInt32LE(at + 32);
    at += 36;
    need(blobCount * BLOB_ENTRY);
    const blobs: PackedBlob[] = [];
    for (let b = 0; b < blobCount; b++, at += BLOB_ENTRY) {
      const type = TYPES_BY_CODE[body[at]!] ?? fail(`unknown blob type ${body[at]}`);
      blobs.push({
        type,
        offset: body.readUInt32LE(at + 1),
        length: body.readUInt32LE(at + 5),
        rawLength: body.readUInt32LE(at + 9),
        id: Buffer.from(body.subarray(at + 13, at + 45)),
      });
    }
    return { packId, blobs };
  };
  const readCount = (): number => {
    need(4);
    at += 4;
    return body.readUInt32LE(at - 4);
  };
  const packs: IndexedPack[] = [];
  for (let p = readCount(); p > 0; p--) packs.push(readPack());
  if (!condemning) {
    if (at !== body.length) fail('trailing bytes');
    return { supersedes, packs };
  }
  const condemned: CondemnedPack[] = [];
  for (let p = readCount(); p > 0; p--) {
    const pack = readPack();
    need(8);
    condemned.push({ ...pack, since: Number(body.readBigUInt64LE(at)) });
    at += 8;
  }
  if (at !== body.length) fail('trailing bytes');
  return { supersedes, packs, condemned };
}

/**
 * Live or condemned, per pack, across the index files in force (docs/FORMAT.md §5), whatever
 * order they are added in: a pack that any file lists as live is live (a newer index revives
 * it); of two condemnations (a prune killed before removing the file it superseded) the later,
 * cautious one counts.
 */
export class PackStates {
  /** By pack id (hex): null when live, else when it was condemned (ms since the epoch). */
  readonly byPack = new Map<string, number | null>();

  add(file: IndexFile): void {
    for (const pack of file.packs) this.byPack.set(pack.packId.toString('hex'), null);
    for (const pack of file.condemned ?? []) {
      const key = pack.packId.toString('hex');
      const before = this.byPack.get(key);
      if (before !== null) this.byPack.set(key, Math.max(pack.since, before ?? 0));
    }
  }
}
