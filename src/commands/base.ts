/**
 * What every command shares: the repository and secret options, opening the repository,
 * mapping errors to exit codes (README "Exit codes"), Ctrl-C, and the report object.
 */
import { readFile } from 'node:fs/promises';
import { Command, Option } from 'clipanion';
import * as t from 'typanion';
import { setTimeout as sleep } from 'node:timers/promises';
import { AbortedError, LockConflictError, LockLostError, RepositoryNotFoundError, WrongPasswordError } from '../repo/errors.js';
import { parseRawKey, type Secret } from '../repo/keyfile.js';
import type { LockKind } from '../repo/lock.js';
import { type CacheOptions, cacheDirFromEnv } from '../repo/cache.js';
import type { IndexedRepository, Repository, RepositoryLock } from '../repo/repository.js';
import { RepositorySession, type SessionOptions } from '../repo/session.js';
import { bhVersion, buildInfo, versionLine } from '../ops/provenance.js';
import type { BackendOptions } from '../repo/storage.js';
import { type LoadedSnapshots, loadSnapshots, parseLocalTime } from '../snapshot/snapshot.js';
import { TreeReader } from '../snapshot/walk.js';
import { Report } from './report.js';

export const ExitCode = {
  ok: 0,
  fatal: 1,
  preflight: 2,
  incomplete: 3,
  noRepository: 10,
  lockFailed: 11,
  wrongPassword: 12,
  interrupted: 130,
} as const;

/** What each exit code means, as README "Exit codes" and the man page bh(1) say it. */
export const EXIT_CODE_MEANINGS: ReadonlyArray<readonly [code: number, meaning: string]> = [
  [ExitCode.ok, 'success'],
  [ExitCode.fatal, 'fatal error (usage, configuration, I/O, `check` found problems)'],
  [ExitCode.preflight, 'pre-flight failure'],
  [ExitCode.incomplete, 'finished but incomplete (some files could not be read or restored, a destination failed)'],
  [ExitCode.noRepository, 'no repository at that location'],
  [ExitCode.lockFailed, 'the repository is locked, or this process lost its lock'],
  [ExitCode.wrongPassword, 'wrong password or key'],
  [ExitCode.interrupted, 'interrupted (Ctrl-C / SIGTERM); the repository stays consistent'],
];

/** How long an interrupted command waits for its lock's removal before it exits anyway. */
const LOCK_RELEASE_ON_EXIT_MS = 3000;

/** An error whose message is already the whole story for the user. */
export class UserError extends Error {
  constructor(message: string, readonly exitCode: number = ExitCode.fatal) {
    super(message);
    this.name = 'UserError';
  }
}

export abstract class BhCommand extends Command {
  json = Option.Boolean('--json', false, { description: 'Print JSON instead of text' });

  private reportInstance: Report | undefined;

  get report(): Report {
    this.reportInstance ??= new Report(this.context.stdout, this.context.stderr, this.json);
    return this.reportInstance;
  }

  /** The command's work; returns its exit code. */
  abstract run(): Promise<number>;

  async execute(): Promise<number> {
    try {
      return await this.run();
    } catch (error) {
      return this.fail(error);
    }
  }

  protected fail(error: unknown): number {
    // Work stopped because the lock was lost (not by the user): say that, not "interrupted".
    const reason: unknown = this.stopController?.signal.reason;
    if (error instanceof AbortedError && reason instanceof LockLostError) error = reason;
    const code = exitCodeOf(error);
    const message = error instanceof Error ? error.message : String(error);
    this.report.warn(code === ExitCode.interrupted ? 'bh: interrupted' : `bh: error: ${message}`);
    if (process.env['BH_DEBUG'] && error instanceof Error && error.stack) {
      // What a bug report needs beside the stack: which bh, built from what, on which Node.
      this.report.warn(versionLine({ bh: bhVersion(), ...buildInfo(), node: process.versions.node }));
      this.report.warn(error.stack);
    }
    return code;
  }

