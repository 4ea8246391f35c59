/**
 * Keys and the encryption envelope (docs/FORMAT.md §2–§3).
 *
 * One random 32-byte master secret per repository; every working key is derived from it with
 * HMAC-SHA-256 under a fixed label, except in a repository that shares its source's chunking
 * keys (`init --copy-chunker-params`), whose key files seal those two keys beside the master.
 */
import { type DecipherGCM, createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';

export const NONCE_SIZE = 12;
export const TAG_SIZE = 16;
export const SALT_SIZE = 16;
export const ENVELOPE_OVERHEAD = NONCE_SIZE + TAG_SIZE;

/** Bytes that carry meaning in subkey labels and associated data: a blob's or a file's kind. */
export const BlobTypeCode = { data: 0, tree: 1 } as const;
export type BlobType = keyof typeof BlobTypeCode;

export const FileKindCode = { index: 1, snapshot: 2, lock: 3, packHeader: 4 } as const;
export type FileKind = keyof typeof FileKindCode;

export class AuthenticationError extends Error {
  constructor(what: string) {
    super(`${what}: authentication failed (the data is damaged, or was written with another key)`);
    this.name = 'AuthenticationError';
  }
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const mac = createHmac('sha256', key);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

const label = (text: string): Buffer => Buffer.from(text, 'ascii');

/**
 * The blob-id key and chunker seed. Derived from the master secret by default; a repository
 * made with `bh init --copy-chunker-params` takes them from its source instead, so both cut and
 * name chunks alike (docs/FORMAT.md §2.2).
 */
export interface ChunkingKeys {
  idKey: Buffer;
  chunkerSeed: Buffer;
}

/** Sealed key material: the master secret alone, or master ‖ idKey ‖ chunkerSeed. */
const KEY_SIZE = 32;
const SEALED_SIZES: readonly number[] = [KEY_SIZE, 3 * KEY_SIZE];

/** The working keys of one repository. Never written anywhere except sealed in key files. */
export class MasterKeys {
  /** Keys blob ids: HMAC-SHA-256(idKey, plaintext). */
  readonly idKey: Buffer;
  /** Root of every encryption subkey. */
  readonly encryptionKey: Buffer;
  /** Seeds the chunker's gear table: secret, so chunk boundaries do not leak content across repositories. */
  readonly chunkerSeed: Buffer;
  /** True when idKey and chunkerSeed were given (copied from another repository), not derived from `master`. */
  readonly chunkingGiven: boolean;

  constructor(readonly master: Buffer, chunking?: ChunkingKeys) {
    if (master.length !== KEY_SIZE) throw new Error('master key must be 32 bytes');
    if (chunking && (chunking.idKey.length !== KEY_SIZE || chunking.chunkerSeed.length !== KEY_SIZE)) throw new Error('id key and chunker seed must be 32 bytes each');
    this.idKey = chunking ? Buffer.from(chunking.idKey) : hmacSha256(master, label('bh/v1/blob-id'));
    this.encryptionKey = hmacSha256(master, label('bh/v1/encryption'));
    this.chunkerSeed = chunking ? Buffer.from(chunking.chunkerSeed) : hmacSha256(master, label('bh/v1/chunker-seed'));
    this.chunkingGiven = chunking !== undefined;
  }

  /** A fresh random master secret; `chunking` shares another repository's blob ids and chunk boundaries. */
  static generate(chunking?: ChunkingKeys): MasterKeys {
    return new MasterKeys(randomBytes(KEY_SIZE), chunking);
  }

  /** What a key file seals (and worker threads receive): 32 bytes, or 96 when the chunking keys were given. */
  serialize(): Buffer {
    return this.chunkingGiven ? Buffer.concat([this.master, this.idKey, this.chunkerSeed]) : Buffer.from(this.master);
  }

  static deserialize(bytes: Uint8Array): MasterKeys {
    if (!SEALED_SIZES.includes(bytes.length)) throw new Error(`sealed key material has ${bytes.length} bytes, expected 32 or 96`);
    const b = Buffer.from(bytes);
    return b.length === KEY_SIZE ? new MasterKeys(b) : new MasterKeys(b.subarray(0, KEY_SIZE), { idKey: b.subarray(KEY_SIZE, 2 * KEY_SIZE), chunkerSeed: b.subarray(2 * KEY_SIZE) });
  }

  static isSerializedSize(length: number): boolean {
    return SEALED_SIZES.includes(length);
  }

  /** Whether two repositories cut and name chunks alike, so blobs and trees carry over unchanged. */
  sharesChunkingWith(other: MasterKeys): boolean {
    return constantTimeEqual(this.idKey, other.idKey) && constantTimeEqual(this.chunkerSeed, other.chunkerSeed);
  }

  blobId(plaintext: Uint8Array): Buffer {
    return hmacSha256(this.idKey, plaintext);
  }

  blobSubkey(type: BlobType, id: Uint8Array): Buffer {
    return hmacSha256(this.encryptionKey, label('blob'), Uint8Array.of(BlobTypeCode[type]), id);
  }

  fileSubkey(kind: FileKind, salt: Uint8Array): Buffer {
    return hmacSha256(this.encryptionKey, label('file'), Uint8Array.of(FileKindCode[kind]), salt);
  }
}

/**
 * Random nonces, drawn from the system's CSPRNG a few hundred at a time: one randomBytes call per
 * blob cost more than encrypting a small blob. Each nonce is still used once and never reused.
 */
const noncePool = Buffer.allocUnsafe(NONCE_SIZE * 512);
let noncePoolAt = noncePool.length;

function freshNonce(): Buffer {
  if (noncePoolAt === noncePool.length) {
    randomFillSync(noncePool);
    noncePoolAt = 0;
  }
  // A view into the pool: seal() copies it into the envelope before the pool can refill.
  const nonce = noncePool.subarray(noncePoolAt, noncePoolAt + NONCE_SIZE);
  noncePoolAt += NONCE_SIZE;
  return nonce;
}

/**
 * AES-256-GCM: nonce(12) ‖ ciphertext ‖ tag(16). Plaintext is fed in slices of at most 64 KiB,
 * because one update() over a whole MiB is several times slower here (glibc serves each large
 * output buffer with fresh mmap pages).
 */
export function seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, nonce: Uint8Array = freshNonce()): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const out = Buffer.allocUnsafe(NONCE_SIZE + plaintext.length + TAG_SIZE);
  out.set(nonce, 0);
  let at = NONCE_SIZE;
  for (let start = 0; start < plaintext.length; start += SLICE) {
    const part = cipher.update(plaintext.subarray(start, Math.min(start + SLICE, plaintext.length)));
    out.set(part, at);
    at += part.length;
  }
  const final = cipher.final();
  out.set(final, at);
  at += final.length;
  out.set(cipher.getAuthTag(), at);
  return out;
}

