/**
 * `bh mount` through the kernel's FUSE, for real: a bh process serves a local repository, and
 * this process (never the serving one) reads the mount with ordinary file-system calls and child
 * processes, comparing it with the source tree on disk (tests/helpers/tree-compare.ts).
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, lchownSync, linkSync, mkdirSync, openSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { lstat, mkdir, open, readFile, readdir, readlink, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { lutimesNs, makedev, mkfifo, mknod, setXattr } from '../src/fsx/index.js';
import { loadSnapshots } from '../src/snapshot/snapshot.js';
import { TreeReader, resolvePath, splitSnapshotPath } from '../src/snapshot/walk.js';
import { type TestRepo, backupSnapshot, bh, expectOk, initRepo, makeTempDir, removeDir } from './helpers/cli.js';
import { type TestMount, isMounted, killMount, startMount } from './helpers/mount.js';
import { openLibraryRepo } from './helpers/repo-lib.js';
import { compareTrees } from './helpers/tree-compare.js';

const MiB = 1024 * 1024;
const run = promisify(execFile);
const OWNER = { uid: 1234, gid: 5678 };

let tmp: string;
let repo: TestRepo;
let src: string;
let mount: TestMount;
const extraMounts: TestMount[] = [];
let firstId: string;

/** Hard links, xattrs, odd names, a sparse file, multi-chunk files, specials, owners, ns times. */
function buildSource(root: string): void {
  mkdirSync(join(root, 'sub', 'deeper'), { recursive: true });
  writeFileSync(join(root, 'small.txt'), 'hello, mount\n');
  writeFileSync(join(root, 'empty'), '');
  writeFileSync(join(root, 'sub', 'version'), 'version 1\n');
  writeFileSync(join(root, 'big-9m.bin'), randomBytes(9 * MiB + 4321));
  writeFileSync(join(root, 'sub', 'deeper', 'random-3m.bin'), randomBytes(3 * MiB + 17));
  const fd = openSync(join(root, 'sparse'), 'w');
  ftruncateSync(fd, 24 * MiB);
  writeSync(fd, Buffer.from('in the middle of nowhere'), 0, 24, 12 * MiB + 4097);
  closeSync(fd);
  mkdirSync(join(root, 'hard', 'b'), { recursive: true });
  mkdirSync(join(root, 'hard', 'a'));
  writeFileSync(join(root, 'hard', 'a', 'h1'), 'one inode, two names\n');
  linkSync(join(root, 'hard', 'a', 'h1'), join(root, 'hard', 'b', 'h2'));
  writeFileSync(join(root, 'hard', 'solo'), 'one name\n');
  symlinkSync('../small.txt', join(root, 'sub', 'link'));
  symlinkSync(Buffer.from([0x74, 0xff, 0x2f, 0x78]), Buffer.from(join(root, 'sub', 'non-utf8-target')));
  mkdirSync(join(root, 'special'));
  mkfifo(join(root, 'special', 'fifo'), 0o640);
  mknod(join(root, 'special', 'null'), 0o020000 | 0o666, makedev(1, 3));
  mknod(join(root, 'special', 'loop7'), 0o060000 | 0o660, makedev(7, 7));
  mkdirSync(join(root, 'names'));
  for (const name of ['with space', 'new\nline', 'unicode-äöü-日本語-🎉', 'star*?[x]', ' leading', 'x'.repeat(255)]) writeFileSync(join(root, 'names', name), `named ${JSON.stringify(name)}\n`);
  writeFileSync(Buffer.from([...Buffer.from(join(root, 'names') + '/'), 0x66, 0xff, 0xfe]), 'non-UTF-8 name\n');
  // A directory big enough to need several readdir pages and binary-searched lookups.
  mkdirSync(join(root, 'many'));
  for (let i = 0; i < 1500; i++) writeFileSync(join(root, 'many', `file-${String(i).padStart(4, '0')}`), `${i}\n`);
  setXattr(join(root, 'small.txt'), 'user.binary', Buffer.from([0x00, 0xff, 0x10, 0x80, 0x00]));
  setXattr(join(root, 'small.txt'), 'user.empty', Buffer.alloc(0));
  setXattr(join(root, 'small.txt'), 'user.big', randomBytes(2000));
  setXattr(join(root, 'sub'), 'user.dir-attr', Buffer.from('on a directory'));
  setXattr(join(root, 'hard', 'a', 'h1'), 'user.shared', Buffer.from('both names see me'));
  writeFileSync(join(root, 'owned'), 'owned by someone else\n');
  lchownSync(join(root, 'owned'), OWNER.uid, OWNER.gid);
  let t = 1_700_000_000_123_456_789n;
  for (const entry of ['small.txt', 'sub/version', 'sub/link', 'sparse', 'special/fifo', 'hard/a/h1', 'owned']) lutimesNs(join(root, entry), 0n, (t += 1_000_000_007n));
  lutimesNs(join(root, 'sub'), 0n, -1_234_567_890_987_654_321n);
}

