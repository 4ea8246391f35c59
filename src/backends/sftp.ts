/**
 * A repository on an SSH server, over SFTP (ssh2), in the layout of src/backends/layout.ts.
 *
 * - Host keys: checked against known_hosts by HostKeyPolicy (known-hosts.ts) before anything is
 *   sent; the first connection is opened by openSftpBackend, so a refused key or failed login
 *   stops the command before it starts.
 * - Login: the --ssh-key file (passphrase from BH_SSH_KEY_PASSPHRASE), then ssh-agent
 *   (SSH_AUTH_SOCK), then the default identities ~/.ssh/id_ed25519, id_ecdsa, id_rsa (only
 *   without --ssh-key), then the password in BH_SSH_PASSWORD (also offered to
 *   keyboard-interactive prompts).
 * - Writes: a temp file `.tmp-<random>` in the final folder (mode 0600), written with several
 *   requests in flight, fsynced (fsync@openssh.com) when the server offers it, then renamed over
 *   the final name with posix-rename@openssh.com (plain SFTP rename refuses an existing target).
 *   A failed write removes its temp file (on the next connection if this one died).
 * - Exclusive writes (config): the complete temp file gets the final name with
 *   hardlink@openssh.com (link(2): fails when the name exists), then the temp name is removed;
 *   without that extension, with the protocol's plain rename, which must fail on an existing
 *   target (draft-ietf-secsh-filexfer-02 §6.5). Either way the file is never seen half-written,
 *   and a failure with the final name present is AlreadyExistsError.
 * - Temp files of writes killed before their rename are listed (with size and mtime) and
 *   removed through `temporaries`, for check and prune.
 * - Reads: ranged reads on a handle, several requests in flight; ShortReadError when the file
 *   ends early; NotFoundError for SFTP status 2 (no such file).
 * - Sessions: up to `connections` SSH connections (one SFTP channel each), opened as work needs
 *   them; each runs at most OPS_PER_SESSION backend operations at once. A connection that drops
 *   or stops answering fails its operations with an error marked `transient` (for the retry
 *   decorator) and is replaced on the next call. While no operation runs, the sockets are unref'd,
 *   so a command that ends without close() still lets the process exit.
 */
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { homedir } from 'node:os';
import { posix } from 'node:path';
import ssh2, { type AnyAuthMethod, type AuthenticationType, type FileEntryWithStats, type NextAuthHandler, type OpenMode, type SFTPWrapper, type Stats } from 'ssh2';

import {
  AlreadyExistsError,
  NotFoundError,
  ShortReadError,
  TooLargeError,
  describeRef,
  isWholeFile,
  type Backend,
  type ReadExtent,
  type FileInfo,
  type FileRef,
  type FileType,
  type TemporaryFile,
  type TemporaryFiles,
  type WriteOptions,
} from './backend.js';
import { HostKeyError, HostKeyPolicy } from './known-hosts.js';
import {
  DATA_SUBFOLDERS,
  FOLDERS,
  TEMPORARY_FOLDERS,
  checkRange,
  checkedFolder,
  checkedName,
  checkedTemporarySegments,
  folderSegments,
  isListedName,
  isTemporaryName,
  listConfig,
  mapLimit,
  tempName,
  temporaryPath,
} from './layout.js';
import type { BackendOptions } from './options.js';
import { parseSftpLocation, type SftpLocation } from './sftp-location.js';

// ssh2 is CommonJS: Node's ESM loader sees only its default export.
const { Client, utils } = ssh2;
type Client = InstanceType<typeof Client>;

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
const DEFAULT_CONNECTIONS = 4;
/** Backend operations one SFTP session runs at once (each pipelines its own requests). */
const OPS_PER_SESSION = 2;
/** SFTP read/write requests one operation keeps in flight. */
const REQUESTS_IN_FLIGHT = 16;
/** Bytes per read/write request when the server does not say (OpenSSH's limit is 256 KiB per packet). */
const DEFAULT_REQUEST_BYTES = 255 * 1024;
/**
 * A connection with requests outstanding that answers none for this long is dropped (then
 * retried as any dropped connection); BH_SFTP_TIMEOUT (seconds) overrides.
 */