/** Bytes fed to one update() of a cipher or decipher (see seal). */
export const SLICE = 64 * 1024;

/** Inverse of seal; throws AuthenticationError naming `what` when the tag does not verify. */
export function open(key: Uint8Array, envelope: Uint8Array, aad: Uint8Array, what: string): Buffer {
  if (envelope.length < ENVELOPE_OVERHEAD) throw new AuthenticationError(what);
  const decipher = createDecipheriv('aes-256-gcm', key, envelope.subarray(0, NONCE_SIZE));
  decipher.setAAD(aad);
  decipher.setAuthTag(envelope.subarray(envelope.length - TAG_SIZE));
  return decipherWhole(decipher, envelope, what);
}

/**
 * The plaintext of `envelope` (nonce ‖ ciphertext ‖ tag) from a decipher already keyed, given
 * the nonce, the associated data and the tag: decrypted in slices as seal() encrypts, and only
 * returned once the tag verifies. Shared by open() and the blob codec (src/repo/blob-codec.ts).
 */
export function decipherWhole(decipher: DecipherGCM, envelope: Uint8Array, what: string): Buffer {
  const body = envelope.subarray(NONCE_SIZE, envelope.length - TAG_SIZE);
  const out = Buffer.allocUnsafe(body.length);
  let at = 0;
  for (let start = 0; start < body.length; start += SLICE) {
    const part = decipher.update(body.subarray(start, Math.min(start + SLICE, body.length)));
    out.set(part, at);
    at += part.length;
  }
  verifyTag(decipher, () => what);
  return out;
}

/** Ends a decryption: throws AuthenticationError naming `what()` when the tag does not verify. */
export function verifyTag(decipher: DecipherGCM, what: () => string): void {
  try {
    decipher.final();
  } catch {
    throw new AuthenticationError(what());
  }
}

export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
