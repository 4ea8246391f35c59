/**
 * Keys and the encryption envelope (docs/FORMAT.md §2–§3).
 *
 * One random 32-byte master secret per repository; every working key is derived from it with
 * HMAC-SHA-256 under a fixed label, so a key file only ever has to seal 32 bytes.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

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

/** The keys derived from one master secret. Never written anywhere. */
export class MasterKeys {
  /** Keys blob ids: HMAC-SHA-256(idKey, plaintext). */
  readonly idKey: Buffer;
  /** Root of every encryption subkey. */
  readonly encryptionKey: Buffer;
  /** Seeds the chunker's gear table: secret, so chunk boundaries do not leak content across repositories. */
  readonly chunkerSeed: Buffer;

  constructor(readonly master: Buffer) {
    if (master.length !== 32) throw new Error('master key must be 32 bytes');
    this.idKey = hmacSha256(master, label('bh/v1/blob-id'));
    this.encryptionKey = hmacSha256(master, label('bh/v1/encryption'));
    this.chunkerSeed = hmacSha256(master, label('bh/v1/chunker-seed'));
  }

  static generate(): MasterKeys {
    return new MasterKeys(randomBytes(32));
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
 * AES-256-GCM: nonce(12) ‖ ciphertext ‖ tag(16). Plaintext is fed in slices of at most 64 KiB,
 * because one update() over a whole MiB is several times slower here (glibc serves each large
 * output buffer with fresh mmap pages).
 */
export function seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, nonce: Uint8Array = randomBytes(NONCE_SIZE)): Buffer {
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

const SLICE = 64 * 1024;

/** Inverse of seal; throws AuthenticationError naming `what` when the tag does not verify. */
export function open(key: Uint8Array, envelope: Uint8Array, aad: Uint8Array, what: string): Buffer {
  if (envelope.length < ENVELOPE_OVERHEAD) throw new AuthenticationError(what);
  const nonce = envelope.subarray(0, NONCE_SIZE);
  const tag = envelope.subarray(envelope.length - TAG_SIZE);
  const body = envelope.subarray(NONCE_SIZE, envelope.length - TAG_SIZE);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const out = Buffer.allocUnsafe(body.length);
  let at = 0;
  for (let start = 0; start < body.length; start += SLICE) {
    const part = decipher.update(body.subarray(start, Math.min(start + SLICE, body.length)));
    out.set(part, at);
    at += part.length;
  }
  try {
    decipher.final();
  } catch {
    throw new AuthenticationError(what);
  }
  return out;
}

export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