  /** Aborted on the first Ctrl-C (SIGINT) or SIGTERM, or when the repository lock is lost. */
  private stopController: AbortController | undefined;
  /** Whether the command checks the stop signal (interruptSignal() was called) and winds down by itself. */
  private stopsCooperatively = false;

  /**
   * An AbortSignal that fires on the first Ctrl-C (SIGINT) or SIGTERM, for a command that checks
   * it and stops cleanly; a second signal exits at once (after removing our lock).
   */
  protected interruptSignal(): AbortSignal {
    this.stopsCooperatively = true;
    return this.stopSignal();
  }

  /**
   * Installs the SIGINT/SIGTERM handler (once). Commands that never call interruptSignal() are
   * stopped at the first signal: the lock goes, then the process (their work is safe to cut
   * anywhere, docs/FORMAT.md §10). Node's default would leave the lock behind.
   */
  protected stopSignal(): AbortSignal {
    if (this.stopController) return this.stopController.signal;
    const controller = new AbortController();
    this.stopController = controller;
    const onSignal = (): void => {
      if (!this.stopsCooperatively || controller.signal.aborted) {
        void this.exitInterrupted();
        return;
      }
      this.report.warn('bh: stopping (interrupt again to exit at once)…');
      controller.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    return controller.signal;
  }

  /** Stops the command's work for `reason` (a lost lock): it ends as if interrupted, reporting the reason. */
  protected stop(reason: Error): void {
    const controller = this.stopController;
    if (controller && !controller.signal.aborted) controller.abort(reason);
  }

  /** Leaves at once with exit 130, removing our lock first when there is one (bounded, so a dead link cannot hold us). */
  protected async exitInterrupted(): Promise<never> {
    this.report.warn('bh: interrupted');
    process.exit(ExitCode.interrupted);
  }
}

/** Commands that work on a repository: -r/--repo and the secret options. */
export abstract class RepositoryCommand extends BhCommand {
  repo = Option.String('-r,--repo', { description: 'Repository location (or BH_REPO)' });
  passwordFile = Option.String('--password-file', { description: 'Read the password from this file (or BH_PASSWORD_FILE; BH_PASSWORD holds it directly)' });
  keyFile = Option.String('--key-file', { description: 'Use a 32-byte raw key file instead of a password' });
  sshKey = Option.String('--ssh-key', { description: 'SFTP: private key file (or BH_SSH_KEY; else ssh-agent, else BH_SSH_PASSWORD)' });
  knownHosts = Option.String('--known-hosts', { description: 'SFTP: known_hosts file (or BH_SSH_KNOWN_HOSTS; default ~/.ssh/known_hosts)' });
  sshAcceptNew = Option.Boolean('--ssh-accept-new', false, { description: 'SFTP: trust and record an unknown host key (a changed key is still refused)' });
  s3Endpoint = Option.String('--s3-endpoint', { description: 'S3: endpoint URL of an S3-compatible server (or BH_S3_ENDPOINT)' });
  s3Region = Option.String('--s3-region', { description: 'S3: region (or BH_S3_REGION)' });
  s3PathStyle = Option.Boolean('--s3-path-style', false, { description: 'S3: path-style bucket addressing (or BH_S3_PATH_STYLE=1)' });
  limitUpload = Option.String('--limit-upload', { description: 'Limit uploads to this many KiB/s', validator: t.isNumber() });
  limitDownload = Option.String('--limit-download', { description: 'Limit downloads to this many KiB/s', validator: t.isNumber() });
  retryLock = Option.String('--retry-lock', { description: 'If the repository is locked, keep trying this long (e.g. 30s, 5m, 1h)' });
  cacheDir = Option.String('--cache-dir', { description: 'Local cache folder (or BH_CACHE_DIR; default $XDG_CACHE_HOME/bh or ~/.cache/bh)' });
  cache = Option.Boolean('--cache', true, { description: 'Keep snapshots, index and tree packs in the local cache (--no-cache: read everything from the repository)' });

