/**
 * Retry decorator for remote backends: each operation is retried with exponential backoff and
 * jitter while its error is transient, bounded in attempts and in total time, each retry logged.
 * Writes are safe to retry: files are immutable, written atomically under content-hash names
 * (backend.ts), so a write repeated after an unclear failure stores the same bytes again.
 * An exclusive write (config) is the exception: when an attempt failed without an answer, the
 * file may have been stored all the same, and the next attempt then finds it there. So an
 * exclusive write that gets AlreadyExistsError after a failed attempt reads the file back: if
 * it holds exactly the bytes being written, the earlier attempt stored them and the write
 * succeeded; otherwise another writer won and AlreadyExistsError stands. Equal bytes can only
 * be this writer's because bh writes exclusively only what no other writer can reproduce:
 * config carries a random 32-byte repository id.
 *
 * How a backend tells transient from permanent (the API the SFTP and S3 backends use):
 *
 *   - throw `new TransientError(message, { cause })`, or any error with a property
 *     `transient: true`, for a failure worth retrying (a dropped connection, a server busy);
 *   - set `transient: false` on an error to make it permanent whatever else it looks like;
 *   - otherwise `isTransient(error)` classifies it: NotFoundError and ShortReadError are
 *     permanent; Node socket codes (ECONNRESET, ECONNREFUSED, ECONNABORTED, EPIPE, ETIMEDOUT,
 *     EAI_AGAIN, EHOSTUNREACH, ENETUNREACH, ENETDOWN, ENOTCONN, ESOCKETTIMEDOUT…) are transient,
 *     permission errors (EACCES, EPERM) permanent; AWS SDK errors are transient for HTTP 5xx,
 *     429 and 408 (`$metadata.httpStatusCode`), throttling and timeout names, or `$retryable`,
 *     permanent for any other 4xx; ssh2 SFTP status codes 6 (NO_CONNECTION) and 7
 *     (CONNECTION_LOST) and messages such as "No response from server", "Not connected",
 *     "channel closed", "connection lost/reset", "socket hang up", "timed out" are transient.
 *     An error's `cause` is looked at too. Anything else is permanent: a bug must not be retried.
 *
 * A permanent error, or the last transient one, reaches the caller as a `BackendOperationError`
 * that names the location, the operation and the file (`sftp:host:/srv: write data/ab12…:
 * <cause>`); NotFoundError, ShortReadError and AlreadyExistsError pass through unchanged, because
 * callers test for them. The optional `temporaries` of a backend are retried like the rest; its
 * optional `localPath` passes through as it is (reads of a local file have nothing to retry).
 */
import {
  AlreadyExistsError,
  NotFoundError,
  ShortReadError,
  describeRef,
  type Backend,
  type ReadExtent,
  type FileInfo,
  type FileRef,
  type FileType,
  type TemporaryFile,
  type TemporaryFiles,
  type WriteOptions,
} from './backend.js';

/** An error a backend marks as worth retrying. */
export class TransientError extends Error {
  readonly transient = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransientError';
  }
}

/** The failed operation, after retries, naming where and what. `cause` is the backend's error. */
export class BackendOperationError extends Error {
  constructor(
    location: string,
    readonly operation: string,
    readonly target: string,
    cause: unknown,
    readonly attempts: number,
  ) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    // Backends that already name their location (and the operation) in their errors keep that
    // message; only a bare cause (an errno, an SDK error) is given the location here.
    const prefix = detail.startsWith(location) ? '' : `${location}: ${operation}${target ? ' ' + target : ''}: `;
    super(`${prefix}${detail}${attempts > 1 ? ` (gave up after ${attempts} attempts)` : ''}`, { cause });
    this.name = 'BackendOperationError';
  }
}

