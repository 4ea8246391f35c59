/**
 * The blob codec: how a blob's plaintext becomes the envelope stored in a pack, and back
 * (docs/FORMAT.md §3.1, §3.5). The one implementation every reader and writer of blobs uses:
 * the sealers (backup's workers and main thread, the repository's own), IndexedRepository's
 * loadBlob, prune's repack, the run reader of restore and check (src/repo/blob-reader.ts) and
 * `check --read-data` (src/repo/pack-verifier.ts).
 *
 *   envelope = nonce(12) ‖ AES-256-GCM ciphertext of the payload ‖ tag(16)
 *   key      = blobSubkey(type, id), AAD = type code ‖ id
 *   payload  = flag ‖ body (the plaintext as is, or one zstd frame of it)
 *
 * Opening a blob trusts nothing until every check passed, and each failure has one class:
 * - the tag does not verify (or the envelope is too short to hold one): AuthenticationError;
 * - the payload authenticates but does not decode: FormatError;
 * - the plaintext has another length than the index says, or does not re-hash to its id:
 *   DamagedFileError, naming the pack;
 * - a blob that is not there at all (no index lists it, its pack is gone) is a MissingBlobError,
 *   raised by whoever looks it up (src/repo/errors.ts).
 *
 * Blobs are deciphered here only (blobDecipher); whole files (index, snapshots, locks, pack
 * headers, src/repo/envelope.ts) and key files use the generic AES-GCM of src/repo/crypto.ts.
 */
import { type DecipherGCM, createDecipheriv, createHmac } from 'node:crypto';
import { PAYLOAD_RAW, PayloadCodec, declaredLength, type CompressionSettings } from './compression.js';
import { AuthenticationError, type BlobType, BlobTypeCode, ENVELOPE_OVERHEAD, MasterKeys, NONCE_SIZE, SLICE, TAG_SIZE, constantTimeEqual, decipherWhole, seal, verifyTag } from './crypto.js';
import { DamagedFileError } from './errors.js';

/** How errors name a blob: "data blob <id> in data/<pack>". */
function describeBlob(type: BlobType, id: Uint8Array, packHex: string): string {
  return `${type} blob ${hex(id)} in data/${packHex}`;
}

function hex(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.length).toString('hex');
}

function blobAad(type: BlobType, id: Uint8Array, into: Buffer = Buffer.allocUnsafe(1 + id.length)): Buffer {
  into[0] = BlobTypeCode[type];
  into.set(id, 1);
  return into;
}

/** A decipher keyed for the blob `type`/`id`, with its nonce, associated data and tag set. */
function blobDecipher(keys: MasterKeys, type: BlobType, id: Uint8Array, envelope: Uint8Array, aad: Buffer, what: () => string): DecipherGCM {
  if (envelope.length < ENVELOPE_OVERHEAD) throw new AuthenticationError(what());
  const decipher = createDecipheriv('aes-256-gcm', keys.blobSubkey(type, id), envelope.subarray(0, NONCE_SIZE));
  decipher.setAAD(aad);
  decipher.setAuthTag(envelope.subarray(envelope.length - TAG_SIZE));
  return decipher;
}

/** The envelope of a blob's payload (flag + body, see PayloadCodec). */
export function sealBlob(keys: MasterKeys, type: BlobType, id: Uint8Array, payload: Uint8Array): Buffer {
  return seal(keys.blobSubkey(type, id), payload, blobAad(type, id));
}

/** The payload in a blob's envelope, once its tag verifies; `what` names the blob in the error. */
export function openBlob(keys: MasterKeys, type: BlobType, id: Uint8Array, envelope: Uint8Array, what: string): Buffer {
  return decipherWhole(blobDecipher(keys, type, id, envelope, blobAad(type, id), () => what), envelope, what);
}

/** A blob's envelope from its plaintext: compressed where that pays (`codec`), then sealed. */
export function sealBlobPayload(keys: MasterKeys, codec: PayloadCodec, type: BlobType, id: Uint8Array, plaintext: Uint8Array): Buffer {
  return sealBlob(keys, type, id, codec.encode(plaintext));
}

/**
 * Opens blob envelopes on one thread: authenticates, decodes and re-hashes each against its id
 * (the checks and errors of the module comment). `open` hands back the plaintext as a buffer of
 * the caller's; `openParts` streams, with buffers reused from blob to blob, for callers that
 * only pass the bytes on (restore writes them, check and prune only verify them).
 */
