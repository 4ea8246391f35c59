/**
 * The SFTP backend against a real OpenSSH sshd on 127.0.0.1 (tests/helpers/sshd.ts): the Backend
 * contract, the layout and modes on the server's disk, location parsing, the host-key policy
 * (unknown, accept-new, changed, hashed, revoked), login failures and dropped connections.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { NotFoundError, type Backend, type FileRef } from '../src/backends/index.js';
import { fingerprint } from '../src/backends/known-hosts.js';
import { openSftpBackend, SftpConnectionError } from '../src/backends/sftp.js';
import { parseSftpLocation } from '../src/backends/sftp-location.js';
import { describeBackendContract } from './helpers/backend-contract.js';
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
  const be = await open(freshPath());
  await be.create();
  return be;
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