const DEFAULT_TIMEOUT_SECONDS = 60;
const CONNECT_TIMEOUT_MS = 20_000;
/** Data subfolders `list('data')` reads at once (spread over the sessions). */
const LIST_CONCURRENCY = 32;

/** SFTP status codes (draft-ietf-secsh-filexfer-02) that matter here. */
const SFTP_NO_SUCH_FILE = 2;
const SFTP_NO_CONNECTION = 6;
const SFTP_CONNECTION_LOST = 7;

/** ssh2's message when every login method has been refused. */
const ALL_AUTH_FAILED = 'All configured authentication methods failed';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/** A failure of the connection rather than of the file: the retry decorator may retry it. */
export class SftpConnectionError extends Error {
  readonly transient = true;
  /** What went wrong with the connection, without the operation it broke ("cannot connect to …"). */
  readonly reason: string;
  constructor(message: string, reason = message) {
    super(message);
    this.reason = reason;
    this.name = 'SftpConnectionError';
  }
}

/** Login refused: names user@host and every method tried. Not transient. */
export class SftpAuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SftpAuthError';
  }
}

interface SftpStatusError extends Error {
  code?: number | string;
  level?: string;
}

function statusCode(err: unknown): number | undefined {
  const code = (err as SftpStatusError | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** One SSH connection with one SFTP channel. */
class Session {
  alive = true;
  busy = 0;
  /** SFTP requests sent and not answered yet. */
  private outstanding = 0;
  private watchdog: NodeJS.Timeout | undefined;
  /** Why the connection died, for messages. */
  deathCause = '';
  readonly supportsFsync: boolean;
  readonly supportsPosixRename: boolean;
  readonly supportsHardlink: boolean;
  readonly requestBytes: number;

  constructor(
    readonly client: Client,
    readonly sftp: SFTPWrapper,
    readonly socket: Socket,
    private readonly timeoutMs: number,
  ) {
    // ssh2 keeps what the server announced in private fields; its methods only throw when an
    // extension is missing, which is too late to pick a strategy.
    const internals = sftp as unknown as { _extensions?: Record<string, string>; _maxWriteLen?: number; _maxReadLen?: number };
    this.supportsFsync = internals._extensions?.['fsync@openssh.com'] === '1';
    this.supportsPosixRename = internals._extensions?.['posix-rename@openssh.com'] === '1';
    this.supportsHardlink = internals._extensions?.['hardlink@openssh.com'] === '1';
    this.requestBytes = Math.min(internals._maxWriteLen ?? DEFAULT_REQUEST_BYTES, internals._maxReadLen ?? DEFAULT_REQUEST_BYTES, DEFAULT_REQUEST_BYTES);
    const die = (cause: string): void => this.kill(cause);
    client.on('error', (err: Error) => die(err.message));
    client.on('close', () => die('connection closed'));
    client.on('end', () => die('connection closed by the server'));
    sftp.on('close', () => die('SFTP channel closed'));
    sftp.on('error', (err: Error) => die(err.message));
  }

  /** Keeps the process alive only while an operation runs. */
  setBusy(delta: number): void {
    this.busy += delta;
    if (this.busy > 0) this.socket.ref();
    else this.socket.unref();
  }

  kill(cause: string): void {
    if (!this.alive) return;
    this.alive = false;
    this.deathCause = cause;
    clearTimeout(this.watchdog);
    this.client.end();
    this.socket.destroy();
  }

  /**
   * Runs one SFTP request. While requests are outstanding, the server must answer one of them
   * at least every `timeoutMs`, else the connection is killed (which fails them all): a
   * slow link still makes progress, a frozen server or a silently dead link does not.
   */
  call<T>(start: (cb: (err: Error | undefined | null, value?: T) => void) => void): Promise<T> {
    if (!this.alive) return Promise.reject(new Error(this.deathCause));
    return new Promise<T>((resolve, reject) => {
      this.outstanding++;
      if (this.watchdog === undefined) this.armWatchdog();
      const done = (err: Error | undefined | null, value?: T): void => {
        this.outstanding--;
        this.armWatchdog();
        if (err) reject(err);
        else resolve(value as T);
      };
      try {
        start(done);
      } catch (err) {
        done(err as Error);
      }
    });
  }

  private armWatchdog(): void {
    clearTimeout(this.watchdog);
    this.watchdog =
      this.outstanding > 0 && this.alive ? setTimeout(() => this.kill(`no answer from the server for ${this.timeoutMs / 1000} s`), this.timeoutMs) : undefined;
  }

  open(path: string, flags: OpenMode, mode?: number): Promise<Buffer> {
    return this.call((cb) => this.sftp.open(path, flags, mode === undefined ? {} : { mode }, cb));
  }

  close(handle: Buffer): Promise<void> {
    return this.call((cb) => this.sftp.close(handle, cb));
  }

  stat(path: string): Promise<Stats> {
    return this.call((cb) => this.sftp.stat(path, cb));
  }

  fstat(handle: Buffer): Promise<Stats> {
    return this.call((cb) => this.sftp.fstat(handle, cb));
  }

  readdir(path: string): Promise<FileEntryWithStats[]> {
    return this.call((cb) => this.sftp.readdir(path, cb));
  }

  mkdir(path: string): Promise<void> {
    return this.call((cb) => this.sftp.mkdir(path, { mode: DIR_MODE }, cb));
  }

  unlink(path: string): Promise<void> {
    return this.call((cb) => this.sftp.unlink(path, cb));
  }

  rename(from: string, to: string): Promise<void> {
    if (this.supportsPosixRename) return this.call((cb) => this.sftp.ext_openssh_rename(from, to, cb));
    return this.call((cb) => this.sftp.rename(from, to, cb));
  }

  /** Gives `from` the new name `to` too, failing when `to` exists: hardlink@openssh.com, else the protocol's rename, which must not replace `to`. */
  linkNew(from: string, to: string): Promise<void> {
    if (this.supportsHardlink) return this.call((cb) => this.sftp.ext_openssh_hardlink(from, to, cb));
    return this.call((cb) => this.sftp.rename(from, to, cb));
  }

  fsync(handle: Buffer): Promise<void> {
    return this.call((cb) => this.sftp.ext_openssh_fsync(handle, (err) => cb(err)));
  }

  /** Writes `len` bytes of `buf` at `position`; ssh2 splits what exceeds one packet. */
  writeAt(handle: Buffer, buf: Buffer, off: number, len: number, position: number): Promise<void> {
    return this.call((cb) => this.sftp.write(handle, buf, off, len, position, (err) => cb(err)));
  }

  /** Reads up to `len` bytes at `position` into `buf`; resolves to the count (0 at end of file). */
  readAt(handle: Buffer, buf: Buffer, off: number, len: number, position: number): Promise<number> {
    return this.call<number>((cb) => this.sftp.read(handle, buf, off, len, position, (err, bytesRead) => cb(err, bytesRead)));
  }
}

/** How to log in, in the order tried; `label` names the method in messages. */
interface AuthAttempt {
  label: string;
  method: AnyAuthMethod;
}

function readPrivateKey(user: string, file: string, passphrase: string | undefined, explicit: boolean): { attempt?: AuthAttempt; skipped?: string } {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    if (!explicit) return {};
    throw new SftpAuthError(`cannot read the SSH key ${file}: ${(err as Error).message}`);
  }
  const parsed = utils.parseKey(data, passphrase);
  if (parsed instanceof Error) {
    const encrypted = /encrypted|passphrase/i.test(parsed.message);
    const why = encrypted
      ? passphrase === undefined
        ? 'it is encrypted: set BH_SSH_KEY_PASSPHRASE to its passphrase (or load it into ssh-agent)'
        : 'the passphrase in BH_SSH_KEY_PASSPHRASE does not decrypt it'
      : parsed.message;
    if (explicit) throw new SftpAuthError(`cannot use the SSH key ${file}: ${why}`);
    return { skipped: `key ${file} (skipped: ${encrypted ? 'encrypted' : 'unreadable'})` };
  }
  return { attempt: { label: `key ${file}`, method: { type: 'publickey', username: user, key: data, ...(passphrase === undefined ? {} : { passphrase }) } } };
}

/** The login methods for `options`, in order, and the ones skipped (for the failure message). */
function authAttempts(user: string, options: BackendOptions): { attempts: AuthAttempt[]; skipped: string[] } {
  const env = options.env;
  const passphrase = env['BH_SSH_KEY_PASSPHRASE'] || undefined;
  const attempts: AuthAttempt[] = [];
  const skipped: string[] = [];
  const addKey = (file: string, explicit: boolean): void => {
    const { attempt, skipped: why } = readPrivateKey(user, file, passphrase, explicit);
    if (attempt) attempts.push(attempt);
    if (why) skipped.push(why);
  };
  if (options.sshKey) addKey(options.sshKey, true);
  const agent = env['SSH_AUTH_SOCK'];
  if (agent) attempts.push({ label: `ssh-agent (${agent})`, method: { type: 'agent', username: user, agent } });
  if (!options.sshKey) for (const name of ['id_ed25519', 'id_ecdsa', 'id_rsa']) addKey(posix.join(homedir(), '.ssh', name), false);
  const password = env['BH_SSH_PASSWORD'];
  if (password) {
    attempts.push({ label: 'password (BH_SSH_PASSWORD)', method: { type: 'password', username: user, password } });
    attempts.push({
      label: 'keyboard-interactive (BH_SSH_PASSWORD)',
      method: { type: 'keyboard-interactive', username: user, prompt: (_n, _i, _l, prompts, finish) => finish(prompts.map(() => password)) },
    });
  }
  return { attempts, skipped };
}

export class SftpBackend implements Backend {
  readonly location: string;
  private readonly server: string;
  private readonly root: string;
  private readonly maxSessions: number;
  private readonly timeoutMs: number;
  private readonly sessions: Session[] = [];
  private opening = 0;
  private readonly waiters: (() => void)[] = [];
  private readonly hostKeys: HostKeyPolicy;
  private readonly auth: { attempts: AuthAttempt[]; skipped: string[] };
  /** Temp files of writes whose connection died before they could be removed. */
  private readonly strayTemps: string[] = [];
  private closed = false;

  constructor(
    location: string,
    private readonly target: SftpLocation,
    options: BackendOptions,
  ) {
    this.location = location;
    this.server = `${target.user}@${target.host}${target.port === 22 ? '' : `:${target.port}`}`;
    this.root = target.path.replace(/(.)\/+$/, '$1');
    this.maxSessions = Math.max(1, Math.floor(options.connections ?? DEFAULT_CONNECTIONS));
    const timeout = Number(options.env['BH_SFTP_TIMEOUT'] ?? DEFAULT_TIMEOUT_SECONDS);
    this.timeoutMs = (Number.isFinite(timeout) && timeout > 0 ? timeout : DEFAULT_TIMEOUT_SECONDS) * 1000;
    this.hostKeys = new HostKeyPolicy(options.knownHosts, options.sshAcceptNew === true);
    this.auth = authAttempts(target.user, options);
  }

  /** Opens the first connection, so that host-key and login problems surface at once. */
  async start(): Promise<void> {
    const session = await this.connect();
    session.setBusy(0);
    this.sessions.push(session);
  }

  private pathOf(ref: FileRef): string {
    return posix.join(this.folderOf(ref), checkedName(ref));
  }

  private folderOf(ref: FileRef): string {
    return posix.join(this.root, ...folderSegments(ref));
  }

  private connect(): Promise<Session> {
    const { host, port } = this.target;
    return new Promise<Session>((resolve, reject) => {
      const client = new Client();
      const socket = netConnect({ host, port });
      let hostKeyFailure: HostKeyError | undefined;
      const tried: string[] = [];
      const pending = [...this.auth.attempts];
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        client.end();
        socket.destroy();
        reject(err);
      };
      const connectionFailed = (reason: string): void => fail(new SftpConnectionError(`sftp: ${reason}`, reason));
      client.on('error', (err: SftpStatusError) => {
        if (hostKeyFailure) return fail(new HostKeyError(`sftp: ${hostKeyFailure.message}`));
        // ssh2 reports an unusable agent or a key it could not sign with, then goes on to the next method.
        if (err.level === 'agent' || (err.level === 'client-authentication' && err.message !== ALL_AUTH_FAILED)) {
          if (tried.length > 0) tried[tried.length - 1] += ` (${err.message})`;
          return;
        }
        if (err.level === 'client-authentication') {
          const methods = [...tried, ...this.auth.skipped];
          return fail(
            new SftpAuthError(
              `sftp: ${this.server} refused the login as ${this.target.user}; tried: ${methods.length > 0 ? methods.join(', ') : 'nothing (no key, agent or password available)'}. ` +
                'Pass --ssh-key FILE, run ssh-agent (SSH_AUTH_SOCK), or set BH_SSH_PASSWORD.',
            ),
          );
        }
        connectionFailed(`cannot connect to ${this.server}: ${err.message}`);
      });
      client.on('close', () => connectionFailed(`connection to ${this.server} closed while logging in`));
      client.on('ready', () => {
        client.sftp((err, sftp) => {
          if (err) return connectionFailed(`${this.server} refused the SFTP subsystem: ${err.message}`);
          if (settled) return;
          settled = true;
          resolve(new Session(client, sftp, socket, this.timeoutMs));
        });
      });
      try {
        client.connect({
          sock: socket,
          host,
          port,
          username: this.target.user,
          readyTimeout: CONNECT_TIMEOUT_MS,
          algorithms: { serverHostKey: this.hostKeys.algorithmsFor(host, port) },
          hostVerifier: (key: Buffer): boolean => {
            try {
              this.hostKeys.verify(host, port, key);
              return true;
            } catch (e) {
              hostKeyFailure = e instanceof HostKeyError ? e : new HostKeyError((e as Error).message);
              return false;
            }
          },
          authHandler: (allowed: AuthenticationType[] | null, _partial: boolean, next: NextAuthHandler): void => {
            // After the first refusal the server says which methods may still succeed: skip the others.
            const usable = (a: AuthAttempt): boolean => allowed === null || allowed.includes(a.method.type === 'agent' ? 'publickey' : a.method.type);
            while (pending.length > 0 && !usable(pending[0]!)) tried.push(`${pending.shift()!.label} (not offered by the server)`);
            const attempt = pending.shift();
            // ssh2 takes `false` for "no more methods"; its type declarations leave that out.
            if (!attempt) return (next as unknown as (auth: false) => void)(false);
            tried.push(attempt.label);
            next(attempt.method);
          },
        });
      } catch (err) {
        fail(err as Error);
      }
    });
  }

  /** A live session with room for one more operation (opening a new one when all are full and the pool is not). */
  private async acquire(): Promise<Session> {
    for (;;) {
      if (this.closed) throw new Error(`${this.location}: the backend is closed`);
      for (let i = this.sessions.length - 1; i >= 0; i--) if (!this.sessions[i]!.alive) this.sessions.splice(i, 1);
      const idle = this.sessions.filter((s) => s.busy < OPS_PER_SESSION).sort((a, b) => a.busy - b.busy)[0];
      if (idle && (idle.busy === 0 || this.sessions.length + this.opening >= this.maxSessions)) {
        idle.setBusy(1);
        return idle;
      }
      if (this.sessions.length + this.opening < this.maxSessions) {
        this.opening++;
        let session: Session;
        try {
          session = await this.connect();
        } catch (err) {
          // Operations waiting for room would otherwise wait for a release that never comes:
          // let each of them try (and fail or succeed) on its own.
          for (const wake of this.waiters.splice(0)) wake();
          throw err;
        } finally {
          this.opening--;
        }
        session.setBusy(1);
        if (this.closed) {
          session.kill('backend closed');
          continue;
        }
        this.sessions.push(session);
        await this.removeStrayTemps(session);
        return session;
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private release(session: Session): void {
    session.setBusy(-1);
    this.waiters.shift()?.();
  }

  /**
   * Runs `fn` on a session and turns failures into messages that name sftp, the server and the
   * operation: connection failures become transient SftpConnectionErrors (and the session is
   * dropped), "no such file" a NotFoundError when `ref` is given.
   */
  private async withSession<T>(what: string, ref: FileRef | undefined, fn: (s: Session) => Promise<T>): Promise<T> {
    let session: Session;
    try {
      session = await this.acquire();
    } catch (err) {
      if (err instanceof SftpConnectionError) throw new SftpConnectionError(`sftp ${this.location}: ${what} failed: ${err.reason}`, err.reason);
      throw err;
    }
    try {
      return await fn(session);
    } catch (err) {
      throw this.translate(err, session, what, ref);
    } finally {
      this.release(session);
    }
  }

  private translate(err: unknown, session: Session, what: string, ref: FileRef | undefined): Error {
    if (err instanceof NotFoundError || err instanceof ShortReadError || err instanceof TooLargeError || err instanceof AlreadyExistsError || err instanceof SftpConnectionError || err instanceof RangeError) return err;
    const code = statusCode(err);
    const message = err instanceof Error ? err.message : String(err);
    if (session.alive && code !== undefined && code !== SFTP_NO_CONNECTION && code !== SFTP_CONNECTION_LOST) {
      if (code === SFTP_NO_SUCH_FILE && ref) return new NotFoundError(this.location, ref);
      return Object.assign(new Error(`sftp ${this.location}: ${what} failed: ${message} (SFTP status ${code})`), { code });
    }
    session.kill(message);
    return new SftpConnectionError(`sftp ${this.location}: ${what} failed: connection to ${this.server} lost (${session.deathCause || message})`);
  }

  private async removeStrayTemps(session: Session): Promise<void> {
    while (this.strayTemps.length > 0 && session.alive) {
      const temp = this.strayTemps.shift()!;
      await session.unlink(temp).catch(() => undefined);
    }
  }

  /** Creates `dir` (0700) and any missing parents; an existing folder is fine. */
  private async mkdirp(session: Session, dir: string): Promise<void> {
    try {
      await session.mkdir(dir);
      return;
    } catch (err) {
      if (!session.alive) throw err;
      // OpenSSH answers a plain "failure" for an existing folder: look at what is there.
      const existing = await session.stat(dir).catch((e: unknown) => (statusCode(e) === SFTP_NO_SUCH_FILE ? undefined : Promise.reject(e)));
      if (existing?.isDirectory()) return;
      if (existing) throw Object.assign(new Error(`${dir} exists and is not a folder`), { code: 4 });
      const parent = posix.dirname(dir);
      if (parent === dir || parent === '.' || parent === '/') throw err;
      await this.mkdirp(session, parent);
      await session.mkdir(dir).catch(async (e: unknown) => {
        if (!(await session.stat(dir).then((s) => s.isDirectory(), () => false))) throw e;
      });
    }
  }

  async create(): Promise<void> {
    await this.withSession('creating the repository folders', undefined, async (s) => {
      await this.mkdirp(s, this.root);
      for (const folder of Object.values(FOLDERS)) await this.mkdirp(s, posix.join(this.root, folder));
    });
    const data = posix.join(this.root, FOLDERS.data);
    await mapLimit(DATA_SUBFOLDERS, LIST_CONCURRENCY, (sub) =>
      this.withSession(`creating ${FOLDERS.data}/${sub}`, undefined, (s) => this.mkdirp(s, posix.join(data, sub))),
    );
  }

  async write(ref: FileRef, data: Buffer | readonly Buffer[], options: WriteOptions = {}): Promise<void> {
    const dir = this.folderOf(ref);
    const finalPath = posix.join(dir, ref.name);
    const tempPath = posix.join(dir, tempName());
    await this.withSession(`writing ${describeRef(ref)}`, undefined, async (s) => {
      let handle: Buffer;
      try {
        handle = await s.open(tempPath, 'wx', FILE_MODE);
      } catch (err) {
        // A data subfolder may be missing (a repository copied without empty folders): create
        // just that one, never the repository itself.
        if (statusCode(err) !== SFTP_NO_SUCH_FILE || ref.type !== 'data' || !s.alive) throw err;
        await s.mkdir(dir).catch(() => undefined);
        handle = await s.open(tempPath, 'wx', FILE_MODE);
      }
      // The temp name is gone once renamed; a link leaves it to remove.
      let renamed = false;
      try {
        try {
          await this.writeParts(s, handle, Array.isArray(data) ? data : [data as Buffer]);
          if (s.supportsFsync) await s.fsync(handle);
        } finally {
          await s.close(handle).catch((err: unknown) => {
            if (!s.alive) throw err;
          });
        }
        if (options.exclusive) await this.linkExclusive(s, ref, tempPath, finalPath);
        else {
          await s.rename(tempPath, finalPath);
          renamed = true;
        }
      } finally {
        if (!renamed) {
          if (s.alive) await s.unlink(tempPath).catch(() => undefined);
          else this.strayTemps.push(tempPath);
        }
      }
    });
  }

  /** Gives the complete temp file its final name unless that name exists (then AlreadyExistsError). */
  private async linkExclusive(s: Session, ref: FileRef, tempPath: string, finalPath: string): Promise<void> {
    try {
      await s.linkNew(tempPath, finalPath);
    } catch (err) {
      // OpenSSH answers a plain "failure" for an existing target: look at what is there.
      if (!s.alive) throw err;
      const exists = await s.stat(finalPath).then(
        () => true,
        (e: unknown) => (statusCode(e) === SFTP_NO_SUCH_FILE ? false : Promise.reject(e)),
      );
      if (exists) throw new AlreadyExistsError(this.location, ref);
      throw err;
    }
  }

  /** Writes the parts one after another with up to REQUESTS_IN_FLIGHT requests outstanding. */
  private async writeParts(s: Session, handle: Buffer, parts: readonly Buffer[]): Promise<void> {
    const chunks: { part: Buffer; off: number; len: number; position: number }[] = [];
    let position = 0;
    for (const part of parts) {
      for (let off = 0; off < part.length; off += s.requestBytes) {
        const len = Math.min(s.requestBytes, part.length - off);
        chunks.push({ part, off, len, position });
        position += len;
      }
    }
    await mapLimit(chunks, REQUESTS_IN_FLIGHT, (c) => s.writeAt(handle, c.part, c.off, c.len, c.position));
  }

  async read(ref: FileRef, extent: ReadExtent): Promise<Buffer> {
    const file = this.pathOf(ref);
    if (!isWholeFile(extent)) checkRange(ref, extent);
    return this.withSession(`reading ${describeRef(ref)}`, ref, async (s) => {
      const handle = await s.open(file, 'r');
      try {
        const { offset, length } = isWholeFile(extent) ? { offset: 0, length: (await s.fstat(handle)).size } : extent;
        if (isWholeFile(extent) && length > extent.atMost) throw new TooLargeError(this.location, ref, length, extent.atMost);
        const buf = Buffer.allocUnsafe(length);
        const got = await this.readInto(s, handle, buf, offset);
        if (got < length) throw new ShortReadError(this.location, ref, length, got);
        return buf;
      } finally {
        // Not awaited: the close goes out behind the reads, and nothing waits for its answer.
        void s.close(handle).catch(() => undefined);
      }
    });
  }

  /**
   * Fills `buf` from file position `offset` with up to REQUESTS_IN_FLIGHT requests outstanding;
   * returns how many bytes the file had (less than `buf.length` when it ends early).
   */
  private async readInto(s: Session, handle: Buffer, buf: Buffer, offset: number): Promise<number> {
    const starts: number[] = [];
    for (let at = 0; at < buf.length; at += s.requestBytes) starts.push(at);
    let end = buf.length;
    await mapLimit(starts, REQUESTS_IN_FLIGHT, async (start) => {
      const stop = Math.min(start + s.requestBytes, buf.length);
      // A server may answer with fewer bytes than asked: ask again for the rest.
      for (let at = start; at < stop && at < end; ) {
        const n = await s.readAt(handle, buf, at, stop - at, offset + at);
        if (n === 0) {
          end = Math.min(end, at);
          break;
        }
        at += n;
      }
    });
    return end;
  }

  async stat(ref: FileRef): Promise<FileInfo> {
    const file = this.pathOf(ref);
    const st = await this.withSession(`looking up ${describeRef(ref)}`, ref, (s) => s.stat(file));
    return { name: ref.name, size: st.size };
  }

  async list(type: FileType): Promise<FileInfo[]> {
    if (type === 'config') return listConfig(this);
    const folder = posix.join(this.root, checkedFolder(type));
    if (type !== 'data') return this.listFolder(folder, type);
    const perSub = await mapLimit(DATA_SUBFOLDERS, LIST_CONCURRENCY, (sub) => this.listFolder(posix.join(folder, sub), `${type}/${sub}`, sub));
    return perSub.flat();
  }

  /** The entries of one folder, with sizes, types and times; a missing folder has none. */
  private readFolder(folder: string, label: string): Promise<FileEntryWithStats[]> {
    return this.withSession(`listing ${label}`, undefined, async (s) => {
      try {
        return await s.readdir(folder);
      } catch (err) {
        if (statusCode(err) === SFTP_NO_SUCH_FILE && s.alive) return [];
        throw err;
      }
    });
  }

  /** The stored files of one folder; a missing folder has none. */
  private async listFolder(folder: string, label: string, prefix?: string): Promise<FileInfo[]> {
    const entries = await this.readFolder(folder, label);
    return entries
      .filter((e) => isListedName(e.filename, prefix) && ((e.attrs.mode ?? S_IFREG) & S_IFMT) === S_IFREG)
      .map((e) => ({ name: e.filename, size: e.attrs.size }));
  }

  async remove(ref: FileRef): Promise<void> {
    const file = this.pathOf(ref);
    await this.withSession(`removing ${describeRef(ref)}`, undefined, async (s) => {
      try {
        await s.unlink(file);
      } catch (err) {
        if (statusCode(err) !== SFTP_NO_SUCH_FILE || !s.alive) throw err;
      }
    });
  }

  readonly temporaries: TemporaryFiles = {
    list: () => this.listTemporaries(),
    remove: (file) => this.removeTemporary(file),
  };

  private async listTemporaries(): Promise<TemporaryFile[]> {
    const perFolder = await mapLimit(TEMPORARY_FOLDERS, LIST_CONCURRENCY, async (folder) => {
      const entries = await this.readFolder(posix.join(this.root, folder), `temporary files in ${folder || 'the repository folder'}`);
      return entries
        .filter((e) => isTemporaryName(e.filename) && ((e.attrs.mode ?? S_IFREG) & S_IFMT) === S_IFREG)
        .map((e): TemporaryFile => ({ path: temporaryPath(folder, e.filename), size: e.attrs.size, mtimeMs: e.attrs.mtime * 1000 }));
    });
    return perFolder.flat();
  }

  private async removeTemporary(file: TemporaryFile): Promise<void> {
    const target = posix.join(this.root, ...checkedTemporarySegments(file.path));
    await this.withSession(`removing ${file.path}`, undefined, async (s) => {
      try {
        await s.unlink(target);
      } catch (err) {
        if (statusCode(err) !== SFTP_NO_SUCH_FILE || !s.alive) throw err;
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const sessions = this.sessions.splice(0);
    await Promise.all(
      sessions.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (!s.alive) return resolve();
            s.socket.once('close', () => resolve());
            s.kill('backend closed');
          }),
      ),
    );
    for (const wake of this.waiters.splice(0)) wake();
  }
}

export async function openSftpBackend(location: string, options: BackendOptions): Promise<Backend> {
  const backend = new SftpBackend(location, parseSftpLocation(location), options);
  await backend.start();
  return backend;
}