  /**
   * Every repository session the command opened; their locks are released when the command
   * ends, however it ends. Their backends stay open: the process exits right after, and reads
   * an interrupted command gave up on may still be under way (closing would fail them late).
   */
  private readonly sessions: RepositorySession[] = [];
  /** The session of -r/--repo, opened by openRepository(). */
  private session: RepositorySession | undefined;

  /** The lock openRepository() took. */
  protected get heldLock(): RepositoryLock | undefined {
    return this.session?.lock;
  }

  override async execute(): Promise<number> {
    try {
      return await super.execute();
    } finally {
      for (const session of this.sessions.splice(0)) {
        await session.releaseLock().catch((error: unknown) => this.report.warn(`warning: could not remove our lock: ${(error as Error).message}`));
      }
    }
  }

  protected repoLocation(): string {
    const location = this.repo ?? this.context.env['BH_REPO'];
    if (!location) throw new UserError('no repository given: pass -r/--repo PATH or set BH_REPO');
    return location;
  }

  protected secret(): Promise<Secret> {
    return resolveSecret(
      { keyFile: this.keyFile, passwordFile: this.passwordFile ?? this.context.env['BH_PASSWORD_FILE'], password: this.context.env['BH_PASSWORD'], what: '' },
      'no password given: set BH_PASSWORD or BH_PASSWORD_FILE, or pass --password-file FILE or --key-file FILE',
    );
  }

  /** Warns about a snapshot file that could not be read (it is left out; `check` reports it). */
  protected readonly warnDamagedSnapshot = (id: string, error: Error): void => {
    this.report.warn(`warning: snapshots/${id} cannot be read and is left out (run 'bh check'): ${error.message}`);
  };

  protected loadSnapshots(repo: Repository): Promise<LoadedSnapshots> {
    return loadSnapshots(repo, this.warnDamagedSnapshot);
  }

  /** What ls, find, diff and stats read trees with: stopped by `signal` (interruptSignal()), warnings on stderr. */
  protected treeReader(indexed: IndexedRepository, signal: AbortSignal): TreeReader {
    return new TreeReader(indexed, { signal, onWarning: (message) => this.report.warn(`warning: ${message}`) });
  }

  /** The backend options given by flags; the environment fills the rest. */
  protected backendOptions(): BackendOptions {
    return {
      env: this.context.env,
      sshKey: this.sshKey ?? this.context.env['BH_SSH_KEY'],
      knownHosts: this.knownHosts ?? this.context.env['BH_SSH_KNOWN_HOSTS'],
      sshAcceptNew: this.sshAcceptNew,
      s3Endpoint: this.s3Endpoint,
      s3Region: this.s3Region,
      s3PathStyle: this.s3PathStyle || undefined,
      limitUpload: this.limitUpload,
      limitDownload: this.limitDownload,
    };
  }

  /** What a session of this command needs besides location and secret. */
  protected sessionOptions(): SessionOptions {
    return { backend: this.backendOptions(), cache: this.cacheOptions(), onWarning: (message) => this.report.warn(`warning: ${message}`) };
  }

  /** Keeps `session`, so that its lock goes when the command ends. */
  protected keepSession(session: RepositorySession): RepositorySession {
    this.sessions.push(session);
    return session;
  }

  /**
   * Opens the repository and takes a lock of `lock` kind for the rest of the command: shared
   * for everything that only adds or reads, exclusive where files are rewritten or removed.
   */
  protected async openRepository(lock: LockKind | 'none' = 'shared'): Promise<Repository> {
    const retryMs = this.retryLockMs();
    const session = this.keepSession(await RepositorySession.open(this.repoLocation(), await this.secret(), this.sessionOptions()));
    this.session = session;
    if (lock !== 'none') {
      this.stopSignal();
      const held = await session.acquireLock(lock, { retryMs });
      held.signal.addEventListener('abort', () => this.stop(held.signal.reason as Error));
    }
    return session.repo;
  }

  protected override async exitInterrupted(): Promise<never> {
    const locked = this.sessions.filter((session) => session.lock !== undefined);
    if (locked.length > 0) await Promise.race([Promise.all(locked.map((session) => session.releaseLock().catch(() => undefined))), sleep(LOCK_RELEASE_ON_EXIT_MS)]);
    return super.exitInterrupted();
  }

