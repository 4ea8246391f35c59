/**
 * Decrypted data blobs for browsing: a least-recently-used cache bounded in bytes, in front of
 * the repository's blob reader (ranged read, then authentication, decompression and re-hash by
 * the blob codec). Readers of the same blob at the same time share
 * one fetch: eight processes reading one file cost one read of each blob, not eight.
 *
 * A blob that fails (missing, damaged) is not kept: the error goes to everyone waiting for that
 * fetch, and the next reader tries again.
 */
import type { IndexedRepository } from '../repo/repository.js';

/** What the cache fetches blobs from: the repository of the current snapshot list. */
export type DataBlobSource = () => Pick<IndexedRepository, 'loadBlob'>;

export class BlobCache {
  /** Decrypted blobs by id (hex), least recently used first (a Map keeps insertion order). */
  private readonly blobs = new Map<string, Buffer>();
  private readonly fetching = new Map<string, Promise<Buffer>>();
  private bytes = 0;

  constructor(
    private readonly source: DataBlobSource,
    /** Bytes of plaintext kept at most (one blob larger than this is still served, not kept). */
    readonly maxBytes: number,
  ) {}

  /** The data blob's plaintext (shared: callers must not change it). */
  get(id: Buffer): Promise<Buffer> {
    const key = id.toString('hex');
    const cached = this.blobs.get(key);
    if (cached) {
      this.blobs.delete(key);
      this.blobs.set(key, cached);
      return Promise.resolve(cached);
    }
    let pending = this.fetching.get(key);
    if (!pending) {
      pending = this.fetch(key, id);
      this.fetching.set(key, pending);
    }
    return pending;
  }

  /** Starts fetching a blob that will probably be wanted soon (a sequential reader's next one). */
  prefetch(id: Buffer): void {
    this.get(id).catch(() => undefined);
  }

  get cachedBytes(): number {
    return this.bytes;
  }

  private async fetch(key: string, id: Buffer): Promise<Buffer> {
    try {
      const plaintext = await this.source().loadBlob('data', id);
      this.keep(key, plaintext);
      return plaintext;
    } finally {
      this.fetching.delete(key);
    }
  }

  private keep(key: string, plaintext: Buffer): void {
    if (plaintext.length > this.maxBytes) return;
    this.blobs.set(key, plaintext);
    this.bytes += plaintext.length;
    for (const [oldest, blob] of this.blobs) {
      if (this.bytes <= this.maxBytes) break;
      this.blobs.delete(oldest);
      this.bytes -= blob.length;
    }
  }
}