const TRANSIENT_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN',
  'EHOSTDOWN', 'ENOTCONN', 'ESOCKETTIMEDOUT', 'ERR_SOCKET_CONNECTION_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT',
  'ERR_STREAM_PREMATURE_CLOSE', 'ERR_HTTP2_STREAM_ERROR',
]);
const PERMANENT_CODES: ReadonlySet<string> = new Set(['EACCES', 'EPERM', 'ENOENT', 'EROFS', 'ENOSPC', 'EDQUOT', 'EISDIR', 'ENOTDIR']);
const TRANSIENT_AWS_NAMES: ReadonlySet<string> = new Set([
  'Throttling', 'ThrottlingException', 'ThrottledException', 'SlowDown', 'RequestThrottled', 'RequestThrottledException', 'TooManyRequestsException',
  'RequestLimitExceeded', 'BandwidthLimitExceeded', 'ProvisionedThroughputExceededException', 'RequestTimeout', 'RequestTimeoutException',
  'InternalError', 'ServiceUnavailable', 'TimeoutError',
]);
/** ssh2's SFTP status codes NO_CONNECTION and CONNECTION_LOST. */
const TRANSIENT_SFTP_STATUS: ReadonlySet<number> = new Set([6, 7]);
const TRANSIENT_MESSAGE = /no response from server|not connected|channel (?:is )?(?:closed|not open)|connection (?:lost|closed|reset|refused|ended)|socket hang up|timed? ?out|econnreset|epipe/i;

interface ErrorShape {
  transient?: unknown;
  code?: unknown;
  name?: unknown;
  message?: unknown;
  cause?: unknown;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

/** Whether retrying the operation that threw `error` may succeed (see the top of this file). */
export function isTransient(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 4) return false;
  if (error instanceof NotFoundError || error instanceof ShortReadError || error instanceof AlreadyExistsError) return false;
  const e = error as ErrorShape;
  if (e.transient === true) return true;
  if (e.transient === false) return false;
  if (typeof e.code === 'string') {
    if (TRANSIENT_CODES.has(e.code)) return true;
    if (PERMANENT_CODES.has(e.code)) return false;
  }
  if (typeof e.code === 'number' && TRANSIENT_SFTP_STATUS.has(e.code)) return true;
  const status = e.$metadata?.httpStatusCode;
  if (typeof status === 'number') {
    if (status >= 500 || status === 429 || status === 408) return true;
    if (status >= 400) return false;
  }
  if (e.$retryable) return true;
  if (typeof e.name === 'string' && TRANSIENT_AWS_NAMES.has(e.name)) return true;
  if (typeof e.message === 'string' && TRANSIENT_MESSAGE.test(e.message)) return true;
  return isTransient(e.cause, depth + 1);
}

export interface RetryOptions {
  /** Attempts per operation, the first included (default 6). */
  attempts?: number;
  /** No retry starts later than this after the first attempt began (default 60 s). */
  maxElapsedMs?: number;
  /** Delay before the first retry; doubles each time (default 500 ms). */
  baseDelayMs?: number;
  /** Upper bound of one delay (default 15 s). */
  maxDelayMs?: number;
  /** Where retry warnings go (default: a line on stderr). */
  log?: (line: string) => void;
}

const DEFAULTS: Required<RetryOptions> = {
  attempts: 6,
  maxElapsedMs: 60_000,
  baseDelayMs: 500,
  maxDelayMs: 15_000,
  log: (line) => process.stderr.write(line + '\n'),
};

/**
 * Retry bounds from the environment, for operators and tests: BH_RETRY_ATTEMPTS (attempts per
 * operation, at least 1), BH_RETRY_MAX_SECONDS (total time bound), BH_RETRY_DELAY_MS (first
 * delay). A value that is not a positive number is refused, naming the variable.
 */
