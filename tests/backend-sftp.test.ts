/**
 * The SFTP backend against a real OpenSSH sshd on 127.0.0.1 (tests/helpers/sshd.ts): the Backend
 * contract, the layout and modes on the server's disk, location parsing, the host-key policy
 * (unknown, accept-new, changed, hashed, revoked), login failures and dropped connections.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { tmpdir, userInfo } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { NotFoundError, type Backend, type FileRef } from '../src/backends/index.js';
import { fingerprint } from '../src/backends/known-hosts.js';
import { openSftpBackend, SftpConnectionError } from '../src/backends/sftp.js';
import { parseSftpLocation } from '../src/backends/sftp-location.js';
import { WHOLE, describeBackendContract } from './helpers/backend-contract.js';
import { startSshd, type Sshd } from './helpers/sshd.js';

const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');
const mode = (p: string): number => statSync(p).mode & 0o777;

let sshd: Sshd;
let repos: string;
let counter = 0;
const opened: Backend[] = [];

/** A fresh folder on the server (same machine) for one repository. */
function freshPath(): string {
  return join(repos, `r${counter++}`);
}

async function open(path: string, extra: { knownHosts?: string; sshKey?: string; sshAcceptNew?: boolean; env?: Record<string, string>; connections?: number } = {}): Promise<Backend> {
  const be = await openSftpBackend(sshd.url(path), {
    env: extra.env ?? {},
    sshKey: extra.sshKey ?? sshd.userKey,
    knownHosts: extra.knownHosts ?? sshd.knownHosts,
    sshAcceptNew: extra.sshAcceptNew,
    connections: extra.connections,
  });
  opened.push(be);
  return be;
}

beforeAll(async () => {
  sshd = await startSshd();
  repos = join(sshd.dir, 'repos');
  mkdirSync(repos);
});

afterAll(async () => {
  await Promise.all(opened.map((b) => b.close()));
  await sshd?.stop();
});

describeBackendContract('sftp', async () => {
  const folder = freshPath();
  const backend = await open(folder);
  await backend.create();
  return { backend, folder };
});

describe('SFTP locations', () => {
  const me = userInfo().username;
  it.each([
    ['sftp:alice@host.example:/srv/repo', { user: 'alice', host: 'host.example', port: 22, path: '/srv/repo' }],
    ['sftp:host:/srv/repo', { user: me, host: 'host', port: 22, path: '/srv/repo' }],
    ['sftp:bob@10.0.0.1:backups/bh', { user: 'bob', host: '10.0.0.1', port: 22, path: 'backups/bh' }],
    ['sftp:bob@[::1]:/srv/r', { user: 'bob', host: '::1', port: 22, path: '/srv/r' }],
    ['sftp://alice@host:2222//srv/repo', { user: 'alice', host: 'host', port: 2222, path: '/srv/repo' }],
    ['sftp://alice@host:2222/relative/repo', { user: 'alice', host: 'host', port: 2222, path: 'relative/repo' }],
    ['sftp://host//srv/repo', { user: me, host: 'host', port: 22, path: '/srv/repo' }],
    ['sftp:Backup.Example.COM:/r', { user: me, host: 'backup.example.com', port: 22, path: '/r' }],
    ['sftp://u@[::1]:2222//srv/r%20x', { user: 'u', host: '::1', port: 2222, path: '/srv/r x' }],
  ])('%s', (location, want) => {
    expect(parseSftpLocation(location)).toEqual(want);
  });

  it.each([
    ['sftp:', /no host and path/],
    ['sftp:host', /no host and path/],
    ['sftp:host:', /no path/],
    ['sftp:u:secret@host:/x', /passwords do not belong/],
    ['sftp://u:secret@host//x', /passwords do not belong/],
    ['sftp://host', /no path/],
    ['sftp://host:99999//x', /not a valid URL|invalid port/],
    ['sftp://ho st//x', /not a valid URL|invalid host/],
    ['sftp:[nothex]:/x', /not an IPv6 address/],
  ])('refuses %s', (location, why) => {
    expect(() => parseSftpLocation(location)).toThrow(why);
    expect(() => parseSftpLocation(location)).toThrow(/expected sftp:\[user@\]host:\/path/);
  });
});

