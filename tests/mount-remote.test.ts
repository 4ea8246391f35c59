/**
 * `bh mount` of remote repositories, through the kernel's FUSE: SFTP (OpenSSH's sshd on
 * loopback, tests/helpers/sshd.ts) and S3 (s3rver, tests/helpers/s3-server.ts). The mounted
 * latest snapshot must equal the source tree on disk.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { setXattr } from '../src/fsx/index.js';
import { type TestRepo, backupSnapshot, initRepoAt, makeTempDir, removeDir } from './helpers/cli.js';
import { type TestMount, killMount, startMount } from './helpers/mount.js';
import { type S3TestServer, startS3Server } from './helpers/s3-server.js';
import { type Sshd, startSshd } from './helpers/sshd.js';
import { compareTrees } from './helpers/tree-compare.js';

const MiB = 1024 * 1024;

let tmp: string;
let src: string;
let sshd: Sshd;
let s3: S3TestServer;
const mounts: TestMount[] = [];

beforeAll(async () => {
  [sshd, s3, tmp] = await Promise.all([startSshd(), startS3Server(), makeTempDir('bh-mount-remote-')]);
  src = join(tmp, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'small.txt'), 'hello from afar\n');
  writeFileSync(join(src, 'sub', 'multi-chunk.bin'), randomBytes(9 * MiB + 99));
  symlinkSync('../small.txt', join(src, 'sub', 'link'));
  setXattr(join(src, 'small.txt'), 'user.where', Buffer.from('remote'));
});

afterAll(async () => {
  for (const mount of mounts) await killMount(mount);
  await Promise.all([sshd?.stop(), s3?.stop()]);
  if (tmp) await removeDir(tmp);
});

async function mountAndCompare(repo: TestRepo, flags: string[], name: string): Promise<void> {
  await backupSnapshot(repo, src);
  const mount = await startMount(repo, join(tmp, `mnt-${name}`), flags);
  mounts.push(mount);
  const latest = join(mount.mountpoint, 'snapshots', 'latest', src);
  expect(await compareTrees(src, latest)).toEqual([]);
  expect(await readFile(join(latest, 'small.txt'), 'utf8')).toBe('hello from afar\n');
  expect((await readdir(join(mount.mountpoint, 'ids'))).length).toBe(1);
}

describe('bh mount of remote repositories', () => {
  it('mounts an SFTP repository', async () => {
    const flags = ['--ssh-key', sshd.userKey, '--known-hosts', sshd.knownHosts];
    const repo = await initRepoAt(sshd.url(join(sshd.dir, 'mount-repo')), { BH_PASSWORD: 'sftp mount password' }, flags);
    await mountAndCompare(repo, flags, 'sftp');
  });

  it('mounts an S3 repository', async () => {
    const repo = await initRepoAt(`s3:${s3.bucket}/mount`, { ...s3.env, BH_PASSWORD: 's3 mount password' });
    await mountAndCompare(repo, [], 's3');
  });
});