export class BlobOpener {
  private readonly codec: PayloadCodec;
  private payloadBuf = Buffer.alloc(0);
  private plainBuf = Buffer.alloc(0);
  private readonly aad = Buffer.alloc(1 + 32);

  constructor(private readonly keys: MasterKeys, compression: CompressionSettings) {
    this.codec = new PayloadCodec(compression);
  }

  /** The blob's plaintext, checked, in a buffer of its own. */
  open(type: BlobType, id: Uint8Array, envelope: Uint8Array, packHex: string, rawLength: number): Buffer {
    const what = describeBlob(type, id, packHex);
    const payload = openBlob(this.keys, type, id, envelope, what);
    this.checkDeclaredLength(type, id, packHex, rawLength, payload);
    const plaintext = this.codec.decode(payload, what, { exactly: rawLength });
    this.verify(type, id, packHex, rawLength, plaintext.length, this.keys.blobId(plaintext));
    return plaintext;
  }

  /**
   * The blob's plaintext, checked, as the pieces it was decrypted in (valid until the next call).
   * A stored (uncompressed) payload is hashed piece by piece as it is decrypted, while in cache,
   * and never copied; a compressed one is gathered and decompressed into a reused buffer.
   * Nothing is returned unless every check passed.
   */
  openParts(type: BlobType, id: Uint8Array, envelope: Uint8Array, packHex: string, rawLength: number): Buffer[] {
    const what = (): string => describeBlob(type, id, packHex);
    const decipher = blobDecipher(this.keys, type, id, envelope, blobAad(type, id, this.aad), what);
    const body = envelope.subarray(NONCE_SIZE, envelope.length - TAG_SIZE);
    const first = decipher.update(body.subarray(0, Math.min(SLICE, body.length)));
    let parts: Buffer[];
    let hash: Buffer | undefined;
    if (first[0] === PAYLOAD_RAW) {
      // The flag byte is not part of the plaintext.
      const hmac = createHmac('sha256', this.keys.idKey);
      parts = [first.subarray(1)];
      hmac.update(parts[0]!);
      for (let start = SLICE; start < body.length; start += SLICE) {
        const part = decipher.update(body.subarray(start, Math.min(start + SLICE, body.length)));
        hmac.update(part);
        parts.push(part);
      }
      hash = hmac.digest();
    } else {
      this.payloadBuf = atLeast(this.payloadBuf, body.length);
      this.payloadBuf.set(first, 0);
      let size = first.length;
      for (let start = SLICE; start < body.length; start += SLICE) {
        const part = decipher.update(body.subarray(start, Math.min(start + SLICE, body.length)));
        this.payloadBuf.set(part, size);
        size += part.length;
      }
      parts = [this.payloadBuf.subarray(0, size)];
    }
    verifyTag(decipher, what);
    if (hash === undefined) {
      // Compressed (or an unknown flag: decode names it): the hash is over the decoded plaintext.
      this.checkDeclaredLength(type, id, packHex, rawLength, parts[0]!);
      this.plainBuf = atLeast(this.plainBuf, rawLength);
      parts = [this.codec.decode(parts[0]!, what(), { exactly: rawLength }, this.plainBuf.subarray(0, rawLength))];
      hash = this.keys.blobId(parts[0]!);
    }
    let size = 0;
    for (const part of parts) size += part.length;
    this.verify(type, id, packHex, rawLength, size, hash);
    return parts;
  }

  /** A frame that claims another length than the index is refused before it is decompressed (a zstd bomb claims gigabytes). */
  private checkDeclaredLength(type: BlobType, id: Uint8Array, packHex: string, rawLength: number, payload: Uint8Array): void {
    const declared = declaredLength(payload);
    if (declared !== null && declared !== rawLength) throw new DamagedFileError(`data/${packHex}`, `${type} blob ${hex(id)} claims ${declared} bytes, the index ${rawLength}; refused unread`);
  }

  private verify(type: BlobType, id: Uint8Array, packHex: string, rawLength: number, length: number, hash: Buffer): void {
    if (length !== rawLength || !constantTimeEqual(hash, id)) throw new DamagedFileError(`data/${packHex}`, `${type} blob ${hex(id)} does not hash to its id`);
  }
}

/** `buffer`, or a larger one (its contents lost) when it holds fewer than `length` bytes. */
export function atLeast(buffer: Buffer<ArrayBuffer>, length: number): Buffer<ArrayBuffer> {
  return buffer.length >= length ? buffer : Buffer.allocUnsafeSlow(Math.max(length, 2 * buffer.length));
}
