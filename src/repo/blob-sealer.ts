/**
 * Compressing and encrypting blobs off the main thread.
 *
 * zstd and AES-GCM are the costly half of a backup; the main thread reads, chunks and hashes.
 * Worker threads (src/repo/seal-worker.ts, on a RequestPool: src/repo/worker-pool.ts) run
 * `sealBlobPayload` (the blob codec, src/repo/blob-codec.ts) on blobs handed to them, started
 * one at a time as the load needs (most backups seal their files in the archiver's own workers,
 * and hand few blobs here); with zero workers (BH_WORKERS=0) the same function runs inline.
 * Either way the bytes are identical: one implementation, two places to run it.
 */
import { PayloadCodec, type CompressionSettings } from './compression.js';
import { sealBlobPayload } from './blob-codec.js';
import { type BlobType, MasterKeys } from './crypto.js';
import { RequestPool, movable, workerCount, workerScript } from './worker-pool.js';

/** A blob to seal; a seal worker answers with its envelope (moved, not copied). */
export interface SealRequest {
  type: BlobType;
  id: Uint8Array;
  plaintext: Uint8Array;
}

export interface WorkerInit {
  /** MasterKeys.serialize() of the repository. */
  keys: Uint8Array;
  compression: CompressionSettings;
}

export interface BlobSealer {
  /** The blob's envelope. `plaintext` is handed over: it may be detached (moved to a worker). */
  seal(type: BlobType, id: Buffer, plaintext: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

export class InlineSealer implements BlobSealer {
  private readonly codec: PayloadCodec;

  constructor(private readonly keys: MasterKeys, compression: CompressionSettings) {
    this.codec = new PayloadCodec(compression);
  }

  seal(type: BlobType, id: Buffer, plaintext: Uint8Array): Promise<Uint8Array> {
    return Promise.resolve(sealBlobPayload(this.keys, this.codec, type, id, plaintext));
  }

  async close(): Promise<void> {}
}

export class WorkerSealer implements BlobSealer {
  private readonly pool: RequestPool<SealRequest, Uint8Array>;

  constructor(keys: MasterKeys, compression: CompressionSettings, count: number) {
    const init: WorkerInit = { keys: keys.serialize(), compression };
    this.pool = new RequestPool({ name: 'seal', script: workerScript('repo/seal-worker.js'), size: count, workerData: () => init });
  }

  seal(type: BlobType, id: Buffer, plaintext: Uint8Array): Promise<Uint8Array> {
    const moved = movable(plaintext);
    return this.pool.request({ type, id: movable(id), plaintext: moved }, [moved.buffer as ArrayBuffer]);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Workers (BH_WORKERS, else one per core), or inline with BH_WORKERS=0. */
export function createSealer(keys: MasterKeys, compression: CompressionSettings): BlobSealer {
  const count = workerCount();
  return count === 0 ? new InlineSealer(keys, compression) : new WorkerSealer(keys, compression, count);
}
