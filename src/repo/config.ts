/**
 * The repository's `config` file: plaintext JSON, written once by `init` (docs/FORMAT.md §1).
 * It holds nothing secret: the chunker's seed is derived from the master key instead.
 */
import { randomBytes } from 'node:crypto';
import { validateChunkerParams } from '../chunker/index.js';
import type { CompressionSettings } from './compression.js';
import { FormatError } from './errors.js';

export const FORMAT_VERSION = 1;

export interface ChunkerSettings {
  algorithm: 'fastcdc-gear32';
  min: number;
  avg: number;
  max: number;
}

export interface RepoConfig {
  version: number;
  id: string;
  chunker: ChunkerSettings;
  compression: CompressionSettings;
  /** Target size of a pack file in bytes. */
  pack_size: number;
}

export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;
export const DEFAULT_COMPRESSION: CompressionSettings = { algorithm: 'zstd', level: 3 };
export const DEFAULT_CHUNKER: ChunkerSettings = {
  algorithm: 'fastcdc-gear32',
  min: 512 * 1024,
  avg: 1024 * 1024,
  max: 8 * 1024 * 1024,
};

export function newConfig(overrides: Partial<Omit<RepoConfig, 'version' | 'id'>> = {}): RepoConfig {
  return {
    version: FORMAT_VERSION,
    id: randomBytes(32).toString('hex'),
    chunker: overrides.chunker ?? DEFAULT_CHUNKER,
    compression: overrides.compression ?? DEFAULT_COMPRESSION,
    pack_size: overrides.pack_size ?? DEFAULT_PACK_SIZE,
  };
}

export function encodeConfig(config: RepoConfig): Buffer {
  return Buffer.from(JSON.stringify(config, null, 2) + '\n');
}

export function decodeConfig(bytes: Buffer, where: string): RepoConfig {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new FormatError(`${where}: config is not valid JSON`);
  }
  const c = value as RepoConfig;
  const fail = (what: string): never => {
    throw new FormatError(`${where}: config ${what}`);
  };
  if (typeof c !== 'object' || c === null) fail('is not an object');
  if (c.version !== FORMAT_VERSION) fail(`has format version ${String(c.version)}; this bh reads version ${FORMAT_VERSION}`);
  if (typeof c.id !== 'string' || !/^[0-9a-f]{64}$/.test(c.id)) fail('has no valid id');
  const ch = c.chunker;
  if (!ch || ch.algorithm !== 'fastcdc-gear32') fail('has invalid chunker settings');
  try {
    validateChunkerParams({ min: ch.min, avg: ch.avg, max: ch.max });
  } catch (error) {
    fail(`has invalid chunker settings: ${(error as Error).message}`);
  }
  const co = c.compression;
  if (!co || (co.algorithm !== 'zstd' && co.algorithm !== 'none') || !Number.isInteger(co.level)) fail('has invalid compression settings');
  if (!Number.isSafeInteger(c.pack_size) || c.pack_size < 1024 || c.pack_size > 1024 ** 3) fail('has invalid pack_size');
  return c;
}
