/**
 * The keyed gear table of the content-defined chunker.
 *
 * The table is derived from a per-repository secret seed (32 bytes derived from the master key,
 * see docs/FORMAT.md §2), so chunk boundaries, and hence chunk sizes, differ between
 * repositories and cannot be predicted without the seed:
 *
 *   gear[i] = LE32(SHA-256(seed || [i])[0..4])      for i = 0..255
 *
 * i.e. entry i is the first four bytes, read as a little-endian unsigned 32-bit integer, of the
 * SHA-256 digest of the seed followed by the single byte i. The definition works for a seed of
 * any length; repositories use exactly 32 bytes.
 */
import { createHash } from 'node:crypto';

export function gearTable(seed: Uint8Array): Uint32Array {
  if (!(seed instanceof Uint8Array)) {
    throw new TypeError('gearTable: seed must be a Uint8Array');
  }
  const table = new Uint32Array(256);
  const suffix = new Uint8Array(1);
  for (let i = 0; i < 256; i++) {
    suffix[0] = i;
    const d = createHash('sha256').update(seed).update(suffix).digest();
    table[i] = d.readUInt32LE(0);
  }
  return table;
}
