/**
 * How whole files are sealed (docs/FORMAT.md §3.2): index files, snapshots, locks, pack headers.
 *
 * file:  salt(16) ‖ nonce(12) ‖ ciphertext ‖ tag(16)  key = fileSubkey(kind, salt), AAD = kind
 *
 * A file's subkey comes from a fresh random salt, so no key ever seals more than one message.
 * Blobs have their own envelope and codec: src/repo/blob-codec.ts.
 */
import { randomBytes } from 'node:crypto';
import { FileKindCode, type FileKind, MasterKeys, open, seal, SALT_SIZE, AuthenticationError } from './crypto.js';

export function sealFile(keys: MasterKeys, kind: FileKind, payload: Uint8Array): Buffer {
  const salt = randomBytes(SALT_SIZE);
  return Buffer.concat([salt, seal(keys.fileSubkey(kind, salt), payload, Uint8Array.of(FileKindCode[kind]))]);
}

export function openFile(keys: MasterKeys, kind: FileKind, bytes: Uint8Array, what: string): Buffer {
  if (bytes.length < SALT_SIZE) throw new AuthenticationError(what);
  const salt = bytes.subarray(0, SALT_SIZE);
  return open(keys.fileSubkey(kind, salt), bytes.subarray(SALT_SIZE), Uint8Array.of(FileKindCode[kind]), what);
}
