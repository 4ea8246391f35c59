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

/**
 * What one key file may make an open spend (docs/FORMAT.md §2): anyone who can write to the
 * storage can plant a key file, so its scrypt parameters are bounded in memory (128·N·r bytes)
 * and in work (N·r·p, ~64 times the default's), and so is the work of one whole open.
 */
const MAX_SCRYPT_MEMORY = 1024 ** 3;
const MAX_SCRYPT_N = 2 ** 22;
const MAX_SCRYPT_RP = 1024;
const MAX_SCRYPT_WORK = 2 ** 24;
/** The scrypt work one open may spend trying key files: 4 of the most a file may ask, 256 of the default. */
const MAX_OPEN_WORK = 4 * MAX_SCRYPT_WORK;

/** The work of trying this key file: scrypt's N·r·p, nothing for a raw key. */
function kdfWork(file: KeyFile): number {
  return file.kdf === 'scrypt' ? file.N * file.r * file.p : 0;
}

/**
 * Which key files an open tries, in order: the cheapest first, as many as one open's work
 * budget allows. Planted key files that ask for much work can then delay an open by seconds,
 * and never before the real ones, which ask for the default, have been tried.
 */
export function keysToTry<T extends { file: KeyFile }>(candidates: readonly T[]): { tried: T[]; untried: T[] } {
  const sorted = [...candidates].sort((a, b) => kdfWork(a.file) - kdfWork(b.file));
  let work = 0;
  const within = sorted.findIndex(({ file }) => (work += kdfWork(file)) > MAX_OPEN_WORK);
  return within === -1 ? { tried: sorted, untried: [] } : { tried: sorted.slice(0, within), untried: sorted.slice(within) };
}

function scryptWithinBounds(N: unknown, r: unknown, p: unknown): boolean {
  if (![N, r, p].every((n) => Number.isSafeInteger(n) && (n as number) > 0)) return false;
  const [n, rr, pp] = [N, r, p] as number[];
  return isPowerOfTwo(n!) && n! <= MAX_SCRYPT_N && rr! * pp! <= MAX_SCRYPT_RP && 128 * n! * rr! <= MAX_SCRYPT_MEMORY && n! * rr! * pp! <= MAX_SCRYPT_WORK;
}

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
    (file.kdf === 'raw' || file.kdf === 'scrypt');
  if (!ok) throw new FormatError(`${where}: key file is malformed or of an unknown version`);
  if (file.kdf === 'scrypt' && !scryptWithinBounds(file.N, file.r, file.p)) {
    throw new FormatError(`${where}: key file asks for scrypt N=${String(file.N)} r=${String(file.r)} p=${String(file.p)}, beyond what bh allows (N a power of two up to 2^22, r·p ≤ 1024, 128·N·r ≤ 1 GiB, N·r·p ≤ 2^24); ignored`);
  }
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
