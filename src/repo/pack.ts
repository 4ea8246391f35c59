/**
 * Pack files (`data/<xx>/<id>`, docs/FORMAT.md §4):
 *
 *   blob envelope 1 ‖ … ‖ blob envelope n ‖ sealed header ‖ header length (u32 LE)
 *
 * The header is a file envelope (kind packHeader) whose payload body is
 *   "BHP1" ‖ n × ( type u8 ‖ stored length u32 LE ‖ raw length u32 LE ‖ blob id 32 )
 * listing the blobs in order; offsets follow from the lengths. The pack's name is the SHA-256 of
 * all its bytes.
 */
import { createHash } from 'node:crypto';
import { BlobTypeCode, type BlobType, MasterKeys, NONCE_SIZE, SALT_SIZE, TAG_SIZE } from './crypto.js';
import { openFile, sealFile } from './envelope.js';
import { FormatError } from './errors.js';
import { PAYLOAD_RAW } from './compression.js';

export interface PackedBlob {
  type: BlobType;
  id: Buffer;
  offset: number;
  /** Bytes of the envelope in the pack. */
  length: number;
  /** Bytes of the plaintext. */
  rawLength: number;
}

const MAGIC = Buffer.from('BHP1', 'ascii');
const ENTRY_SIZE = 1 + 4 + 4 + 32;
const TYPES_BY_CODE: BlobType[] = ['data', 'tree'];

export class PackBuilder {
  private readonly parts: Buffer[] = [];
  readonly blobs: PackedBlob[] = [];
  private bytes = 0;

  get size(): number {
    return this.bytes;
  }

  get count(): number {
    return this.blobs.length;
  }

  add(type: BlobType, id: Buffer, envelope: Buffer, rawLength: number): void {
    this.parts.push(envelope);
    this.blobs.push({ type, id, offset: this.bytes, length: envelope.length, rawLength });
    this.bytes += envelope.length;
  }

  /** The finished pack, as the parts to write in order, and its name. */
  finish(keys: MasterKeys): { id: Buffer; parts: Buffer[]; blobs: PackedBlob[] } {
    const header = Buffer.allocUnsafe(1 + MAGIC.length + this.blobs.length * ENTRY_SIZE);
    header[0] = PAYLOAD_RAW;
    MAGIC.copy(header, 1);
    let at = 1 + MAGIC.length;
    for (const blob of this.blobs) {
      header[at] = BlobTypeCode[blob.type];
      header.writeUInt32LE(blob.length, at + 1);
      header.writeUInt32LE(blob.rawLength, at + 5);
      blob.id.copy(header, at + 9);
      at += ENTRY_SIZE;
    }
    const sealed = sealFile(keys, 'packHeader', header);
    const trailer = Buffer.allocUnsafe(4);
    trailer.writeUInt32LE(sealed.length, 0);
    const parts = [...this.parts, sealed, trailer];
    const hash = createHash('sha256');
    for (const part of parts) hash.update(part);
    return { id: hash.digest(), parts, blobs: this.blobs };
  }
}

/** Bytes of a sealed header without its entries: salt, nonce, tag, payload flag, magic. */
const SEALED_HEADER_BASE = SALT_SIZE + NONCE_SIZE + TAG_SIZE + 1 + MAGIC.length;

/**
 * The size of a pack that holds exactly `blobs` (their envelopes, the sealed header listing
 * them, its length): what check expects a pack to be, and the most a whole read of it takes.
 */
export function packSizeOf(blobs: readonly PackedBlob[]): number {
  const end = blobs.reduce((max, blob) => Math.max(max, blob.offset + blob.length), 0);
  return end + SEALED_HEADER_BASE + blobs.length * ENTRY_SIZE + 4;
}

/** Bytes to fetch from a pack's end to be likely to get its whole header in one read. */
export const HEADER_READ_GUESS = 64 * 1024;

/**
 * Parses the header from the last `tail.length` bytes of a pack of `packSize` bytes. Returns
 * `{ need }` when the tail is too short to hold the whole header.
 */
export function parsePackTail(keys: MasterKeys, tail: Buffer, packSize: number, what: string): PackedBlob[] | { need: number } {
  if (tail.length < 4) throw new FormatError(`${what}: pack is too short to hold a header`);
  const headerLength = tail.readUInt32LE(tail.length - 4);
  if (headerLength + 4 > packSize) throw new FormatError(`${what}: pack header length ${headerLength} exceeds the pack size ${packSize}`);
  if (headerLength + 4 > tail.length) return { need: headerLength + 4 };
  const sealed = tail.subarray(tail.length - 4 - headerLength, tail.length - 4);
  const header = openFile(keys, 'packHeader', sealed, `${what} header`);
  if (header[0] !== PAYLOAD_RAW || !header.subarray(1, 5).equals(MAGIC) || (header.length - 5) % ENTRY_SIZE !== 0) {
    throw new FormatError(`${what}: pack header is malformed`);
  }
  const blobs: PackedBlob[] = [];
  let offset = 0;
  for (let at = 5; at < header.length; at += ENTRY_SIZE) {
    const type = TYPES_BY_CODE[header[at]!];
    if (!type) throw new FormatError(`${what}: pack header names unknown blob type ${header[at]}`);
    const length = header.readUInt32LE(at + 1);
    blobs.push({ type, id: Buffer.from(header.subarray(at + 9, at + 41)), offset, length, rawLength: header.readUInt32LE(at + 5) });
    offset += length;
  }
  if (offset + headerLength + 4 !== packSize) throw new FormatError(`${what}: pack header lists ${offset} bytes of blobs but the pack holds ${packSize - headerLength - 4}`);
  return blobs;
}