describe('SFTP layout on the server', () => {
  it('create() makes the skeleton 0700; files land 0600 at their exact paths, no temp files left', async () => {
    const root = freshPath();
    const be = await open(root);
    await be.create();
    expect(readdirSync(root).sort()).toEqual(['data', 'index', 'keys', 'locks', 'snapshots']);
    expect(readdirSync(join(root, 'data'))).toHaveLength(256);
    for (const d of [root, join(root, 'keys'), join(root, 'data', 'a7')]) expect(mode(d)).toBe(0o700);
    await be.create();

    const pack = Buffer.from(randomBytes(1_000_000));
    const r: FileRef = { type: 'data', name: sha(pack) };
    await be.write(r, [pack.subarray(0, 300_000), pack.subarray(300_000)]);
    const onDisk = join(root, 'data', r.name.slice(0, 2), r.name);
    expect(readFileSync(onDisk).equals(pack)).toBe(true);
    expect(mode(onDisk)).toBe(0o600);
    expect(readdirSync(join(root, 'data', r.name.slice(0, 2)))).toEqual([r.name]);
    await be.write({ type: 'config', name: 'config' }, Buffer.from('cfg'));
    expect(readFileSync(join(root, 'config'), 'utf8')).toBe('cfg');
    expect(mode(join(root, 'config'))).toBe(0o600);
  });

  it('list ignores temp files, junk and misplaced files; tolerates missing subfolders; recreates a missing one on write', async () => {
    const root = freshPath();
    const be = await open(root);
    await be.create();
    const good: FileRef = { type: 'data', name: sha('good') };
    await be.write(good, Buffer.from('good'));
    const sub = join(root, 'data', good.name.slice(0, 2));
    writeFileSync(join(sub, '.tmp-0123456789abcdef01234567'), 'partial');
    writeFileSync(join(sub, 'README'), 'junk');
    mkdirSync(join(sub, sha('a folder')));
    const misplaced = sha('misplaced');
    writeFileSync(join(root, 'data', misplaced.startsWith('00') ? '01' : '00', misplaced), 'junk');
    const lost: FileRef = { type: 'data', name: sha('lost folder') };
    const lostSub = join(root, 'data', lost.name.slice(0, 2));
    expect(lostSub).not.toBe(sub);
    rmdirSync(lostSub);
    expect(await be.list('data')).toEqual([{ name: good.name, size: 4 }]);
    await be.write(lost, Buffer.from('abc'));
    expect(mode(lostSub)).toBe(0o700);
    expect((await be.list('data')).map((f) => f.name).sort()).toEqual([good.name, lost.name].sort());
  });

  it('a write whose rename fails surfaces a permanent error naming the file and leaves no temp file', async () => {
    const root = freshPath();
    const be = await open(root);
    await be.create();
    // A non-empty folder squatting on the final name makes the rename fail after the data is written.
    const r: FileRef = { type: 'keys', name: sha('squatted') };
    mkdirSync(join(root, 'keys', r.name));
    writeFileSync(join(root, 'keys', r.name, 'x'), 'x');
    const err = await be.write(r, Buffer.from('key material')).catch((e: Error) => e);
    expect((err as Error).message).toMatch(new RegExp(`^sftp .*: writing keys/${r.name} failed: .*\\(SFTP status \\d+\\)$`));
    expect((err as { transient?: boolean }).transient).toBeUndefined();
    expect(readdirSync(join(root, 'keys'))).toEqual([r.name]);
    expect(await be.list('keys')).toEqual([]);
  });

  it('a relative path is relative to the login folder', async () => {
    const name = `bh-sftp-relative-${randomBytes(6).toString('hex')}`;
    const home = userInfo().homedir;
    const be = await openSftpBackend(`sftp://root@127.0.0.1:${sshd.port}/${name}`, { env: {}, sshKey: sshd.userKey, knownHosts: sshd.knownHosts });
    opened.push(be);
    try {
      await be.create();
      expect(statSync(join(home, name, 'data', 'ff')).isDirectory()).toBe(true);
    } finally {
      await rm(join(home, name), { recursive: true, force: true });
    }
  });
});