beforeAll(async () => {
  tmp = await makeTempDir('bh-mount-');
  repo = await initRepo(tmp);
  src = join(tmp, 'src');
  buildSource(src);
  firstId = await backupSnapshot(repo, src, ['--tag', 'daily', '--host', 'alpha']);
  await writeFile(join(src, 'sub', 'version'), 'version 2, longer\n');
  lutimesNs(join(src, 'sub', 'version'), 0n, 1_800_000_000_000_000_001n);
  lutimesNs(join(src, 'sub'), 0n, -1_234_567_890_987_654_321n);
  await backupSnapshot(repo, src, ['--tag', 'daily', '--host', 'beta']);
  mount = await startMount(repo, join(tmp, 'mnt'), ['--refresh-interval', '1s']);
}, 120_000);

afterAll(async () => {
  for (const m of [mount, ...extraMounts]) await killMount(m);
  if (tmp) await removeDir(tmp);
});

/** The source tree inside a snapshot's directory (which shows the backed-up paths). */
function inSnapshot(snapshotDir: string, ...rest: string[]): string {
  return join(snapshotDir, src, ...rest);
}

describe('bh mount (local repository)', () => {
  it('lays out ids/, snapshots/ (with latest), hosts/ and tags/', async () => {
    const mnt = mount.mountpoint;
    expect((await readdir(mnt)).sort()).toEqual(['hosts', 'ids', 'snapshots', 'tags']);
    const times = await readdir(join(mnt, 'snapshots'));
    expect(times).toHaveLength(3);
    expect(times).toContain('latest');
    const latestTarget = await readlink(join(mnt, 'snapshots', 'latest'));
    expect(latestTarget).toBe(times.filter((t) => t !== 'latest').sort().pop());
    expect(await readdir(join(mnt, 'ids'))).toContain(firstId.slice(0, 8));
    expect((await readdir(join(mnt, 'hosts'))).sort()).toEqual(['alpha', 'beta']);
    expect((await readdir(join(mnt, 'hosts', 'alpha'))).length).toBe(2);
    expect((await readdir(join(mnt, 'tags', 'daily'))).length).toBe(3);
    expect((await stat(join(mnt, 'snapshots', 'latest'))).isDirectory()).toBe(true);
    expect((await lstat(join(mnt, 'snapshots', 'latest'))).isSymbolicLink()).toBe(true);
  });

  it('shows the latest snapshot exactly as the source: names, types, modes, owners, ns mtimes, content, symlinks, hard links, devices, xattrs', async () => {
    expect(await compareTrees(src, inSnapshot(join(mount.mountpoint, 'snapshots', 'latest')))).toEqual([]);
    // Sparse files read as zeros where nothing was written.
    const sparse = await readFile(inSnapshot(join(mount.mountpoint, 'snapshots', 'latest'), 'sparse'));
    expect(sparse.length).toBe(24 * MiB);
    expect(sparse.subarray(0, 12 * MiB).every((b) => b === 0)).toBe(true);
    // Hard links: one inode, and the link count, as on the source.
    const [h1, h2] = await Promise.all(['a/h1', 'b/h2'].map((e) => lstat(inSnapshot(join(mount.mountpoint, 'snapshots', 'latest'), 'hard', e))));
    expect(h1!.ino).toBe(h2!.ino);
    expect(h1!.nlink).toBe(2);
  });

  it('shows an older snapshot under ids/ as it was', async () => {
    const old = inSnapshot(join(mount.mountpoint, 'ids', firstId.slice(0, 8)), 'sub', 'version');
    expect(await readFile(old, 'utf8')).toBe('version 1\n');
    expect(await readFile(inSnapshot(join(mount.mountpoint, 'snapshots', 'latest'), 'sub', 'version'), 'utf8')).toBe('version 2, longer\n');
  });

  it('reads random ranges of multi-chunk files exactly', async () => {
    for (const rel of ['big-9m.bin', 'sub/deeper/random-3m.bin', 'sparse']) {
      const expected = await readFile(join(src, rel));
      const handle = await open(inSnapshot(join(mount.mountpoint, 'snapshots', 'latest'), rel), 'r');
      try {
        for (let i = 0; i < 40; i++) {
          const offset = Math.floor(Math.random() * expected.length);
          const length = 1 + Math.floor(Math.random() * 3 * MiB);
          const buffer = Buffer.alloc(length);
          const { bytesRead } = await handle.read(buffer, 0, length, offset);
          expect(bytesRead).toBe(Math.min(length, expected.length - offset));
          expect(buffer.subarray(0, bytesRead).equals(expected.subarray(offset, offset + bytesRead))).toBe(true);
        }
      } finally {
        await handle.close();
      }
    }
  });

  it('serves 8 concurrent readers (child processes) correctly', async () => {
    const files = ['big-9m.bin', 'sub/deeper/random-3m.bin', 'sparse', 'small.txt'];
    const expected = new Map<string, string>();
    for (const rel of files) expected.set(rel, (await run('sha256sum', [join(src, rel)])).stdout.split(' ')[0]!);
    // Under ids/, files are other inodes than those read above: nothing of them is in the page cache.
    const readers = Array.from({ length: 8 }, (_, i) => files[i % files.length]!);
    const sums = await Promise.all(readers.map(async (rel) => (await run('sha256sum', [inSnapshot(join(mount.mountpoint, 'ids', firstId.slice(0, 8)), rel)])).stdout.split(' ')[0]));
    expect(sums).toEqual(readers.map((rel) => expected.get(rel)));
  });

  it('finds entries in a large directory and lists every one of them', async () => {
    const many = inSnapshot(join(mount.mountpoint, 'snapshots', 'latest'), 'many');
    expect((await readdir(many)).length).toBe(1500);
    expect(await readFile(join(many, 'file-1234'), 'utf8')).toBe('1234\n');
    await expect(stat(join(many, 'file-9999'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses every write with EROFS: write, create, mkdir, unlink, rename, setxattr, utimes', async () => {
    const dir = inSnapshot(join(mount.mountpoint, 'snapshots', 'latest'));
    const file = join(dir, 'small.txt');
    await expect(open(file, 'r+')).rejects.toMatchObject({ code: 'EROFS' });
    await expect(writeFile(join(dir, 'new-file'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    await expect(mkdir(join(dir, 'new-dir'))).rejects.toMatchObject({ code: 'EROFS' });
    await expect(unlink(file)).rejects.toMatchObject({ code: 'EROFS' });
    await expect(rename(file, join(dir, 'renamed'))).rejects.toMatchObject({ code: 'EROFS' });
    await expect(utimes(file, 1, 1)).rejects.toMatchObject({ code: 'EROFS' });
    expect(() => setXattr(file, 'user.new', Buffer.from('x'))).toThrow(expect.objectContaining({ code: 'EROFS' }));
    await expect(mkdir(join(mount.mountpoint, 'snapshots', 'mine'))).rejects.toMatchObject({ code: 'EROFS' });
    expect(await readFile(file, 'utf8')).toBe('hello, mount\n');
  });

  it('shows a snapshot taken while mounted without remounting', async () => {
    await writeFile(join(src, 'added-later'), 'new in the third snapshot\n');
    const thirdId = await backupSnapshot(repo, src, ['--host', 'alpha']);
    const deadline = Date.now() + 30_000;
    while (!(await readdir(join(mount.mountpoint, 'ids'))).includes(thirdId.slice(0, 8))) {
      if (Date.now() > deadline) throw new Error('the new snapshot did not appear');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(await readFile(inSnapshot(join(mount.mountpoint, 'ids', thirdId.slice(0, 8)), 'added-later'), 'utf8')).toBe('new in the third snapshot\n');
    expect(await readFile(inSnapshot(join(mount.mountpoint, 'hosts', 'alpha', 'latest'), 'added-later'), 'utf8')).toBe('new in the third snapshot\n');
  });

  it('--owner-root shows every entry as root’s', async () => {
    const rootMount = await startMount(repo, join(tmp, 'mnt-root'), ['--owner-root']);
    extraMounts.push(rootMount);
    const plain = await lstat(inSnapshot(join(mount.mountpoint, 'snapshots', 'latest'), 'owned'));
    expect([plain.uid, plain.gid]).toEqual([OWNER.uid, OWNER.gid]);
    const owned = await lstat(inSnapshot(join(rootMount.mountpoint, 'snapshots', 'latest'), 'owned'));
    expect([owned.uid, owned.gid]).toEqual([0, 0]);
  });

  it('refuses a mountpoint inside the repository or the cache, or one that is not empty', async () => {
    const inside = await bh(['mount', join(repo.path, 'mnt')], { env: repo.env });
    expect(inside.code).toBe(1);
    expect(inside.stderr).toMatch(/the mountpoint .*\/repo\/mnt is inside the repository/);
    const cacheDir = join(tmp, 'cache');
    const inCache = await bh(['mount', join(cacheDir, 'mnt'), '--cache-dir', cacheDir], { env: repo.env });
    expect(inCache.code).toBe(1);
    expect(inCache.stderr).toMatch(/is inside the cache/);
    const busy = join(tmp, 'busy');
    await mkdir(busy);
    await writeFile(join(busy, 'something'), 'x');
    const nonEmpty = await bh(['mount', busy], { env: repo.env });
    expect(nonEmpty.code).toBe(1);
    expect(nonEmpty.stderr).toMatch(/is not empty: .*--allow-non-empty/);
    const allowed = await startMount(repo, busy, ['--allow-non-empty']);
    extraMounts.push(allowed);
    expect((await readdir(busy)).sort()).toEqual(['hosts', 'ids', 'snapshots', 'tags']);
  });
});

describe('bh mount: damage and lifecycle', () => {
  let damaged: TestRepo;
  let damagedSrc: string;

  beforeAll(async () => {
    const dir = join(tmp, 'damaged');
    await mkdir(dir);
    damaged = await initRepo(dir);
    damagedSrc = join(dir, 'src');
    await mkdir(damagedSrc);
    await writeFile(join(damagedSrc, 'bad.bin'), randomBytes(2 * MiB));
    await writeFile(join(damagedSrc, 'good.bin'), randomBytes(2 * MiB));
    await writeFile(join(damagedSrc, 'good.txt'), 'still readable\n');
    await backupSnapshot(damaged, damagedSrc);
    // Flip one byte inside the first blob of bad.bin, in its pack file.
    const library = await openLibraryRepo(damaged);
    const snapshots = await loadSnapshots(library, () => undefined);
    const indexed = await library.loadIndex(snapshots.listing);
    const node = await resolvePath(new TreeReader(indexed), Buffer.from(snapshots[0]!.record.tree, 'hex'), [...splitSnapshotPath(damagedSrc), Buffer.from('bad.bin')]);
    const where = indexed.index.lookup('data', node!.content![0]!)!;
    const packHex = where.packId.toString('hex');
    const packPath = join(damaged.path, 'data', packHex.slice(0, 2), packHex);
    const handle = await open(packPath, 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, where.offset + 100);
    byte[0] = byte[0]! ^ 0xff;
    await handle.write(byte, 0, 1, where.offset + 100);
    await handle.close();
  });

  it('a damaged blob gives EIO for its file only; the other files still read', async () => {
    const m = await startMount(damaged, join(tmp, 'mnt-damaged'));
    extraMounts.push(m);
    const dir = join(m.mountpoint, 'snapshots', 'latest', damagedSrc);
    await expect(readFile(join(dir, 'bad.bin'))).rejects.toMatchObject({ code: 'EIO' });
    expect((await readFile(join(dir, 'good.bin'))).equals(await readFile(join(damagedSrc, 'good.bin')))).toBe(true);
    expect(await readFile(join(dir, 'good.txt'), 'utf8')).toBe('still readable\n');
    expect(m.running.stderr()).toMatch(/error: cannot read bad\.bin: .*data blob [0-9a-f]{64}/);
  });

  it('SIGTERM unmounts and exits 0', async () => {
    const m = await startMount(damaged, join(tmp, 'mnt-term'));
    expect(await isMounted(m.mountpoint)).toBe(true);
    m.running.child.kill('SIGTERM');
    const result = await m.running.done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`unmounted ${m.mountpoint}`);
    expect(await isMounted(m.mountpoint)).toBe(false);
    expect(await readdir(m.mountpoint)).toEqual([]);
  });

  it('SIGTERM while a process still sits in the mount: detached, exit 0', async () => {
    const m = await startMount(damaged, join(tmp, 'mnt-busy'));
    const sitter = spawn('sleep', ['60'], { cwd: join(m.mountpoint, 'snapshots', 'latest'), stdio: 'ignore' });
    try {
      m.running.child.kill('SIGTERM');
      const result = await m.running.done;
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toContain(`files in ${m.mountpoint} are still open; the mount is detached`);
      expect(await isMounted(m.mountpoint)).toBe(false);
    } finally {
      sitter.kill('SIGKILL');
    }
  });

  it('a killed bh leaves a stale mount that `bh mount` names and `bh mount --unmount` clears', async () => {
    const mountpoint = join(tmp, 'mnt-killed');
    const m = await startMount(damaged, mountpoint);
    extraMounts.push(m); // afterAll clears the stale mount should an assertion below fail
    m.running.child.kill('SIGKILL');
    await m.running.done;
    // (A stat of the mountpoint itself may still come from the kernel's attribute cache.)
    await expect(readdir(mountpoint)).rejects.toMatchObject({ code: 'ENOTCONN' });
    const again = await bh(['mount', mountpoint], { env: damaged.env });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`is a stale mount (the process that served it is gone): clear it with 'bh mount --unmount ${mountpoint}'`);
    expectOk(await bh(['mount', '--unmount', mountpoint]), 'bh mount --unmount');
    expect(await isMounted(mountpoint)).toBe(false);
    const remounted = await startMount(damaged, mountpoint);
    extraMounts.push(remounted);
    expect(await readFile(join(mountpoint, 'snapshots', 'latest', damagedSrc, 'good.txt'), 'utf8')).toBe('still readable\n');
  });
});
