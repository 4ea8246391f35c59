/**
 * The one pack writer (docs/FORMAT.md §4): sealed blobs go into an open pack of their type (data
 * and tree never share one), a pack is closed once it holds `pack_size` bytes of envelopes (and
 * at flush), stored on the backend, a tree pack also copied into the local cache (what the next
 * backup's parent walk, ls and restore read), and only then handed to `onStored`, which indexes
 * it. Backups and copy write through it (IndexedRepository), and so does prune's repack.
 *
 * Uploads run in the background, at most `concurrency` at once: a closed pack waits for a slot
 * (while it waits, `packsWaiting` tells producers to hold back), and the one after it is filled
 * while it uploads. A failed upload is raised by the next add() or flush(); nothing a failed
 * pack held reaches `onStored`, so nothing indexes it (the write order, §10: packs, then the
 * index entries for them).
 */
import type { BlobType } from './crypto.js';
import type { IndexedPack } from './index-file.js';
import { PackBuilder } from './pack.js';
import type { Repository } from './repository.js';

export interface PackWriterOptions {
  /** Packs uploading at once (a closed pack waits for a slot). */
  concurrency: number;
  /** A pack is stored (and, for trees, cached); its blobs may be indexed now. */
  onStored: (pack: IndexedPack) => void;
}

export class PackWriter {
  private readonly builders: Record<BlobType, PackBuilder> = { data: new PackBuilder(), tree: new PackBuilder() };
  private readonly uploads = new Set<Promise<void>>();
  /** Closed packs waiting for an upload slot. */
  private waiting = 0;
  private failure: unknown;

  constructor(
    private readonly repo: Repository,
    private readonly options: PackWriterOptions,
  ) {}

  /** Whether a closed pack waits for an upload slot: producers should wait before adding more. */
  get packsWaiting(): boolean {
    return this.waiting > 0;
  }

  /**
   * Adds a sealed blob to the open pack of its type; when that is full, closes it and starts its
   * upload (after waiting for a slot). Returns whether a pack was closed.
   */
  async add(type: BlobType, id: Buffer, envelope: Buffer, rawLength: number): Promise<boolean> {
    const builder = this.builders[type];
    builder.add(type, id, envelope, rawLength);
    if (builder.size < this.repo.config.pack_size) return false;
    await this.close(type);
    return true;
  }

  /** Closes the open packs and waits until every pack is stored; throws the first failure. */
  async flush(): Promise<void> {
    this.throwFailure();
    for (const type of ['data', 'tree'] as const) if (this.builders[type].count > 0) await this.close(type);
    await Promise.all(this.uploads);
    this.throwFailure();
  }

  /** Throws the failure of an upload, if one failed. */
  throwFailure(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private async close(type: BlobType): Promise<void> {
    const pack = this.builders[type].finish(this.repo.keys);
    this.builders[type] = new PackBuilder();
    this.waiting++;
    try {
      while (this.uploads.size >= this.options.concurrency) await Promise.race(this.uploads);
    } finally {
      this.waiting--;
    }
    this.throwFailure();
    const packHex = pack.id.toString('hex');
    const upload: Promise<void> = this.repo.backend
      .write({ type: 'data', name: packHex }, pack.parts)
      // Write-through of tree packs: the next command on this host reads them locally.
      .then(() => (type === 'tree' ? this.repo.cache?.write('data', packHex, pack.parts) : undefined))
      .then(() => this.options.onStored({ packId: pack.id, blobs: pack.blobs }))
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => this.uploads.delete(upload));
    this.uploads.add(upload);
  }
}
