/**
 * Bandwidth-limit decorator (`--limit-upload`, `--limit-download`, in KiB/s).
 *
 * One token bucket per direction, shared by every operation through the decorated backend, so
 * concurrent pack uploads together stay under the limit. A write waits, before it starts, for
 * the time its bytes take at the limit; a read is charged after it returns (a whole-file read's
 * size is only known then), delaying the caller and the reads queued behind it. The backend
 * interface takes whole buffers, so a big pack is paced as one unit: on average the rate holds,
 * and each pack still goes out in one atomic write. A bucket holds at most a quarter second of
 * traffic, the burst a short idle period may save up. A read whose caller gives up (its signal
 * aborts: an interrupted restore) stops waiting at once, so no timer keeps the process alive.
 * The backend's optional `localPath` (reads that bypass read()) is passed on only without a
 * download limit, so the limit holds for every byte read.
 */
import type { Backend, ReadExtent, FileInfo, FileRef, FileType, WriteOptions } from './backend.js';

export interface ThrottleLimits {
  /** KiB/s; 0 for no limit. */
  uploadKiBs: number;
  /** KiB/s; 0 for no limit. */
  downloadKiBs: number;
}

const BURST_SECONDS = 0.25;

/**
 * Tokens are bytes. A caller takes what it needs at once and may drive the bucket into debt;
 * it then waits until the refill has paid the debt, so callers are served in arrival order and
 * the long-run rate never exceeds the limit.
 */
export class TokenBucket {
  private tokens: number;
  private last = performance.now();
  private readonly capacity: number;

  constructor(private readonly bytesPerSecond: number) {
    if (!(bytesPerSecond > 0)) throw new Error(`a bandwidth limit must be a positive number, not ${bytesPerSecond}`);
    this.capacity = bytesPerSecond * BURST_SECONDS;
    this.tokens = this.capacity;
  }

  /** Takes `bytes` and waits until they are paid for; once `signal` aborts, stops waiting and rejects with its reason. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const now = performance.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond);
    this.last = now;
    this.tokens -= bytes;
    if (this.tokens >= 0) return;
    const waitMs = (-this.tokens / this.bytesPerSecond) * 1000;
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, waitMs);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

export function withThrottle(backend: Backend, limits: ThrottleLimits): Backend {
  for (const [flag, value] of [['--limit-upload', limits.uploadKiBs], ['--limit-download', limits.downloadKiBs]] as const) {
    if (!Number.isFinite(value) || value < 0) throw new Error(`${flag} must be a number of KiB/s (0 for no limit), not ${value}`);
  }
  const upload = limits.uploadKiBs > 0 ? new TokenBucket(limits.uploadKiBs * 1024) : undefined;
  const download = limits.downloadKiBs > 0 ? new TokenBucket(limits.downloadKiBs * 1024) : undefined;
  const localPath = download ? undefined : backend.localPath?.bind(backend);
  return {
    location: backend.location,
    list: (type: FileType): Promise<FileInfo[]> => backend.list(type),
    stat: (ref: FileRef): Promise<FileInfo> => backend.stat(ref),
    async read(ref: FileRef, extent: ReadExtent, signal?: AbortSignal): Promise<Buffer> {
      const bytes = await backend.read(ref, extent, signal);
      await download?.take(bytes.length, signal);
      return bytes;
    },
    async write(ref: FileRef, data: Buffer | readonly Buffer[], options?: WriteOptions): Promise<void> {
      const size = Buffer.isBuffer(data) ? data.length : (data as readonly Buffer[]).reduce((sum, part) => sum + part.length, 0);
      await upload?.take(size);
      await backend.write(ref, data, options);
    },
    remove: (ref: FileRef): Promise<void> => backend.remove(ref),
    create: (): Promise<void> => backend.create(),
    // Listing and removing temporary files moves no file contents: not metered.
    ...(backend.temporaries && { temporaries: backend.temporaries }),
    ...(localPath && { localPath }),
    close: (): Promise<void> => backend.close(),
  };
}
