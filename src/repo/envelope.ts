/**
 * How blobs and whole files are sealed (docs/FORMAT.md §3).
 *
 * blob:  nonce(12) ‖ ciphertext ‖ tag(16)            key = blobSubkey(type, id), AAD = type ‖ id
 * file:  salt(16) ‖ nonce(12) ‖ ciphertext ‖ tag(16)  key = fileSubkey(kind, salt), AAD = kind
 *
 * A blob's subkey is bound to its id, so a blob moved under another id or type fails to open;
 * a file's subkey comes from a fresh random salt, so no key ever seals more than one message.
 */
import { randomBytes } from 'node:crypto';
import { BlobTypeCode, type BlobType, FileKindCode, type FileKind, MasterKeys, open, seal, SALT_SIZE, AuthenticationError } from './crypto.js';

function blobAad(type: BlobType, id: Uint8Array): Buffer {
  const aad = Buffer.allocUnsafe(1 + id.length);
  aad[0] = BlobTypeCode[type];
  aad.set(id, 1);
  return aad;
}

export function sealBlob(keys: MasterKeys, type: BlobType, id: Uint8Array, payload: Uint8Array): Buffer {
  return seal(keys.blobSubkey(type, id), payload, blobAad(type, id));
}

export function openBlob(keys: MasterKeys, type: BlobType, id: Uint8Array, envelope: Uint8Array, what: string): Buffer {
  return open(keys.blobSubkey(type, id), envelope, blobAad(type, id), what);
}

export function sealFile(keys: MasterKeys, kind: FileKind, payload: Uint8Array): Buffer {
  const salt = randomBytes(SALT_SIZE);
  return Buffer.concat([salt, seal(keys.fileSubkey(kind, salt), payload, Uint8Array.of(FileKindCode[kind]))]);
}

export function openFile(keys: MasterKeys, kind: FileKind, bytes: Uint8Array, what: string): Buffer {
  if (bytes.length < SALT_SIZE) throw new AuthenticationError(what);
  const salt = bytes.subarray(0, SALT_SIZE);
  return open(keys.fileSubkey(kind, salt), bytes.subarray(SALT_SIZE), Uint8Array.of(FileKindCode[kind]), what);
}