  /**
   * Where the local cache is, or undefined with --no-cache. Commands that must see the
   * repository's own bytes (check) override this.
   */
  protected cacheOptions(): CacheOptions | undefined {
    if (!this.cache) return undefined;
    return { dir: this.cacheDir ?? cacheDirFromEnv(this.context.env), onWarning: (message) => this.report.warn(`warning: ${message}`) };
  }

  protected retryLockMs(): number {
    if (this.retryLock === undefined) return 0;
    return parseElapsed(this.retryLock, '--retry-lock');
  }
}

/** Where one repository's secret may come from, first match wins; `what` prefixes the file labels in messages ("source "). */
export interface SecretSources {
  keyFile: string | undefined;
  passwordFile: string | undefined;
  password: string | undefined;
  what: string;
}

export async function resolveSecret(sources: SecretSources, missing: string): Promise<Secret> {
  if (sources.keyFile) return readKeyFileSecret(sources.keyFile, `${sources.what}key file`);
  if (sources.passwordFile) return readPasswordFileSecret(sources.passwordFile, `${sources.what}password file`);
  if (sources.password !== undefined && sources.password !== '') return { kind: 'password', password: Buffer.from(sources.password) };
  throw new UserError(missing);
}

async function readSecretFile(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new UserError(`cannot read ${what} ${path}: ${(error as Error).message}`);
  }
}

/**
 * A password from a file. The file ends with one newline, as `echo secret > file` writes it;
 * that newline (LF or CRLF) is not part of the password.
 */
export async function readPasswordFileSecret(path: string, what: string): Promise<Secret> {
  const bytes = await readSecretFile(path, what);
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0x0a) end--;
  if (end > 0 && bytes[end - 1] === 0x0d) end--;
  if (end === 0) throw new UserError(`the ${what} ${path} is empty`);
  return { kind: 'password', password: bytes.subarray(0, end) };
}

/** A 32-byte raw key file. */
export async function readKeyFileSecret(path: string, what: string): Promise<Secret> {
  const bytes = await readSecretFile(path, what);
  try {
    return parseRawKey(bytes, path);
  } catch (error) {
    throw new UserError((error as Error).message);
  }
}

/**
 * Parses an elapsed time such as `30s`, `5m` (minutes), `1h`, `2h30m`, `1d` or a plain number of
 * seconds; returns ms. (Retention's calendar durations, where m means months, are forget's
 * parseDuration.)
 */
export function parseElapsed(text: string, option: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw new UserError(`${option}: '${text}' is not a duration (examples: 30s, 5m, 1h, 2h30m, 1d)`);
  return parts.reduce((ms, p) => ms + Number(p[1]) * unitMs[p[2]!]!, 0);
}

/** Parses a size such as `500M`, `2G`, `1.5TiB` or a plain number of bytes (K, M, G, T are powers of 1024). */
export function parseSize(text: string, option: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text);
  if (!match) throw new UserError(`${option}: '${text}' is not a size (examples: 500M, 2G, 1T, 1048576)`);
  return Math.floor(Number(match[1]) * 1024 ** 'bkmgt'.indexOf((match[2] || 'b').toLowerCase()));
}

/** A --time value (see parseLocalTime), or a UserError naming `option`. */
export function parseTimeOption(text: string, option: string): Date {
  try {
    return parseLocalTime(text);
  } catch (error) {
    throw new UserError(`${option} ${(error as Error).message}`);
  }
}

export function exitCodeOf(error: unknown): number {
  if (error instanceof UserError) return error.exitCode;
  if (error instanceof RepositoryNotFoundError) return ExitCode.noRepository;
  if (error instanceof LockConflictError || error instanceof LockLostError) return ExitCode.lockFailed;
  if (error instanceof WrongPasswordError) return ExitCode.wrongPassword;
  if (error instanceof AbortedError) return ExitCode.interrupted;
  return ExitCode.fatal;
}
