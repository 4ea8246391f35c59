/**
 * The one way commands and jobs open a repository: the backend for a location, the repository
 * unlocked by a secret (with the local cache, if any), at most one lock at a time, and close(),
 * which hands all of it back in order: the lock first (its removal needs the backend), then the
 * backend. A failure while opening closes what was already open.
 *
 *   const session = await RepositorySession.open(location, secret, { backend, cache });
 *   try {
 *     await session.acquireLock('shared', { retryMs });
 *     … session.repo …
 *   } finally {
 *     await session.close();
 *   }
 */
import type { Backend } from '../backends/backend.js';
import { openBackend } from '../backends/index.js';
import type { BackendOptions } from '../backends/options.js';
import type { CacheOptions } from './cache.js';
import { RepositoryNotFoundError } from './errors.js';
import type { Secret } from './keyfile.js';
import type { LockKind, LockOptions } from './lock.js';
import { type InitOptions, Repository, type RepositoryLock } from './repository.js';

export interface SessionOptions {
  /** How to reach the location: credentials, host keys, S3 endpoint, bandwidth limits. */
  backend: BackendOptions;
  /** The local cache (README.md, "Local cache"); none without it. */
  cache?: CacheOptions | undefined;
  /** Told about trouble that does not stop the open (a complete sentence, without a "warning:" prefix). */
  onWarning?: ((message: string) => void) | undefined;
}

export class RepositorySession {
  private held: RepositoryLock | undefined;

  private constructor(
    readonly repo: Repository,
    /** Whether this session created the repository (openOrInit found none). */
    readonly created: boolean,
  ) {}

  /** Opens the repository at `location`; throws RepositoryNotFoundError when there is none. */
  static async open(location: string, secret: Secret, options: SessionOptions): Promise<RepositorySession> {
    return withBackend(location, options, async (backend) => new RepositorySession(await Repository.open(backend, secret, { cache: options.cache, onWarning: options.onWarning }), false));
  }

  /** Creates a repository at `location`; throws RepositoryExistsError when one is there. */
  static async init(location: string, secret: Secret, options: SessionOptions, init: InitOptions = {}): Promise<RepositorySession> {
    return withBackend(location, options, async (backend) => new RepositorySession(await Repository.init(backend, secret, init), true));
  }

  /**
   * Opens the repository at `location`, or, when there is none, asks `whenMissing`: it returns
   * the options to create one with, or undefined to leave the location alone (then nothing
   * stays open and the result is undefined). One backend connection serves both steps.
   */
  static async openOrInit(location: string, secret: Secret, options: SessionOptions, whenMissing: () => InitOptions | undefined): Promise<RepositorySession | undefined> {
    return withBackend(location, options, async (backend) => {
      try {
        return new RepositorySession(await Repository.open(backend, secret, { cache: options.cache, onWarning: options.onWarning }), false);
      } catch (error) {
        if (!(error instanceof RepositoryNotFoundError)) throw error;
        const init = whenMissing();
        return init && new RepositorySession(await Repository.init(backend, secret, init), true);
      }
    });
  }

  /** The lock acquireLock() took and nobody released yet. */
  get lock(): RepositoryLock | undefined {
    return this.held;
  }

  /** Takes a lock of `kind` (docs/FORMAT.md §8), kept until releaseLock() or close(). */
  async acquireLock(kind: LockKind, options: LockOptions = {}): Promise<RepositoryLock> {
    if (this.held) throw new Error(`a session holds one lock at a time: release the ${this.held.kind} lock on ${this.repo.location} first`);
    this.held = await this.repo.lock(kind, options);
    return this.held;
  }

  /** Removes our lock, if we hold one. Whoever calls first removes it; later calls find none. */
  async releaseLock(): Promise<void> {
    const lock = this.held;
    this.held = undefined;
    await lock?.release();
  }

  /**
   * Releases the lock, then closes the backend. A lock that cannot be removed is reported by
   * throwing, after the backend is closed; a backend that fails to close is not: every write
   * was durable when it returned, so nothing is lost.
   */
  async close(): Promise<void> {
    try {
      await this.releaseLock();
    } finally {
      await this.repo.backend.close().catch(() => undefined);
    }
  }
}

/** Runs `use` on the backend for `location`; the backend is closed again when `use` fails or yields nothing. */
async function withBackend<T>(location: string, options: SessionOptions, use: (backend: Backend) => Promise<T>): Promise<T> {
  const backend = await openBackend(location, options.backend);
  let result: T | undefined;
  try {
    result = await use(backend);
    return result;
  } finally {
    if (result === undefined) await backend.close().catch(() => undefined);
  }
}
