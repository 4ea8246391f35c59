/**
 * Index files (`index/<id>`, docs/FORMAT.md §5): which blob lives where. Payload body:
 *
 *   "BHX1"
 *   u32 LE count ‖ count × superseded index id (32)
 *   u32 LE pack count, then per pack:
 *     pack id (32) ‖ u32 LE blob count ‖ blob count × ( type u8 ‖ offset u32 ‖ length u32 ‖ raw length u32 ‖ blob id 32 )
 */
import { BlobTypeCode, type BlobType } from './crypto.js';
import { FormatError } from './errors.js';
import type { PackedBlob } from './pack.js';

export interface IndexedPack {
  packId: Buffer;
  blobs: PackedBlob[];
}

export interface IndexFile {
  /** Index files this one replaces (written by prune / rebuild-index before they delete those). */
  supersedes: Buffer[];
  packs: IndexedPack[];
}

const MAGIC = Buffer.from('BHX1', 'ascii');
const BLOB_ENTRY = 1 + 4 + 4 + 4 + 32;
const TYPES_BY_CODE: BlobType[] = ['data', 'tree'];

export function encodeIndexFile(index: IndexFile): Buffer {
  let size = MAGIC.length + 4 + index.supersedes.length * 32 + 4;
  for (const pack of index.packs) size += 32 + 4 + pack.blobs.length * BLOB_ENTRY;
  const out = Buffer.allocUnsafe(size);
  MAGIC.copy(out, 0);
  let at = MAGIC.length;
  out.writeUInt32LE(index.supersedes.length, at);
  at += 4;
  for (const id of index.supersedes) at += id.copy(out, at);
  out.writeUInt32LE(index.packs.length, at);
  at += 4;
  for (const pack of index.packs) {
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
  }
  return out;
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
  if (!body.subarray(0, MAGIC.length).equals(MAGIC)) fail('bad magic');
  at = MAGIC.length;
  const supersededCount = body.readUInt32LE(at);
  at += 4;
  need(supersededCount * 32 + 4);
  const supersedes: Buffer[] = [];
  for (let i = 0; i < supersededCount; i++, at += 32) supersedes.push(Buffer.from(body.subarray(at, at + 32)));
  const packCount = body.readUInt32LE(at);
  at += 4;
  const packs: IndexedPack[] = [];
  for (let p = 0; p < packCount; p++) {
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
    packs.push({ packId, blobs });
  }
  if (at !== body.length) fail('trailing bytes');
  return { supersedes, packs };
}
