import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  getXattr,
  listXattrs,
  lutimesNs,
  makedev,
  mkfifo,
  mknod,
  removeXattr,
  scanDir,
  setXattr,
  splitNs,
  type FsxError,
} from '../src/fsx/index.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

let dir: string;

/** Make a fresh temp dir on a filesystem that supports user.* xattrs. tmpfs
 * without CONFIG_TMPFS_XATTR user support refuses them, so fall back to
 * /var/tmp (normally disk-backed) before giving up. */
function makeXattrCapableDir(): string {
  const candidates = [os.tmpdir(), '/var/tmp'];
  for (const base of candidates) {
    const d = fs.mkdtempSync(path.join(base, 'bh-fsx-'));
    const probe = path.join(d, 'probe');
    fs.writeFileSync(probe, '');
    try {
      setXattr(probe, 'user.bh-probe', Buffer.from('1'));
      fs.rmSync(probe);
      return d;
    } catch (err) {
      fs.rmSync(d, { recursive: true, force: true });
      if ((err as FsxError).code !== 'ENOTSUP') throw err;
    }
  }
  throw new Error(`no candidate temp dir supports user xattrs: ${candidates.join(', ')}`);
}

/** Run fn, expect it to throw, and return the error for inspection. */
function thrown(fn: () => unknown): FsxError {
  try {
    fn();
  } catch (err) {
    return err as FsxError;
  }
  throw new Error('expected function to throw');
}

function times(p: fs.PathLike): { atimeNs: bigint; mtimeNs: bigint } {
  const st = fs.lstatSync(p, { bigint: true });
  return { atimeNs: st.atimeNs, mtimeNs: st.mtimeNs };
}

/** Path whose final component is the non-UTF-8 bytes 0x66 0xff 0xfe. */
function rawPath(suffix: string): Buffer {
  return Buffer.concat([Buffer.from(dir + path.sep), Buffer.from([0x66, 0xff, 0xfe]), Buffer.from(suffix)]);
}

