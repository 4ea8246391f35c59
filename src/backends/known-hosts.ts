/**
 * Host-key policy for SFTP: the server's key is checked against an OpenSSH known_hosts file.
 *
 * The file format is OpenSSH's (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"): one key per line,
 * `[marker] patterns keytype base64 [comment]`, where patterns is a comma list of host names,
 * `[host]:port` for ports other than 22, wildcards `*` and `?`, negations `!pattern`, or one
 * hashed name `|1|base64 salt|base64 HMAC-SHA1(salt, name)`. Lines starting with `#` are comments.
 * `@revoked` keys are refused wherever they appear for the host; `@cert-authority` lines are
 * skipped (bh does not verify host certificates) and said so when no plain key matches.
 *
 * Policy, as OpenSSH's `StrictHostKeyChecking accept-new`, but opt-in:
 * - a known key for the host: accepted;
 * - no key for the host: refused, naming the key type and SHA256 fingerprint, unless `acceptNew`,
 *   which appends a line to the file (created 0600, its folder 0700) and accepts;
 * - a different key where one is known: always refused, loudly, naming both fingerprints.
 *
 * The checks are synchronous on purpose: ssh2 treats any return value of a host verifier other
 * than `false` as acceptance, so a verifier that returned a promise would accept every key.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { appendFileSync, closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** `SHA256:<base64 without padding>` of the raw public key blob, as `ssh-keygen -lf` prints it. */
export function fingerprint(rawKey: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(rawKey).digest('base64').replace(/=+$/, '');
}

/** The key type named at the start of an SSH public key blob ("ssh-ed25519", "ssh-rsa", …). */
export function keyTypeOf(rawKey: Buffer): string {
  if (rawKey.length < 4) return 'unknown';
  const len = rawKey.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len > rawKey.length) return 'unknown';
  return rawKey.toString('latin1', 4, 4 + len);
}

/** The name known_hosts stores for a host: `host` on port 22, else `[host]:port`. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

export function defaultKnownHostsFile(): string {
  return join(homedir(), '.ssh', 'known_hosts');
}

interface Entry {
  line: number;
  marker: 'revoked' | 'cert-authority' | undefined;
  keyType: string;
  key: Buffer;
}

/** A wildcard pattern (`*`, `?`) matched against a name, case-insensitively. */
function wildcardMatch(pattern: string, name: string): boolean {
  const re = new RegExp('^' + pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$', 'is');
  return re.test(name);
}

function hashedMatch(field: string, name: string): boolean {
  const parts = field.split('|');
  // "|1|salt|hash" splits into ['', '1', salt, hash].
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2]!, 'base64');
  const want = Buffer.from(parts[3]!, 'base64');
  const got = createHmac('sha1', salt).update(name).digest();
  return want.length === got.length && timingSafeEqual(want, got);
}

/** Whether a known_hosts host field names `name` (OpenSSH's match_hostname: any positive, no negated match). */
function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|')) return hashedMatch(field, name);
  let matched = false;
  for (const pattern of field.split(',')) {
    if (pattern.startsWith('!')) {
      if (wildcardMatch(pattern.slice(1), name)) return false;
    } else if (wildcardMatch(pattern, name)) {
      matched = true;
    }
  }
  return matched;
}

/** The entries of a known_hosts text that apply to `name`; malformed lines are skipped, as ssh does. */
export function entriesFor(text: string, name: string): Entry[] {
  const out: Entry[] = [];
  text.split('\n').forEach((raw, i) => {
    const fields = raw.trim().split(/\s+/);
    if (fields[0] === undefined || fields[0] === '' || fields[0].startsWith('#')) return;
    let marker: Entry['marker'];
    if (fields[0].startsWith('@')) {
      const m = fields.shift()!;
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else return;
    }
    const [hosts, keyType, base64] = fields;
    if (hosts === undefined || keyType === undefined || base64 === undefined) return;
    if (!hostFieldMatches(hosts, name)) return;
    const key = Buffer.from(base64, 'base64');
    if (key.length === 0 || keyTypeOf(key) !== keyType) return;
    out.push({ line: i + 1, marker, keyType, key });
  });
  return out;
}

export class HostKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HostKeyError';
  }
}

