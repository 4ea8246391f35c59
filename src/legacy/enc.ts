/**
 * The old tool's per-file encryption, `NAME.enc` (shared/seed/legacy-formats.md §1):
 *
 *   [16 B salt][12 B nonce][AES-256-GCM ciphertext, as long as the plaintext][16 B tag]
 *
 * no header, no associated data. The key is PBKDF2-HMAC-SHA256 of the passphrase (UTF-8) with
 * the file's salt, 600 000 iterations, 32 bytes; or the raw bytes of a 32-byte key file, with an
 * all-zero salt that is ignored. Both directions stream (the old tool read whole files into
 * memory); the tag is checked before anything decrypted is trusted: a reader writes to a
 * temporary file and keeps it only once final() accepted the tag.
 */
import type { Secret } from '../repo/keyfile.js';
import { type DecipherGCM, createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export const ENC_SUFFIX = '.enc';
export const SALT_BYTES = 16;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const HEADER_BYTES = SALT_BYTES + NONCE_BYTES;
/** What a .enc file adds to its plaintext. */
export const ENC_OVERHEAD = HEADER_BYTES + TAG_BYTES;
export const PBKDF2_ITERATIONS = 600_000;
export const KEY_BYTES = 32;
export const ZERO_SALT = Buffer.alloc(SALT_BYTES);

/** The secret of a legacy .enc folder: a passphrase (one PBKDF2 per file) or a 32-byte key file. */
export type EncSecret = { kind: 'passphrase'; passphrase: Buffer } | { kind: 'key'; key: Buffer };

/** The secret as the commands read it (src/commands/base.ts): a passphrase file, or a 32-byte key file. */
export function encSecretOf(secret: Secret): EncSecret {
  return secret.kind === 'password' ? { kind: 'passphrase', passphrase: secret.password } : { kind: 'key', key: secret.key };
}

/** A file's key and the salt to write (or that was read). */
export interface FileKey {
  salt: Buffer;
  key: Buffer;
}

/** Thrown when a .enc file's tag does not verify: wrong key, or damaged file. */
export class EncAuthenticationError extends Error {
  constructor(what: string) {
    super(`${what}: the .enc file does not authenticate (wrong passphrase or key, or the file is damaged)`);
    this.name = 'EncAuthenticationError';
  }
}

/** Encrypts `plaintext` pieces into the .enc byte stream. */
export async function* encryptStream(fileKey: FileKey, plaintext: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', fileKey.key, nonce);
  yield Buffer.concat([fileKey.salt, nonce]);
  for await (const piece of plaintext) yield cipher.update(piece);
  const last = cipher.final();
  yield Buffer.concat([last, cipher.getAuthTag()]);
}

/** The salt at the start of a .enc file (its first 16 bytes); undefined when the file is too short to be one. */
export function saltOf(header: Buffer): Buffer | undefined {
  return header.length >= SALT_BYTES ? header.subarray(0, SALT_BYTES) : undefined;
}

/**
 * Decrypts a whole .enc byte stream; `onPlaintext` gets the plaintext as it comes (not yet
 * authenticated!), and the promise rejects with EncAuthenticationError when the tag fails.
 * `what` names the file in errors.
 */
export async function decryptStream(key: Buffer, input: AsyncIterable<Uint8Array>, onPlaintext: (piece: Buffer) => Promise<void> | void, what: string): Promise<void> {
  let header = Buffer.alloc(0);
  let decipher: DecipherGCM | undefined;
  /** The last TAG_BYTES seen: held back, as they may be the tag. */
  let held = Buffer.alloc(0);
  for await (const raw of input) {
    let piece = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    if (!decipher) {
      header = Buffer.concat([header, piece]);
      if (header.length < HEADER_BYTES) continue;
      decipher = createDecipheriv('aes-256-gcm', key, header.subarray(SALT_BYTES, HEADER_BYTES));
      piece = header.subarray(HEADER_BYTES);
    }
    const joined = Buffer.concat([held, piece]);
    const cut = Math.max(0, joined.length - TAG_BYTES);
    held = Buffer.from(joined.subarray(cut));
    if (cut > 0) await onPlaintext(decipher.update(joined.subarray(0, cut)));
  }
  if (!decipher || held.length < TAG_BYTES) throw new EncAuthenticationError(`${what}: shorter than the ${ENC_OVERHEAD} bytes every .enc file has`);
  decipher.setAuthTag(held);
  try {
    const last = decipher.final();
    if (last.length > 0) await onPlaintext(last);
  } catch {
    throw new EncAuthenticationError(what);
  }
}