beforeAll(() => {
  dir = makeXattrCapableDir();
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('splitNs', () => {
  it('floors seconds and keeps nsec in 0..999999999, including before 1970', () => {
    expect(splitNs(0n)).toEqual([0, 0]);
    expect(splitNs(1n)).toEqual([0, 1]);
    expect(splitNs(999_999_999n)).toEqual([0, 999_999_999]);
    expect(splitNs(1_000_000_000n)).toEqual([1, 0]);
    expect(splitNs(-1n)).toEqual([-1, 999_999_999]);
    expect(splitNs(-1_000_000_000n)).toEqual([-1, 0]);
    expect(splitNs(-1_000_000_001n)).toEqual([-2, 999_999_999]);
    expect(splitNs(1_700_000_000_123_456_789n)).toEqual([1_700_000_000, 123_456_789]);
  });

  it('refuses seconds a JS number cannot hold exactly', () => {
    expect(() => splitNs(BigInt(Number.MAX_SAFE_INTEGER + 1) * 1_000_000_000n)).toThrow(RangeError);
  });
});

describe('lutimesNs', () => {
  // Values fs.utimes cannot represent: a double of seconds near 1.7e9 has
  // ~238 ns granularity.
  const cases: Array<[string, bigint, bigint]> = [
    ['modern, odd nanoseconds', 1_700_000_000_123_456_789n, 1_700_000_001_987_654_321n],
    ['nsec = 999999999', 1_600_000_000_999_999_999n, 1_234_567_890_999_999_999n],
    ['before 1970', -1n, -86_400_000_000_001n],
    ['1901-ish', -2_000_000_000_000_000_001n, -1_999_999_999_500_000_000n],
  ];

  it.each(cases)('sets exact times on a regular file (%s)', (_name, atimeNs, mtimeNs) => {
    const f = path.join(dir, `times-file-${atimeNs}`);
    fs.writeFileSync(f, 'x');
    lutimesNs(f, atimeNs, mtimeNs);
    expect(times(f)).toEqual({ atimeNs, mtimeNs });
  });

  it('sets a symlink’s own times and leaves its target alone', () => {
    const target = path.join(dir, 'times-target');
    const link = path.join(dir, 'times-link');
    fs.writeFileSync(target, 'x');
    fs.symlinkSync(target, link);
    const targetTimes = { atimeNs: 1_111_111_111_111_111_111n, mtimeNs: 1_222_222_222_222_222_222n };
    lutimesNs(target, targetTimes.atimeNs, targetTimes.mtimeNs);

    const linkTimes = { atimeNs: -123_456_789n, mtimeNs: 1_700_000_000_999_999_999n };
    lutimesNs(link, linkTimes.atimeNs, linkTimes.mtimeNs);

    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(times(link)).toEqual(linkTimes);
    expect(times(target)).toEqual(targetTimes);
  });

  it('works on a dangling symlink (no target to follow)', () => {
    const link = path.join(dir, 'times-dangling');
    fs.symlinkSync(path.join(dir, 'does-not-exist'), link);
    lutimesNs(link, 5n, 1_000_000_007n);
    expect(times(link)).toEqual({ atimeNs: 5n, mtimeNs: 1_000_000_007n });
  });

  it('throws a Node-style error for a missing path', () => {
    const missing = path.join(dir, 'no-such-file');
    const err = thrown(() => lutimesNs(missing, 0n, 0n));
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('ENOENT');
    expect(err.errno).toBe(-2);
    expect(err.syscall).toBe('utimensat');
    expect(err.path).toBe(missing);
    expect(err.message).toBe(`ENOENT: no such file or directory, utimensat '${missing}'`);
  });
});

describe('xattrs', () => {
  it('round-trips binary and empty values, lists and removes them', () => {
    const f = path.join(dir, 'xattr-file');
    fs.writeFileSync(f, '');
    const bin = Buffer.from([0, 1, 0, 0xff, 0x80, 0]);
    const big = Buffer.alloc(3000, 0xab); // exercises the size-probe path with a bigger buffer

    setXattr(f, 'user.bin', bin);
    setXattr(f, 'user.empty', Buffer.alloc(0));
    setXattr(f, 'user.big', big);

    const userNames = (p: string | Buffer): string[] => listXattrs(p).filter((n) => n.startsWith('user.')).sort();
    expect(userNames(f)).toEqual(['user.big', 'user.bin', 'user.empty']);

    const got = getXattr(f, 'user.bin');
    expect(Buffer.isBuffer(got)).toBe(true);
    expect(got.equals(bin)).toBe(true);
    expect(getXattr(f, 'user.empty').length).toBe(0);
    expect(getXattr(f, 'user.big').equals(big)).toBe(true);

    // flags 0 means "create or replace".
    setXattr(f, 'user.bin', Buffer.from('replaced'));
    expect(getXattr(f, 'user.bin').toString()).toBe('replaced');

    removeXattr(f, 'user.bin');
    removeXattr(f, 'user.big');
    expect(userNames(f)).toEqual(['user.empty']);
    removeXattr(f, 'user.empty');
    expect(userNames(f)).toEqual([]);
  });

  it('getXattr/removeXattr of a missing name throw ENODATA', () => {
    const f = path.join(dir, 'xattr-missing');
    fs.writeFileSync(f, '');
    for (const [fn, syscall] of [
      [() => getXattr(f, 'user.nope'), 'lgetxattr'],
      [() => removeXattr(f, 'user.nope'), 'lremovexattr'],
    ] as const) {
      const err = thrown(fn);
      expect(err.code).toBe('ENODATA');
      expect(err.errno).toBe(-61); // ENODATA on Linux
      expect(err.syscall).toBe(syscall);
      expect(err.path).toBe(f);
      expect(err.message).toBe(`ENODATA: no data available, ${syscall} '${f}'`);
    }
  });

  it('operates on the symlink itself, never its target', () => {
    const target = path.join(dir, 'xattr-target');
    const link = path.join(dir, 'xattr-link');
    fs.writeFileSync(target, '');
    fs.symlinkSync(target, link);
    setXattr(target, 'user.t', Buffer.from('target'));

    // The link has no user.t; following it would have found the target's.
    expect(listXattrs(link)).not.toContain('user.t');
    expect(thrown(() => getXattr(link, 'user.t')).code).toBe('ENODATA');
    // Linux forbids user.* xattrs on symlinks; a following call would have
    // silently written to the target instead.
    const err = thrown(() => setXattr(link, 'user.t', Buffer.from('x')));
    expect(['EPERM', 'ENOTSUP']).toContain(err.code);
    expect(err.syscall).toBe('lsetxattr');
    expect(getXattr(target, 'user.t').toString()).toBe('target');
  });

  it('reports ENOENT for a missing file and ENOTSUP for an unknown namespace', () => {
    const missing = path.join(dir, 'xattr-no-such-file');
    const e1 = thrown(() => listXattrs(missing));
    expect(e1.code).toBe('ENOENT');
    expect(e1.syscall).toBe('llistxattr');
    expect(e1.path).toBe(missing);

    const f = path.join(dir, 'xattr-ns');
    fs.writeFileSync(f, '');
    const e2 = thrown(() => setXattr(f, 'bogusnamespace.x', Buffer.from('v')));
    expect(e2.code).toBe('ENOTSUP');
    expect(e2.errno).toBe(-95);
  });
});

describe('mkfifo', () => {
  it('creates a FIFO with the requested mode under the umask', () => {
    const old = process.umask(0o027);
    try {
      const p1 = path.join(dir, 'fifo1');
      mkfifo(p1, 0o666);
      const st1 = fs.lstatSync(p1);
      expect(st1.isFIFO()).toBe(true);
      expect(st1.mode & 0o7777).toBe(0o640);

      // A full lstat().mode (with S_IFIFO) is accepted as-is.
      const p2 = path.join(dir, 'fifo2');
      mkfifo(p2, fs.constants.S_IFIFO | 0o600);
      const st2 = fs.lstatSync(p2);
      expect(st2.isFIFO()).toBe(true);
      expect(st2.mode & 0o7777).toBe(0o600);
    } finally {
      process.umask(old);
    }
  });

  it('throws EEXIST with code/syscall/path, and rejects non-FIFO type bits', () => {
    const p = path.join(dir, 'fifo-exists');
    fs.writeFileSync(p, '');
    const err = thrown(() => mkfifo(p, 0o644));
    expect(err.code).toBe('EEXIST');
    expect(err.errno).toBe(-17);
    expect(err.syscall).toBe('mkfifo');
    expect(err.path).toBe(p);
    // Description is glibc's strerror() (first letter lower-cased), which for
    // EEXIST is worded slightly differently from libuv's "file already exists".
    expect(err.message).toBe(`EEXIST: file exists, mkfifo '${p}'`);

    expect(() => mkfifo(path.join(dir, 'fifo-bad'), fs.constants.S_IFREG | 0o644)).toThrow(RangeError);
  });
});

describe('mknod', () => {
  it('makedev matches glibc encoding (as seen in /dev/null rdev)', () => {
    expect(makedev(1, 3)).toBe(BigInt(fs.statSync('/dev/null').rdev));
    expect(makedev(0, 0)).toBe(0n);
    // Large major/minor use the split high-bit layout; expected values come
    // from glibc's makedev() in C.
    expect(makedev(0x12345, 0xabcdef)).toBe(0x1200abcd345efn);
    expect(makedev(0xfffff123, 0xfedcba98)).toBe(0xffffffedcba12398n);
  });

  it('creates a FIFO via mknod without privileges', () => {
    const p = path.join(dir, 'mknod-fifo');
    mknod(p, fs.constants.S_IFIFO | 0o600, 0);
    expect(fs.lstatSync(p).isFIFO()).toBe(true);
  });

  it.skipIf(!isRoot)('creates a character device identical to /dev/null (root)', () => {
    const devnull = fs.statSync('/dev/null');
    const p1 = path.join(dir, 'null-number');
    mknod(p1, fs.constants.S_IFCHR | 0o666, devnull.rdev);
    const st1 = fs.lstatSync(p1);
    expect(st1.isCharacterDevice()).toBe(true);
    expect(st1.rdev).toBe(devnull.rdev);

    // bigint rdev from a bigint lstat, and makedev() output, work too.
    const p2 = path.join(dir, 'null-bigint');
    mknod(p2, fs.constants.S_IFCHR | 0o600, fs.statSync('/dev/null', { bigint: true }).rdev);
    expect(fs.lstatSync(p2, { bigint: true }).rdev).toBe(fs.statSync('/dev/null', { bigint: true }).rdev);

    const p3 = path.join(dir, 'null-makedev');
    mknod(p3, fs.constants.S_IFCHR | 0o600, makedev(1, 3));
    expect(fs.lstatSync(p3).rdev).toBe(devnull.rdev);
  });

  it('throws EEXIST with code/syscall/path', () => {
    const p = path.join(dir, 'mknod-exists');
    fs.writeFileSync(p, '');
    const err = thrown(() => mknod(p, fs.constants.S_IFIFO | 0o600, 0));
    expect(err.code).toBe('EEXIST');
    expect(err.syscall).toBe('mknod');
    expect(err.path).toBe(p);
  });
});

describe('non-UTF-8 Buffer paths', () => {
  it('are passed byte-exact to every function', () => {
    const f = rawPath('-file');
    fs.writeFileSync(f, 'x');

    lutimesNs(f, 1_500_000_000_000_000_001n, -999_999_999n);
    expect(times(f)).toEqual({ atimeNs: 1_500_000_000_000_000_001n, mtimeNs: -999_999_999n });

    setXattr(f, 'user.raw', Buffer.from([0, 0xff, 0]));
    expect(listXattrs(f)).toContain('user.raw');
    expect(getXattr(f, 'user.raw').equals(Buffer.from([0, 0xff, 0]))).toBe(true);
    removeXattr(f, 'user.raw');
    expect(listXattrs(f)).not.toContain('user.raw');

    const fifo = rawPath('-fifo');
    mkfifo(fifo, 0o600);
    expect(fs.lstatSync(fifo).isFIFO()).toBe(true);

    const node = rawPath('-node');
    mknod(node, fs.constants.S_IFIFO | 0o600, 0);
    expect(fs.lstatSync(node).isFIFO()).toBe(true);

    // The names on disk are exactly the raw bytes (no U+FFFD substitution).
    const onDisk = fs.readdirSync(dir, { encoding: 'buffer' }).map((b) => b.toString('hex'));
    for (const p of [f, fifo, node]) {
      expect(onDisk).toContain(Buffer.from(path.basename(p.toString('latin1')), 'latin1').toString('hex'));
    }
    // And the lossily-decoded string name does NOT exist.
    expect(fs.existsSync(f.toString('utf8'))).toBe(false);
  });

  it('errors report the path as a lossily decoded string', () => {
    const missing = rawPath('-missing');
    const err = thrown(() => getXattr(missing, 'user.x'));
    expect(err.code).toBe('ENOENT');
    expect(err.syscall).toBe('lgetxattr');
    expect(typeof err.path).toBe('string');
    expect(err.path).toBe(missing.toString('utf8'));
    expect(err.path).toContain('\ufffd');
  });
});

describe('argument validation', () => {
  it('rejects paths and names containing NUL bytes', () => {
    const f = path.join(dir, 'nul');
    fs.writeFileSync(f, '');
    for (const fn of [
      () => lutimesNs(`${f}\0x`, 0n, 0n),
      () => listXattrs(Buffer.from(`${f}\0x`)),
      () => getXattr(f, 'user.a\0b'),
      () => mkfifo(`${f}\0x`, 0o600),
    ]) {
      const err = thrown(fn);
      expect(err).toBeInstanceOf(TypeError);
      expect(err.code).toBe('ERR_INVALID_ARG_VALUE');
    }
  });

  it('rejects wrong types and non-integer numbers', () => {
    const f = path.join(dir, 'types');
    fs.writeFileSync(f, '');
    expect(thrown(() => listXattrs(42 as unknown as string)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(thrown(() => setXattr(f, 'user.a', 'str' as unknown as Buffer)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(thrown(() => mknod(path.join(dir, 'x'), fs.constants.S_IFIFO, 1.5)).code).toBe('ERR_OUT_OF_RANGE');
    expect(thrown(() => lutimesNs(f, 1 as unknown as bigint, 0n))).toBeInstanceOf(TypeError);
  });
});

describe('scanDir', () => {
  it('lists every entry but . and .. in name-byte order, each with the lstat fs reports', async () => {
    const d = path.join(dir, 'scan');
    fs.mkdirSync(d);
    const names = [Buffer.from('b'), Buffer.from('a-longer'), Buffer.from('a'), Buffer.from([0x66, 0xff, 0xfe]), Buffer.from('Z'), Buffer.from('é')];
    for (const name of names) fs.writeFileSync(Buffer.concat([Buffer.from(d + '/'), name]), name);
    fs.mkdirSync(path.join(d, 'sub'));
    fs.symlinkSync('a', path.join(d, 'link'));
    fs.linkSync(path.join(d, 'a'), path.join(d, 'hardlink'));
    mkfifo(path.join(d, 'fifo'), 0o640);
    if (isRoot) mknod(path.join(d, 'null'), fs.constants.S_IFCHR | 0o600, fs.statSync('/dev/null').rdev);
    // Times a double of seconds cannot carry, one before 1970 and one past 2262 (beyond int64 ns).
    lutimesNs(path.join(d, 'b'), 0n, -1_500_000_001n);
    lutimesNs(path.join(d, 'Z'), 0n, 9_999_999_999_123_456_789n);
    setXattr(path.join(d, 'a'), 'user.scan', Buffer.from('x'));

    const scanned = await scanDir(Buffer.from(d));
    const listed = fs.readdirSync(d, { encoding: 'buffer' }).sort(Buffer.compare);
    expect(scanned.map((e) => e.name)).toEqual(listed);
    for (const { name, stat } of scanned) {
      const full = Buffer.concat([Buffer.from(d + '/'), name]);
      const st = fs.lstatSync(full, { bigint: true });
      expect(stat).toEqual({
        mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), nlink: Number(st.nlink), size: Number(st.size),
        ino: st.ino, dev: st.dev, rdev: st.isCharacterDevice() || st.isBlockDevice() ? st.rdev : 0n, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs,
        hasXattrs: listXattrs(full).length > 0,
      });
    }
    const byName = (n: string) => scanned.find((e) => e.name.equals(Buffer.from(n)))!.stat as Exclude<(typeof scanned)[number]['stat'], Error>;
    expect(byName('b').mtimeNs).toBe(-1_500_000_001n);
    expect(byName('Z').mtimeNs).toBe(9_999_999_999_123_456_789n);
    expect(byName('a').hasXattrs).toBe(true);
    expect(byName('a').nlink).toBe(2);
    if (isRoot) expect(byName('null').rdev).toBe(BigInt(fs.statSync('/dev/null').rdev));
  });

  it('reads an empty directory and fails like readdir (syscall scandir) on what is not one, never following a symlink', async () => {
    const empty = path.join(dir, 'scan-empty');
    fs.mkdirSync(empty);
    expect(await scanDir(Buffer.from(empty))).toEqual([]);
    const missing = path.join(dir, 'scan-missing');
    await expect(scanDir(Buffer.from(missing))).rejects.toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'scandir', path: missing, message: `ENOENT: no such file or directory, scandir '${missing}'` });
    const file = path.join(dir, 'scan-file');
    fs.writeFileSync(file, '');
    await expect(scanDir(Buffer.from(file))).rejects.toMatchObject({ code: 'ENOTDIR', syscall: 'scandir' });
    const link = path.join(dir, 'scan-link');
    fs.symlinkSync(empty, link);
    await expect(scanDir(Buffer.from(link))).rejects.toMatchObject({ syscall: 'scandir' });
  });
});
