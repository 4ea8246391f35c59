/**
 * Keys of the old tool's .enc files (src/legacy/enc.ts). With a passphrase every file has its
 * own salt and so its own PBKDF2 run of 600 000 iterations (about a quarter second of CPU): they
 * run on worker threads (one per core, BH_WORKERS; RequestPool of src/repo/worker-pool.ts) so
 * that both cores derive while the main thread streams files. With a key file there is
 * nothing to derive.
 */
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { RequestPool, workerCount, workerScript } from '../repo/worker-pool.js';
import { type EncSecret, type FileKey, KEY_BYTES, PBKDF2_ITERATIONS, SALT_BYTES, ZERO_SALT } from './enc.js';

export interface KdfRequest {
  passphrase: Uint8Array;
  salt: Uint8Array;
  iterations: number;
  keyBytes: number;
}

export class LegacyKeys {
  private readonly pool: RequestPool<KdfRequest, Uint8Array> | undefined;
  /** Keys for new files, derived ahead of need (encryption): as many in flight as there are workers. */
  private readonly ahead: Promise<FileKey>[] = [];

  constructor(private readonly secret: EncSecret) {
    const workers = workerCount();
    if (secret.kind === 'passphrase' && workers > 0) {
      this.pool = new RequestPool({ name: 'legacy key derivation', script: workerScript('legacy/kdf-worker.js'), size: workers, workerData: () => undefined });
    }
  }

  /** Lookahead for newKey(): one derivation per worker. */
  private get depth(): number {
    return this.pool?.size ?? 1;
  }

  /** The key for a file with `salt` (ignored for a key file, whose files carry a zero salt). */
  keyFor(salt: Buffer): Promise<Buffer> {
    if (this.secret.kind === 'key') return Promise.resolve(this.secret.key);
    const request: KdfRequest = { passphrase: this.secret.passphrase, salt, iterations: PBKDF2_ITERATIONS, keyBytes: KEY_BYTES };
    if (!this.pool) return Promise.resolve(pbkdf2Sync(request.passphrase, request.salt, request.iterations, request.keyBytes, 'sha256'));
    return this.pool.request(request).then((key) => Buffer.from(key));
  }

  /** A key and salt for a new file: a fresh random salt per file with a passphrase, the zero salt with a key file. */
  newKey(): Promise<FileKey> {
    while (this.ahead.length < this.depth + 1) this.ahead.push(this.derived());
    return this.ahead.shift()!;
  }

  private async derived(): Promise<FileKey> {
    const salt = this.secret.kind === 'key' ? ZERO_SALT : randomBytes(SALT_BYTES);
    return { salt, key: await this.keyFor(salt) };
  }

  async close(): Promise<void> {
    // Keys derived ahead and never used are dropped; their failures too.
    for (const pending of this.ahead.splice(0)) pending.catch(() => undefined);
    await this.pool?.close();
  }
}
