/**
 * Errors the repository layer raises that callers must tell apart. The CLI maps them to exit
 * codes (DESIGN.md §5): RepositoryNotFound → 10, LockConflict → 11, WrongPassword → 12.
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
