/**
 * Tree blobs are read by pack: the first tree wanted from a tree pack fetches the whole pack
 * (from the local cache when it has it, else from the backend, then into the cache), and later
 * trees of that pack come from memory. A backup walking its parent's trees, or ls, find, diff
 * and restore walking a snapshot, then costs one read per tree pack instead of one per
 * directory: on SFTP or S3 each of those was a round trip, and even locally an open, a read and
 * a close of a pack file.
 *
 * Which packs are fetched whole: tree packs whose trees end within WHOLE_PACK_MAX bytes (the
 * index says where each tree lies). Packs of the default size (they close at the first blob
 * past 16 MiB) qualify; so do the small packs a backup's last flush leaves. A repository made
 * with a larger pack size is read tree by tree, as before: one tree out of a 128 MiB pack is
 * not worth the pack. Within the bound a whole pack is fetched even when one tree of it is
 * wanted (a pack with mostly unreferenced trees, before prune): it is 16 MiB once, kept in the
 * cache for every later command, where ranged reads would cost a round trip per tree per
 * command, every time. A whole pack is checked against its name (SHA-256) before use; one that
 * fails is read tree by tree from then on, so a damaged pack fails only the trees it damaged.
 * Every tree is still authenticated and re-hashed against its id by the caller.
 *
 * Memory: recently used packs stay in memory up to MEMORY_BYTES (least recently used go
 * first); that holds two packs of the largest size fetched whole, so a walk crossing from one
 * pack into the next does not fetch either again.
 */
import type { BlobLocation, MasterIndex } from './master-index.js';
import type { Repository } from './repository.js';
import { sha256 } from './crypto.js';
import { TooLargeError } from '../backends/backend.js';

const MiB = 1024 * 1024;
/** Tree packs whose trees end within this many bytes are fetched whole. */
export const WHOLE_PACK_MAX = 24 * MiB;
/** Bytes of whole tree packs kept in memory (the most recent one is kept even when larger). */
export const MEMORY_BYTES = 2 * WHOLE_PACK_MAX;

export class TreePacks {
  /** Packs in memory, least recently used first. */
  private readonly held = new Map<string, Buffer>();
  private heldBytes = 0;
  private readonly fetching = new Map<string, Promise<Buffer | undefined>>();
  /** Where each tree pack's last tree ends, computed on first use, and the tree count it was computed at. */
  private extents: Map<string, number> | undefined;
  private extentsRows = -1;
  /** Packs whose whole copy did not hash to their name: read tree by tree. */
  private readonly rangedOnly = new Set<string>();

  constructor(
    private readonly repo: Repository,
    private readonly index: MasterIndex,
  ) {}

  /** The stored envelope of the tree at `where`. */
  async envelope(where: BlobLocation): Promise<Buffer> {
    const packHex = where.packId.toString('hex');
    const end = where.offset + where.length;
    const pack = await this.wholePack(packHex);
    if (pack && end <= pack.length) return pack.subarray(where.offset, end);
    return this.repo.backend.read({ type: 'data', name: packHex }, { offset: where.offset, length: where.length });
  }

  private wholePack(packHex: string): Buffer | undefined | Promise<Buffer | undefined> {
    const held = this.held.get(packHex);
    if (held) {
      this.held.delete(packHex);
      this.held.set(packHex, held);
      return held;
    }
    const end = this.rangedOnly.has(packHex) ? undefined : this.wholeEnd(packHex);
    if (end === undefined) return undefined;
    let pending = this.fetching.get(packHex);
    if (!pending) {
      pending = this.fetch(packHex, end).finally(() => this.fetching.delete(packHex));
      this.fetching.set(packHex, pending);
    }
    return pending;
  }

  /** Where the pack's last tree ends, when the pack is fetched whole (else undefined). */
  private wholeEnd(packHex: string): number | undefined {
    let end = this.extents?.get(packHex);
    // A pack indexed after the extents were taken (this process wrote it): take them again.
    if (end === undefined && this.extentsRows !== this.index.rowCount('tree')) {
      this.extentsRows = this.index.rowCount('tree');
      this.extents = this.index.blobExtents('tree');
      end = this.extents.get(packHex);
    }
    return end !== undefined && end <= WHOLE_PACK_MAX ? end : undefined;
  }

  private async fetch(packHex: string, end: number): Promise<Buffer | undefined> {
    // The header lists each tree in 41 bytes, and no tree envelope is under 30: a pack larger
    // than this holds more than its trees (padded with junk), and is read tree by tree.
    const whole = { atMost: 3 * end + 1024 };
    const cache = this.repo.cache;
    let bytes = await cache?.read('data', packHex, whole);
    if (!bytes) {
      const fetched = await this.repo.backend.read({ type: 'data', name: packHex }, whole).catch((error: unknown) => {
        if (error instanceof TooLargeError) return undefined;
        throw error;
      });
      if (fetched === undefined || sha256(fetched).toString('hex') !== packHex) {
        this.rangedOnly.add(packHex);
        return undefined;
      }
      bytes = fetched;
      await cache?.write('data', packHex, bytes);
    }
    this.hold(packHex, bytes);
    return bytes;
  }

  private hold(packHex: string, bytes: Buffer): void {
    this.held.set(packHex, bytes);
    this.heldBytes += bytes.length;
    for (const [key, old] of this.held) {
      if (this.heldBytes <= MEMORY_BYTES || key === packHex) break;
      this.held.delete(key);
      this.heldBytes -= old.length;
    }
  }
}