describe('SFTP host keys', () => {
  const keygenFingerprint = (sshd: Sshd): string => {
    // What `ssh-keygen -lf` prints for the known_hosts line: "256 SHA256:… [127.0.0.1]:PORT (ED25519)".
    const line = join(sshd.dir, 'fp-line');
    writeFileSync(line, sshd.knownHostsLine() + '\n');
    return execFileSync('ssh-keygen', ['-lf', line], { encoding: 'utf8' }).split(' ')[1]!;
  };

  it('an unknown key is refused, naming its type and SHA256 fingerprint (as ssh-keygen -lf prints it) and what to do', async () => {
    const file = join(sshd.dir, 'nowhere', 'known_hosts');
    const fp = keygenFingerprint(sshd);
    expect(fingerprint(sshd.hostKeyBlob())).toBe(fp);
    const err = await open(freshPath(), { knownHosts: file }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(`[127.0.0.1]:${sshd.port} is not known`);
    expect((err as Error).message).toContain(`ssh-ed25519 ${fp}`);
    expect((err as Error).message).toContain('--ssh-accept-new');
    expect((err as { transient?: boolean }).transient).toBeUndefined();
    expect(existsSync(file)).toBe(false);
  });

  it('--ssh-accept-new records an unknown key once (file 0600, folder 0700), then it is known', async () => {
    const folder = join(sshd.dir, `ssh-${counter++}`);
    const file = join(folder, 'known_hosts');
    const be = await open(freshPath(), { knownHosts: file, sshAcceptNew: true, connections: 4 });
    await be.create();
    // Several connections open for these; each verifies the key, none records it again.
    await Promise.all(Array.from({ length: 12 }, (_, i) => be.write({ type: 'index', name: sha(`n${i}`) }, Buffer.from(`n${i}`))));
    expect(readFileSync(file, 'utf8')).toBe(sshd.knownHostsLine() + '\n');
    // OpenSSH's own tools find it there.
    expect(execFileSync('ssh-keygen', ['-F', `[127.0.0.1]:${sshd.port}`, '-f', file], { encoding: 'utf8' })).toContain(sshd.knownHostsLine());
    expect(mode(file)).toBe(0o600);
    expect(mode(folder)).toBe(0o700);
    const again = await open(freshPath(), { knownHosts: file });
    expect(await again.list('snapshots')).toEqual([]);
  });

  it('accept-new appends to an existing file that lacks a final newline, keeping its lines', async () => {
    const file = join(sshd.dir, `kh-${counter++}`);
    writeFileSync(file, '# my hosts\nother.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFake');
    await open(freshPath(), { knownHosts: file, sshAcceptNew: true });
    const lines = readFileSync(file, 'utf8').split('\n');
    expect(lines[0]).toBe('# my hosts');
    expect(lines[1]).toMatch(/^other\.example /);
    expect(lines[2]).toBe(sshd.knownHostsLine());
  });

  it('accepts hashed names (ssh-keygen -H), comma lists, wildcards; honours negation', async () => {
    const hashed = join(sshd.dir, `kh-${counter++}`);
    writeFileSync(hashed, sshd.knownHostsLine() + '\n');
    execFileSync('ssh-keygen', ['-q', '-H', '-f', hashed], { stdio: 'ignore' });
    expect(readFileSync(hashed, 'utf8')).toMatch(/^\|1\|[^|]+\|[^ ]+ ssh-ed25519 /);
    await open(freshPath(), { knownHosts: hashed });

    const [, type, key] = sshd.knownHostsLine().split(' ');
    const variants = [`elsewhere,[127.0.0.1]:${sshd.port} ${type} ${key} a comment`, `[127.0.0.?]:${sshd.port} ${type} ${key}`, `[127.*]:* ${type} ${key}`];
    for (const line of variants) {
      const file = join(sshd.dir, `kh-${counter++}`);
      writeFileSync(file, `# comment\n\n${line}\n`);
      await open(freshPath(), { knownHosts: file });
    }
    // The right key but for the plain name (port 22) only: unknown on this port.
    const wrongPort = join(sshd.dir, `kh-${counter++}`);
    writeFileSync(wrongPort, `127.0.0.1 ${type} ${key}\n`);
    await expect(open(freshPath(), { knownHosts: wrongPort })).rejects.toThrow(/is not known/);
    const negated = join(sshd.dir, `kh-${counter++}`);
    writeFileSync(negated, `[127.*]:*,![127.0.0.1]:${sshd.port} ${type} ${key}\n`);
    await expect(open(freshPath(), { knownHosts: negated })).rejects.toThrow(/is not known/);
    // A hand-made hash with another salt of the same name works too.
    const salt = randomBytes(20);
    const hmac = createHmac('sha1', salt).update(`[127.0.0.1]:${sshd.port}`).digest('base64');
    const handHashed = join(sshd.dir, `kh-${counter++}`);
    writeFileSync(handHashed, `|1|${salt.toString('base64')}|${hmac} ${type} ${key}\n`);
    await open(freshPath(), { knownHosts: handHashed });
  });

  it('@revoked refuses the key even when a plain line trusts it; @cert-authority alone is explained', async () => {
    const [, type, key] = sshd.knownHostsLine().split(' ');
    const revoked = join(sshd.dir, `kh-${counter++}`);
    writeFileSync(revoked, `${sshd.knownHostsLine()}\n@revoked * ${type} ${key}\n`);
    await expect(open(freshPath(), { knownHosts: revoked, sshAcceptNew: true })).rejects.toThrow(/@revoked/);
    const ca = join(sshd.dir, `kh-${counter++}`);
    writeFileSync(ca, `@cert-authority [127.0.0.1]:${sshd.port} ${type} ${key}\n`);
    await expect(open(freshPath(), { knownHosts: ca })).rejects.toThrow(/does not verify host certificates/);
  });

  it('a changed key is refused loudly, with or without --ssh-accept-new, naming old and new fingerprints', async () => {
    const other = await startSshd();
    try {
      const file = join(other.dir, 'tofu_known_hosts');
      const first = await openSftpBackend(other.url(join(other.dir, 'r')), { env: {}, sshKey: other.userKey, knownHosts: file, sshAcceptNew: true });
      await first.create();
      await first.close();
      const oldFp = fingerprint(other.hostKeyBlob());
      const before = readFileSync(file, 'utf8');
      await other.newHostKey();
      const newFp = fingerprint(other.hostKeyBlob());
      expect(newFp).not.toBe(oldFp);
      for (const sshAcceptNew of [false, true]) {
        const err = await openSftpBackend(other.url(join(other.dir, 'r')), { env: {}, sshKey: other.userKey, knownHosts: file, sshAcceptNew }).catch((e: Error) => e);
        expect(err).toBeInstanceOf(Error);
        const message = (err as Error).message;
        expect(message).toContain('has CHANGED');
        expect(message).toContain(oldFp);
        expect(message).toContain(newFp);
        expect(message).toContain('man-in-the-middle');
      }
      expect(readFileSync(file, 'utf8')).toBe(before);
    } finally {
      await other.stop();
    }
  });
});

describe('SFTP login', () => {
  it('a key the server does not know: a clear error naming user@host and the methods tried', async () => {
    const stranger = join(sshd.dir, `stranger-${counter++}`);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
    const err = await open(freshPath(), { sshKey: stranger, env: { BH_SSH_PASSWORD: 'not-this-one' } }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const message = (err as Error).message;
    expect(message).toContain(`root@127.0.0.1:${sshd.port} refused the login as root`);
    expect(message).toContain(`key ${stranger}`);
    expect(message).toContain('password (BH_SSH_PASSWORD) (not offered by the server)');
    expect(message).not.toContain('not-this-one');
    expect((err as { transient?: boolean }).transient).toBeUndefined();
  });

  it('an encrypted key needs BH_SSH_KEY_PASSPHRASE; with it, the login works', async () => {
    const locked = join(sshd.dir, `locked-${counter++}`);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'open sesame', '-f', locked]);
    writeFileSync(join(sshd.dir, 'authorized_keys'), readFileSync(`${locked}.pub`), { flag: 'a' });
    await expect(open(freshPath(), { sshKey: locked })).rejects.toThrow(/encrypted: set BH_SSH_KEY_PASSPHRASE/);
    await expect(open(freshPath(), { sshKey: locked, env: { BH_SSH_KEY_PASSPHRASE: 'wrong' } })).rejects.toThrow(/does not decrypt it/);
    const be = await open(freshPath(), { sshKey: locked, env: { BH_SSH_KEY_PASSPHRASE: 'open sesame' } });
    expect(await be.list('keys')).toEqual([]);
  });

  it('nothing to log in with: says so', async () => {
    const err = await openSftpBackend(sshd.url(freshPath()), { env: {}, knownHosts: sshd.knownHosts }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/refused the login as root; tried: nothing|tried: .*id_/);
  });

  it('a server that is not there: a transient connection error naming sftp and the server', async () => {
    const err = await openSftpBackend('sftp://root@127.0.0.1:1//x', { env: {}, sshKey: sshd.userKey, knownHosts: sshd.knownHosts }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(SftpConnectionError);
    expect((err as Error).message).toMatch(/sftp: cannot connect to root@127\.0\.0\.1:1: .*ECONNREFUSED/);
    expect((err as SftpConnectionError).transient).toBe(true);
  });
});

describe('SFTP dropped connections and process exit', () => {
  it('sshd killed: the operation fails as transient, naming sftp and the operation; the next call reconnects', async () => {
    const root = freshPath();
    const be = await open(root, { connections: 2 });
    await be.create();
    const r: FileRef = { type: 'data', name: sha('survivor') };
    await be.write(r, Buffer.from('survivor'));
    sshd.kill();
    const err = await be.read(r, WHOLE).catch((e: Error) => e);
    expect(err).toBeInstanceOf(SftpConnectionError);
    expect((err as SftpConnectionError).transient).toBe(true);
    expect((err as Error).message).toContain(`sftp ${sshd.url(root)}: reading data/${r.name} failed: connection to root@127.0.0.1:${sshd.port} lost`);
    // While the server is down, a new connection cannot be made: transient too.
    const down = await be.stat(r).catch((e: Error) => e);
    expect((down as SftpConnectionError).transient).toBe(true);
    await sshd.start();
    expect(await be.read(r, WHOLE)).toEqual(Buffer.from('survivor'));
    await expect(be.stat({ type: 'data', name: sha('never written') })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('sshd killed during an upload: the write fails as transient; its temp file is removed once reconnected', async () => {
    const root = freshPath();
    const be = await open(root, { connections: 1 });
    await be.create();
    const big = randomBytes(48 * 1024 * 1024);
    const r: FileRef = { type: 'data', name: sha(big) };
    const sub = join(root, 'data', r.name.slice(0, 2));
    const writing = be.write(r, big).then(
      () => undefined,
      (e: Error) => e,
    );
    const temps = (): string[] => readdirSync(sub).filter((n) => n.startsWith('.tmp-'));
    const tempHasData = (): boolean => temps().some((n) => statSync(join(sub, n)).size > 0);
    for (let i = 0; i < 5000 && !tempHasData(); i++) await new Promise((resolve) => setTimeout(resolve, 1));
    expect(tempHasData(), 'the upload started').toBe(true);
    sshd.kill();
    const err = await writing;
    expect(err).toBeInstanceOf(SftpConnectionError);
    expect((err as Error).message).toContain(`writing data/${r.name} failed: connection to root@127.0.0.1:${sshd.port} lost`);
    expect(temps()).toHaveLength(1);
    expect(existsSync(join(sub, r.name))).toBe(false);
    await sshd.start();
    await be.write({ type: 'locks', name: sha('after') }, Buffer.from('after'));
    expect(temps()).toEqual([]);
    await expect(be.stat(r)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('a server that stops answering: after BH_SFTP_TIMEOUT the operation fails as transient; then it works again', async () => {
    const be = await open(freshPath(), { env: { BH_SFTP_TIMEOUT: '1.5' } });
    await be.create();
    const r: FileRef = { type: 'index', name: sha('frozen') };
    await be.write(r, Buffer.from('frozen'));
    sshd.freeze(true);
    try {
      const err = await be.read(r, WHOLE).catch((e: Error) => e);
      expect(err).toBeInstanceOf(SftpConnectionError);
      expect((err as Error).message).toContain('no answer from the server for 1.5 s');
    } finally {
      sshd.freeze(false);
    }
    expect(await be.read(r, WHOLE)).toEqual(Buffer.from('frozen'));
  });

  it('a process exits after its work, with or without close()', async () => {
    const script = (close: boolean): string => `
      import { openSftpBackend } from ${JSON.stringify(new URL('../dist/backends/sftp.js', import.meta.url).href)};
      const be = await openSftpBackend(${JSON.stringify(sshd.url(freshPath()))}, { env: {}, sshKey: ${JSON.stringify(sshd.userKey)}, knownHosts: ${JSON.stringify(sshd.knownHosts)} });
      await be.create();
      await be.write({ type: 'keys', name: '${sha('k')}' }, Buffer.from('k'));
      ${close ? 'await be.close();' : ''}
      console.log('done');
    `;
    for (const close of [true, false]) {
      const started = Date.now();
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', script(close)], { encoding: 'utf8', timeout: 20_000 });
      expect(out.trim()).toBe('done');
      expect(Date.now() - started).toBeLessThan(20_000);
    }
  });
});

describe('SFTP login through ssh-agent', () => {
  let agent: ReturnType<typeof spawn> | undefined;
  let socket: string;

  beforeAll(async () => {
    socket = join(sshd.dir, `agent-${counter++}.sock`);
    agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 10));
    execFileSync('ssh-add', ['-q', sshd.userKey], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'ignore' });
  });
  afterAll(() => {
    agent?.kill();
  });

  it('logs in with the agent key (no --ssh-key); an unreachable agent is reported among the methods tried', async () => {
    const be = await openSftpBackend(sshd.url(freshPath()), { env: { SSH_AUTH_SOCK: socket }, knownHosts: sshd.knownHosts });
    opened.push(be);
    expect(await be.list('keys')).toEqual([]);
    const stranger = join(sshd.dir, `stranger-${counter++}`);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
    const staleSocket = join(sshd.dir, 'no-such-agent.sock');
    const err = await openSftpBackend(sshd.url(freshPath()), { env: { SSH_AUTH_SOCK: staleSocket }, sshKey: stranger, knownHosts: sshd.knownHosts }).catch((e: Error) => e);
    expect((err as Error).message).toContain('refused the login as root');
    expect((err as Error).message).toContain(`key ${stranger}, ssh-agent (${staleSocket}) (`);
  });
});

describe('SFTP password login', () => {
  // Root has no password here, so a throwaway local user (removed afterwards) logs in with one.
  const user = `bhpw${randomBytes(4).toString('hex')}`;
  const password = `pw ${randomBytes(9).toString('base64')}`;
  let pwSshd: Sshd;
  let home: string;

  beforeAll(async () => {
    pwSshd = await startSshd({ passwordLogin: true });
    // The user's own folder, under a temp folder it may traverse (sshd's is root's, 0700).
    home = join(await mkdtemp(join(tmpdir(), 'bh-sftp-home-')), 'home');
    chmodSync(dirname(home), 0o755);
    mkdirSync(home);
    execFileSync('useradd', ['--no-create-home', '--home-dir', home, '--shell', '/bin/sh', user]);
    execFileSync('chpasswd', { input: `${user}:${password}\n` });
    execFileSync('chown', [user, home]);
  });
  afterAll(async () => {
    try {
      execFileSync('userdel', [user]);
    } finally {
      await pwSshd?.stop();
      if (home) await rm(dirname(home), { recursive: true, force: true });
    }
  });

  it('BH_SSH_PASSWORD logs in; a wrong one is refused without showing it', async () => {
    const location = `sftp://${user}@127.0.0.1:${pwSshd.port}/${home}/repo`;
    const be = await openSftpBackend(location, { env: { BH_SSH_PASSWORD: password }, knownHosts: pwSshd.knownHosts });
    try {
      await be.create();
      await be.write({ type: 'keys', name: sha('pw') }, Buffer.from('pw'));
    } finally {
      // userdel refuses a user with a live session.
      await be.close();
    }
    expect(statSync(join(home, 'repo', 'keys', sha('pw'))).size).toBe(2);
    const err = await openSftpBackend(location, { env: { BH_SSH_PASSWORD: 'wrong horse' }, knownHosts: pwSshd.knownHosts }).catch((e: Error) => e);
    expect((err as Error).message).toContain(`${user}@127.0.0.1:${pwSshd.port} refused the login as ${user}; tried: password (BH_SSH_PASSWORD)`);
    expect((err as Error).message).not.toContain('wrong horse');
    // keyboard-interactive is off on this server, which says so after the first refusal: not tried.
    expect((err as Error).message).toContain('keyboard-interactive (BH_SSH_PASSWORD) (not offered by the server)');
  });
});