/** Host-key algorithms ssh2 offers, in the order OpenSSH prefers them (SHA-1 `ssh-rsa` left out, as OpenSSH 8.8+ does). */
const HOST_KEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256'] as const;
export type HostKeyAlgorithm = (typeof HOST_KEY_ALGORITHMS)[number];

function algorithmsOfKeyType(keyType: string): HostKeyAlgorithm[] {
  return keyType === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256'] : HOST_KEY_ALGORITHMS.filter((a) => a === keyType);
}

export class HostKeyPolicy {
  readonly file: string;

  constructor(
    file: string | undefined,
    private readonly acceptNew: boolean,
  ) {
    this.file = file ?? defaultKnownHostsFile();
  }

  private read(): string {
    try {
      return readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
      throw new HostKeyError(`cannot read the known_hosts file ${this.file}: ${(err as Error).message}`);
    }
  }

  /**
   * The host-key algorithms to offer, those of keys already known for the host first: a server
   * with several host keys then shows the one known_hosts holds (as OpenSSH orders them).
   */
  algorithmsFor(host: string, port: number): HostKeyAlgorithm[] {
    const known = entriesFor(this.read(), knownHostsName(host, port)).filter((e) => e.marker === undefined);
    const first = [...new Set(known.flatMap((e) => algorithmsOfKeyType(e.keyType)))];
    return [...first, ...HOST_KEY_ALGORITHMS.filter((a) => !first.includes(a))];
  }

  /** Accepts the server's key or throws a HostKeyError that says what to do; may record the key (acceptNew). */
  verify(host: string, port: number, rawKey: Buffer): void {
    const name = knownHostsName(host, port);
    const keyType = keyTypeOf(rawKey);
    const offered = `${keyType} ${fingerprint(rawKey)}`;
    const entries = entriesFor(this.read(), name);
    const revoked = entries.find((e) => e.marker === 'revoked' && e.key.equals(rawKey));
    if (revoked) {
      throw new HostKeyError(`the host key of ${name} (${offered}) is marked @revoked in ${this.file} line ${revoked.line}: refusing to connect`);
    }
    const plain = entries.filter((e) => e.marker === undefined);
    if (plain.some((e) => e.key.equals(rawKey))) return;
    if (plain.length > 0) {
      const known = plain.map((e) => `${e.keyType} ${fingerprint(e.key)} (${this.file} line ${e.line})`).join(', ');
      throw new HostKeyError(
        `WARNING: the host key of ${name} has CHANGED. known_hosts has ${known}; the server offered ${offered}. ` +
          'Someone may be intercepting the connection (man-in-the-middle), or the server was reinstalled. ' +
          `bh refuses to connect, with or without --ssh-accept-new. If the change is expected, remove the old key ` +
          `(ssh-keygen -R '${name}' -f ${this.file}) and connect again.`,
      );
    }
    if (this.acceptNew) {
      this.record(name, rawKey);
      return;
    }
    const ca = entries.some((e) => e.marker === 'cert-authority')
      ? ` (${this.file} has a @cert-authority line for it, but bh does not verify host certificates: add the host key itself)`
      : '';
    throw new HostKeyError(
      `the host key of ${name} is not known: the server offered ${offered}${ca}. ` +
        `Check that fingerprint with the server's administrator (on the server: ssh-keygen -lf /etc/ssh/ssh_host_${keyType.replace(/^ssh-|-.*$/g, '')}_key.pub), ` +
        `then pass --ssh-accept-new to record it in ${this.file}, or add it there yourself.`,
    );
  }

  /** Appends `name keytype base64` to the file, creating it (0600) and its folder (0700) if needed. */
  private record(name: string, rawKey: Buffer): void {
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    const fd = openSync(this.file, 'a+', 0o600);
    try {
      // Start on a new line if the file does not end with one.
      const size = fstatSync(fd).size;
      const last = Buffer.alloc(1);
      const needsNewline = size > 0 && readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a;
      appendFileSync(fd, `${needsNewline ? '\n' : ''}${name} ${keyTypeOf(rawKey)} ${rawKey.toString('base64')}\n`);
    } finally {
      closeSync(fd);
    }
  }
}
