/**
 * Compressing and encrypting blobs off the main thread.
 *
 * zstd and AES-GCM are the costly half of a backup; the main thread reads, chunks and hashes.
 * A pool of worker threads (src/repo/seal-worker.ts) runs `sealBlobPayload` (the blob codec,
 * src/repo/blob-codec.ts) on chunks handed to it; with zero workers (library use, tests run from
 * TypeScript sources) the same function runs inline. Either way the bytes are identical: one implementation, two places to run it.
 */
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PayloadCodec, type CompressionSettings } from './compression.js';
import { sealBlobPayload } from './blob-codec.js';
import { type BlobType, MasterKeys } from './crypto.js';

/**
 * The bytes of `view` in an ArrayBuffer of their own, ready to move to another thread.
 * postMessage clones a view's whole underlying buffer — for Node's pooled small buffers that is
 * 8 KiB per message, 400 MB over a 50 000-file backup — so a view that does not own its buffer
 * is copied first; one that does is passed as is (and can be transferred without a copy).
 */
export function movable(view: Uint8Array): Uint8Array {
  return view.byteOffset === 0 && view.byteLength === view.buffer.byteLength && view.buffer instanceof ArrayBuffer ? view : new Uint8Array(view);
}

export interface SealRequest {
  seq: number;
  type: BlobType;
  id: Uint8Array;
  plaintext: Uint8Array;
}

export interface SealResponse {
  seq: number;
  envelope?: Uint8Array;
  error?: string;
}

export interface WorkerInit {
  /** MasterKeys.serialize() of the repository. */
  keys: Uint8Array;
  compression: CompressionSettings;
}

export interface BlobSealer {
  /** The blob's envelope. `plaintext` is handed over: it may be detached (moved to a worker). */
  seal(type: BlobType, id: Buffer, plaintext: Uint8Array): Promise<Buffer>;
  close(): Promise<void>;
}

export class InlineSealer implements BlobSealer {
  private readonly codec: PayloadCodec;

  constructor(private readonly keys: MasterKeys, compression: CompressionSettings) {
    this.codec = new PayloadCodec(compression);
  }

  seal(type: BlobType, id: Buffer, plaintext: Uint8Array): Promise<Buffer> {
    return Promise.resolve(sealBlobPayload(this.keys, this.codec, type, id, plaintext));
  }

  async close(): Promise<void> {}
}

const WORKER_SCRIPT = fileURLToPath(new URL('./seal-worker.js', import.meta.url));

export class WorkerSealer implements BlobSealer {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>();
  private readonly load: number[] = [];
  private seq = 0;

  constructor(keys: MasterKeys, compression: CompressionSettings, count: number) {
    const init: WorkerInit = { keys: keys.serialize(), compression };
    for (let i = 0; i < count; i++) {
      const worker = new Worker(WORKER_SCRIPT, { workerData: init, resourceLimits: WORKER_RESOURCE_LIMITS });
      worker.on('message', (response: SealResponse) => {
        this.load[i]!--;
        if (this.load[i] === 0) worker.unref();
        const waiter = this.pending.get(response.seq);
        this.pending.delete(response.seq);
        if (!waiter) return;
        if (response.envelope) waiter.resolve(Buffer.from(response.envelope.buffer, response.envelope.byteOffset, response.envelope.byteLength));
        else waiter.reject(new Error(response.error ?? 'seal worker failed'));
      });
      worker.on('error', (error) => this.failAll(error));
      // An idle worker must not keep a finished command alive; a busy one must (see seal()).
      worker.unref();
      this.workers.push(worker);
      this.load.push(0);
    }
  }

  seal(type: BlobType, id: Buffer, plaintext: Uint8Array): Promise<Buffer> {
    const seq = this.seq++;
    let target = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.load[i]! < this.load[target]!) target = i;
    if (this.load[target]!++ === 0) this.workers[target]!.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      const moved = movable(plaintext);
      const request: SealRequest = { seq, type, id: movable(id), plaintext: moved };
      this.workers[target]!.postMessage(request, [moved.buffer as ArrayBuffer]);
    });
  }

  private failAll(error: Error): void {
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * Limits for every worker thread: a young generation of 2 MB instead of V8's default of up to
 * 48. Workers hold their data in buffers outside the JS heap, so the small nursery costs no
 * measurable CPU and saves tens of MB of resident memory per worker.
 */
export const WORKER_RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 2 };

/** Worker threads per pool: `BH_WORKERS` when set, else `otherwise` (one per core). */
export function workerCount(otherwise = availableParallelism()): number {
  const fromEnv = process.env['BH_WORKERS'];
  return fromEnv !== undefined && fromEnv !== '' ? Math.max(0, Math.floor(Number(fromEnv)) || 0) : otherwise;
}

/** Workers when the compiled worker script exists (the CLI runs from dist/), else inline (also with BH_WORKERS=0). */
export function createSealer(keys: MasterKeys, compression: CompressionSettings): BlobSealer {
  const count = workerCount();
  if (count === 0 || !existsSync(WORKER_SCRIPT)) return new InlineSealer(keys, compression);
  return new WorkerSealer(keys, compression, count);
}
