/**
 * Key files (`keys/<id>`, docs/FORMAT.md §2): plaintext JSON that seals the repository's key
 * material (the 32-byte master secret, or 96 bytes with copied chunking keys: MasterKeys.serialize)
 * under a key derived from one password (scrypt) or one 32-byte raw key file. A repository may
 * have several; any one opens it.
 */
import { randomBytes, scrypt as scryptCallback } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { AuthenticationError, MasterKeys, hmacSha256, open, seal } from './crypto.js';
import { FormatError } from './errors.js';

export type Secret = { kind: 'password'; password: Buffer } | { kind: 'keyfile'; key: Buffer };

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** ~100 ms and 32 MiB per attempt on this class of machine: slow for guessing, fine per command. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 32768, r: 8, p: 1 };

interface KeyFileCommon {
  version: 1;
  created: string;
  host: string;
  username: string;
  salt: string;
  /** base64 of nonce ‖ AES-256-GCM(key material) ‖ tag, associated data "bh/v1/key". */
  data: string;
}
export type KeyFile = KeyFileCommon & ({ kdf: 'scrypt'; N: number; r: number; p: number } | { kdf: 'raw' });

const KEY_AAD = Buffer.from('bh/v1/key', 'ascii');

export async function deriveKey(secret: Secret, file: Pick<KeyFile, 'salt'> & ({ kdf: 'scrypt'; N: number; r: number; p: number } | { kdf: 'raw' })): Promise<Buffer | undefined> {
  const salt = Buffer.from(file.salt, 'base64');
  if (file.kdf === 'scrypt') {
    if (secret.kind !== 'password') return undefined;
    return scrypt(secret.password, salt, file);
  }
  if (secret.kind !== 'keyfile') return undefined;
  return hmacSha256(secret.key, salt);
}

function scrypt(password: Buffer, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const maxmem = 128 * params.N * params.r * params.p + 16 * 1024 * 1024;
    scryptCallback(password, salt, 32, { ...params, maxmem }, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

export async function createKeyFile(keys: MasterKeys, secret: Secret, scryptParams: ScryptParams = DEFAULT_SCRYPT): Promise<Buffer> {
  const common = { version: 1 as const, created: new Date().toISOString(), host: hostname(), username: userInfo().username, salt: randomBytes(32).toString('base64') };
  const kdfPart = secret.kind === 'password' ? { kdf: 'scrypt' as const, ...scryptParams } : { kdf: 'raw' as const };
  const key = await deriveKey(secret, { salt: common.salt, ...kdfPart });
  if (!key) throw new Error('internal: secret kind does not match its KDF');
  const file: KeyFile = { ...common, ...kdfPart, data: seal(key, keys.serialize(), KEY_AAD).toString('base64') };
  return Buffer.from(JSON.stringify(file, null, 2) + '\n');
}

/** A key file may not make us spend more than this on one scrypt attempt (a hostile file could ask for terabytes). */
const MAX_SCRYPT_MEMORY = 1024 ** 3;

function isPowerOfTwo(n: number): boolean {
  return n > 1 && (n & (n - 1)) === 0;
}

export function decodeKeyFile(bytes: Buffer, where: string): KeyFile {
  let file: KeyFile;
  try {
    file = JSON.parse(bytes.toString('utf8')) as KeyFile;
  } catch {
    throw new FormatError(`${where}: key file is not valid JSON`);
  }
  const ok =
    typeof file === 'object' && file !== null && file.version === 1 && typeof file.salt === 'string' && typeof file.data === 'string' &&
    (file.kdf === 'raw' || (file.kdf === 'scrypt' && [file.N, file.r, file.p].every((n) => Number.isSafeInteger(n) && n > 0) && isPowerOfTwo(file.N) && 128 * file.N * file.r <= MAX_SCRYPT_MEMORY && file.p <= 16));
  if (!ok) throw new FormatError(`${where}: key file is malformed or of an unknown version`);
  return file;
}

/** The sealed key material (MasterKeys.serialize()), or undefined when `secret` is not this file's password or key. */
export async function unsealKeyFile(file: KeyFile, secret: Secret, where: string): Promise<Buffer | undefined> {
  const key = await deriveKey(secret, file);
  if (!key) return undefined;
  try {
    const material = open(key, Buffer.from(file.data, 'base64'), KEY_AAD, where);
    if (!MasterKeys.isSerializedSize(material.length)) throw new FormatError(`${where}: sealed key material has ${material.length} bytes, expected 32 or 96`);
    return material;
  } catch (error) {
    if (error instanceof AuthenticationError) return undefined;
    throw error;
  }
}

/** A raw key file must hold exactly 32 bytes (the old tool's format; `head -c 32 /dev/urandom > key`). */
export function parseRawKey(bytes: Buffer, path: string): Secret {
  if (bytes.length !== 32) throw new Error(`${path}: a key file must hold exactly 32 bytes, this one has ${bytes.length}; create one with 'head -c 32 /dev/urandom > ${path}'`);
  return { kind: 'keyfile', key: bytes };
}
