/**
 * Errors the repository layer raises that callers must tell apart. The CLI maps them to exit
 * codes (README "Exit codes"): RepositoryNotFound → 10, LockConflict → 11, WrongPassword → 12.
 */

export class RepositoryNotFoundError extends Error {
  constructor(location: string) {
    super(`there is no bh repository at ${location} (no config file); create one with 'bh init' or check -r/BH_REPO`);
    this.name = 'RepositoryNotFoundError';
  }
}

export class RepositoryExistsError extends Error {
  /** `meanwhile`: the repository appeared while this init was creating one (another init won the race). */
  constructor(location: string, meanwhile = false) {
    super(
      meanwhile
        ? `a repository appeared at ${location} meanwhile (another 'bh init' wrote its config first); this init stopped: open that repository with its password, or init another location`
        : `${location} already holds a bh repository (config exists); refusing to overwrite it`,
    );
    this.name = 'RepositoryExistsError';
  }
}

export class WrongPasswordError extends Error {
  constructor(location: string, tried: number) {
    super(`${location}: the password or key file opens none of the repository's ${tried} key(s)`);
    this.name = 'WrongPasswordError';
  }
}

export class LockConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LockConflictError';
  }
}

/** A repository file that decrypts but does not parse: damage or a bug, never a user error. */
export class FormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FormatError';
  }
}

/**
 * A stored file, or a blob in a pack, whose bytes are not what their name says: a file that
 * does not hash to its name, a blob that authenticates but does not re-hash to its id (or has
 * another length than the index says).
 */
export class DamagedFileError extends Error {
  constructor(
    readonly file: string,
    /** The problem without the file's name. */
    readonly detail: string,
  ) {
    super(`${file}: ${detail}`);
    this.name = 'DamagedFileError';
  }
}

/**
 * A blob the repository should have and has not: no index lists it, or the pack the index
 * names is gone. The repository is missing data; `bh check` says how much.
 */
export class MissingBlobError extends Error {
  private constructor(message: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = 'MissingBlobError';
  }

  static notIndexed(type: string, id: Uint8Array): MissingBlobError {
    return new MissingBlobError(`${type} blob ${Buffer.from(id).toString('hex')} is not in the index (the repository is missing data; run 'bh check')`);
  }

  /** The pack the index names does not exist; `cause` is the backend's NotFoundError, when there is one. */
  static packGone(location: string, packHex: string, cause?: unknown): MissingBlobError {
    return new MissingBlobError(`${location}: data/${packHex} does not exist`, cause === undefined ? undefined : { cause });
  }
}

/** The work was stopped on request (Ctrl-C, SIGTERM): exit 130. */
export class AbortedError extends Error {
  constructor() {
    super('interrupted');
    this.name = 'AbortedError';
  }
}

/**
 * This process's lock went without a refresh for so long that other processes may already
 * count it stale (docs/FORMAT.md §8): a suspended laptop, a stopped process, a store that kept
 * refusing the refresh. Whatever the process planned may be out of date, so it stops before
 * writing anything that depends on it.
 */
export class LockLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LockLostError';
  }
}

/**
 * Packs a backup (or copy) refers to were condemned or removed while it ran: a prune ran while
 * this process was paused past its lock's stale time, or an index file was stale. No snapshot
 * is saved, since it would point at data that is gone or about to go.
 */
export class PacksGoneError extends Error {
  constructor(readonly packs: string[], detail: string) {
    super(
      `${packs.length} pack(s) this snapshot needs were ${detail} while it was being made (data/${packs[0]!.slice(0, 16)}…${packs.length > 1 ? ' and others' : ''}); ` +
        'a prune probably ran while this process was paused. No snapshot was saved; run the command again (it stores that data anew)',
    );
    this.name = 'PacksGoneError';
  }
}