export function retryOptionsFromEnv(env: Readonly<Record<string, string | undefined>>): RetryOptions {
  const read = (name: string, integer: boolean): number | undefined => {
    const text = env[name];
    if (text === undefined || text === '') return undefined;
    const value = Number(text);
    if (!(value > 0) || !Number.isFinite(value) || (integer && !Number.isInteger(value))) throw new Error(`${name}='${text}' is not a positive ${integer ? 'integer' : 'number'}`);
    return value;
  };
  const options: RetryOptions = {};
  const attempts = read('BH_RETRY_ATTEMPTS', true);
  const maxSeconds = read('BH_RETRY_MAX_SECONDS', false);
  const delayMs = read('BH_RETRY_DELAY_MS', false);
  if (attempts !== undefined) options.attempts = attempts;
  if (maxSeconds !== undefined) options.maxElapsedMs = maxSeconds * 1000;
  if (delayMs !== undefined) options.baseDelayMs = delayMs;
  return options;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Wraps `backend` so that every operation but `close` is retried on transient errors. */
export function withRetry(backend: Backend, options: RetryOptions = {}): Backend {
  const settings: Required<RetryOptions> = { ...DEFAULTS, ...options };

  async function attempt<T>(operation: string, target: string, run: () => Promise<T>): Promise<T> {
    const started = Date.now();
    for (let k = 1; ; k++) {
      try {
        return await run();
      } catch (error) {
        if (error instanceof NotFoundError || error instanceof ShortReadError || error instanceof AlreadyExistsError) throw error;
        // Full jitter over the upper half: retries of many operations failing at once spread out.
        const ceiling = Math.min(settings.maxDelayMs, settings.baseDelayMs * 2 ** (k - 1));
        const delay = ceiling / 2 + Math.random() * (ceiling / 2);
        const retry = k < settings.attempts && isTransient(error) && Date.now() - started + delay <= settings.maxElapsedMs;
        if (!retry) throw new BackendOperationError(backend.location, operation, target, error, k);
        const message = error instanceof Error ? error.message : String(error);
        settings.log(`bh: retrying ${operation}${target ? ' ' + target : ''} after ${message} (attempt ${k + 1}/${settings.attempts})`);
        await sleep(delay);
      }
    }
  }

  /** An exclusive write, told apart from a lost race when an earlier attempt stored it (see the top of this file). */
  async function writeExclusive(ref: FileRef, data: Buffer | readonly Buffer[]): Promise<void> {
    let attempts = 0;
    try {
      await attempt('write', describeRef(ref), () => {
        attempts++;
        return backend.write(ref, data, { exclusive: true });
      });
    } catch (error) {
      if (!(error instanceof AlreadyExistsError) || attempts === 1) throw error;
      const written = Buffer.isBuffer(data) ? data : Buffer.concat(data as readonly Buffer[]);
      const stored = await attempt('read', describeRef(ref), () => backend.read(ref, { atMost: written.length })).catch(() => undefined);
      if (stored === undefined || !stored.equals(written)) throw error;
    }
  }

  const temporaries = backend.temporaries;
  const localPath = backend.localPath?.bind(backend);
  return {
    location: backend.location,
    list: (type: FileType): Promise<FileInfo[]> => attempt('list', type, () => backend.list(type)),
    stat: (ref: FileRef): Promise<FileInfo> => attempt('stat', describeRef(ref), () => backend.stat(ref)),
    read: (ref: FileRef, extent: ReadExtent, signal?: AbortSignal): Promise<Buffer> => attempt('read', describeRef(ref), () => backend.read(ref, extent, signal)),
    write: (ref: FileRef, data: Buffer | readonly Buffer[], options?: WriteOptions): Promise<void> =>
      options?.exclusive ? writeExclusive(ref, data) : attempt('write', describeRef(ref), () => backend.write(ref, data, options)),
    remove: (ref: FileRef): Promise<void> => attempt('remove', describeRef(ref), () => backend.remove(ref)),
    create: (): Promise<void> => attempt('create', '', () => backend.create()),
    ...(temporaries && {
      temporaries: {
        list: (): Promise<TemporaryFile[]> => attempt('list', 'temporary files', () => temporaries.list()),
        remove: (file: TemporaryFile): Promise<void> => attempt('remove', file.path, () => temporaries.remove(file)),
      } satisfies TemporaryFiles,
    }),
    ...(localPath && { localPath }),
    close: (): Promise<void> => backend.close(),
  };
}
