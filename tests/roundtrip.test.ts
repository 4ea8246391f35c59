/**
 * Round trip through the real CLI: what `bh restore` writes must equal what `bh backup` read,
 * checked against the file system (lstat, bytes, xattrs, inodes), never against bh's records.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, lchownSync, linkSync, mkdirSync, readdirSync, symlinkSync, writeFileSync, openSync, writeSync, closeSync, ftruncateSync, existsSync, lstatSync, rmSync } from 'node:fs';
import { lstat, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LocalBackend } from '../src/backends/local.js';
import { chunkBuffer, gearTable } from '../src/chunker/index.js';
import { Repository } from '../src/repo/repository.js';
import { getXattr, lutimesNs, makedev, mkfifo, mknod, removeXattr, setXattr } from '../src/fsx/index.js';
import { type RunResult, type TestRepo, bhWithoutDacOverride, initRepo, makeTempDir, removeDir } from './helpers/cli.js';
import { compareTrees, walkTree } from './helpers/tree-compare.js';

const KiB = 1024;
const MiB = 1024 * 1024;

type Part = string | Buffer;

/** A path of raw bytes: parts joined by '/'. */
function p(...parts: Part[]): Buffer {
  const out: Buffer[] = [];
  parts.forEach((part, i) => {
    if (i > 0) out.push(Buffer.from('/'));
    out.push(Buffer.from(part));
  });
  return Buffer.concat(out);
}

function jsonLines(r: RunResult): Record<string, unknown>[] {
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function summaryOf(r: RunResult): Record<string, number | string | boolean | null> {
  const s = jsonLines(r).find((l) => l['message_type'] === 'summary');
  if (!s) throw new Error(`no summary line in output (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return s as Record<string, number | string | boolean | null>;
}

function expectOk(r: RunResult): RunResult {
  expect(r.code, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(0);
  return r;
}

/** Every file below a directory (relative path → size), for "the repository did not change". */
function listing(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const visit = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      const st = lstatSync(path);
      if (st.isDirectory()) visit(path);
      else out.push(`${path.slice(dir.length)} ${st.size}`);
    }
  };
  visit(dir);
  return out;
}

function repoContents(repo: TestRepo): string[] {
  return ['config', 'keys', 'data', 'index', 'snapshots'].flatMap((d) => (d === 'config' ? [`config ${lstatSync(join(repo.path, 'config')).size}`] : listing(join(repo.path, d)).map((l) => `${d}${l}`)));
}


// ---- the helper must be able to fail ----------------------------------------------------------

describe('compareTrees (the helper itself)', () => {
  let dir: string;
  const T0 = 1_700_000_000_123_456_789n;

  /** Two identical little trees, a and b. */
  function build(root: string): void {
    mkdirSync(join(root, 'sub'), { recursive: true });
    writeFileSync(join(root, 'f'), 'hello');
    writeFileSync(join(root, 'sub', 'g'), 'world');
    linkSync(join(root, 'sub', 'g'), join(root, 'sub', 'g2'));
    symlinkSync('../f', join(root, 'sub', 'l'));
    writeFileSync(p(root, Buffer.from([0x66, 0xff, 0xfe])), 'raw name');
    setXattr(join(root, 'f'), 'user.k', Buffer.from([0, 1, 2]));
    chmodSync(join(root, 'f'), 0o640);
    lutimesNs(p(root, Buffer.from([0x66, 0xff, 0xfe])), T0, T0);
    for (const [i, e] of ['f', 'sub/g', 'sub/l', 'sub', '.'].entries()) lutimesNs(join(root, e), T0, T0 + BigInt(i));
  }

  beforeAll(async () => {
    dir = await makeTempDir('bh-cmp-');
  });
  afterAll(() => removeDir(dir));

  async function pair(name: string, mutate: (b: string) => void): Promise<string[]> {
    const a = join(dir, name, 'a');
    const b = join(dir, name, 'b');
    build(a);
    build(b);
    expect(await compareTrees(a, b)).toEqual([]);
    mutate(b);
    return compareTrees(a, b);
  }

  it('finds a changed byte (same size, same mtime)', async () => {
    const diffs = await pair('byte', (b) => {
      writeFileSync(join(b, 'sub', 'g'), 'worle');
      lutimesNs(join(b, 'sub', 'g'), T0, T0 + 1n);
    });
    // g and its hardlink g2 are one inode: both names show the change.
    expect(diffs).toHaveLength(2);
    expect(diffs[0]).toMatch(/^"sub\/g": content differs/);
    expect(diffs[1]).toMatch(/^"sub\/g2": content differs/);
  });

  it('finds a changed mode', async () => {
    expect(await pair('mode', (b) => chmodSync(join(b, 'f'), 0o644))).toEqual(['"f": mode 0640 != 0644']);
  });

  it('finds a 1 ns mtime change, on a symlink too', async () => {
    expect(await pair('mtime', (b) => lutimesNs(join(b, 'sub', 'l'), T0, T0 + 3n))).toEqual([`"sub/l": mtimeNs ${T0 + 2n} != ${T0 + 3n}`]);
  });

  it('finds a missing xattr', async () => {
    expect(await pair('xattr', (b) => removeXattr(join(b, 'f'), 'user.k'))).toEqual(['"f": xattr names user.k != ']);
  });

  it('finds a missing non-UTF-8 name, a changed link target and broken hardlinks', async () => {
    const diffs = await pair('names', (b) => {
      rmSync(p(b, Buffer.from([0x66, 0xff, 0xfe])));
      rmSync(join(b, 'sub', 'l'));
      symlinkSync('../F', join(b, 'sub', 'l'));
      lutimesNs(join(b, 'sub', 'l'), T0, T0 + 2n);
      rmSync(join(b, 'sub', 'g2'));
      writeFileSync(join(b, 'sub', 'g2'), 'world');
      lutimesNs(join(b, 'sub', 'g2'), T0, T0 + 1n);
      lutimesNs(join(b, 'sub'), T0, T0 + 3n);
      lutimesNs(b, T0, T0 + 4n);
    });
    expect(diffs).toContain('"f\\xff\\xfe": missing in restored tree');
    expect(diffs).toContain('"sub/l": symlink target "../f" != "../F"');
    expect(diffs.filter((d) => d.includes('hardlinks differ'))).toHaveLength(2);
    expect(diffs).toHaveLength(4);
  });

  it('can ignore the root mtime only', async () => {
    const a = join(dir, 'root', 'a');
    const b = join(dir, 'root', 'b');
    build(a);
    build(b);
    lutimesNs(b, T0, T0 + 99n);
    expect(await compareTrees(a, b)).toEqual([`"." (root): mtimeNs ${T0 + 4n} != ${T0 + 99n}`]);
    expect(await compareTrees(a, b, { ignoreRootMtime: true })).toEqual([]);
    lutimesNs(join(b, 'sub'), T0, T0 + 99n);
    expect(await compareTrees(a, b, { ignoreRootMtime: true })).toEqual([`"sub": mtimeNs ${T0 + 3n} != ${T0 + 99n}`]);
  });
});

// ---- the round trip ----------------------------------------------------------------------------

const NON_UTF8 = Buffer.from([0x66, 0xff, 0xfe]);
const LONG_NAME = 'n'.repeat(255);
const LONG_UTF8_NAME = 'é'.repeat(127) + 'x'; // 255 bytes
const SPARSE_SIZE = 64 * MiB;
const OWNER = { uid: 1234, gid: 5678 };

describe('backup → restore round trip', () => {
  let tmp: string;
  let repo: TestRepo;
  let src: string;
  let firstId: string;
  let fileCount = 0;
  let dirCount = 0;
  /** Byte used for the 8 MiB + 1 pattern file: one for which this repository's chunker never cuts. */
  let patternByte = -1;
  let firstRestore: string;

  /** Builds the source tree; returns nothing, everything is then checked against the disk. */
  function buildSource(root: string, params: { min: number; avg: number; max: number }, gear: Uint32Array): void {
    mkdirSync(root);
    writeFileSync(join(root, 'empty'), '');
    writeFileSync(join(root, 'small.txt'), 'hello, world\n');
    mkdirSync(join(root, 'sub'));
    writeFileSync(join(root, 'sub', 'modify-me.txt'), 'version 1\n');
    // Content-defined chunks: random data, about 1.2 MiB per chunk on average.
    const r5 = randomBytes(5 * MiB + 123);
    const r3 = randomBytes(3 * MiB + 17);
    writeFileSync(join(root, 'random-5m.bin'), r5);
    writeFileSync(join(root, 'random-3m.bin'), r3);
    writeFileSync(join(root, 'sub', 'copy-of-3m.bin'), r3);

    // Chunk-size edges. Which cuts happen depends on the repository's keyed gear table, so the
    // premise is checked with the chunker's reference implementation and that table:
    // - exactly MIN (512 KiB): the chunker never hashes the first MIN bytes of a chunk, so any
    //   content of exactly MIN bytes is one chunk of MIN bytes;
    // - exactly MAX (8 MiB) of zeros: the gear hash of a run of one byte value settles on a
    //   constant within 32 bytes, which (for all but ~1 in 2^18 tables) never matches the mask,
    //   so the cut is forced at MAX, which is exactly the end of the file;
    // - MAX + 1 of one repeated non-zero byte (chosen so that the table never cuts it): a forced
    //   cut at MAX, then a 1-byte chunk. Non-zero, so the restorer writes it rather than leaving
    //   a hole, while the all-zero file is restored as a hole.
    mkdirSync(join(root, 'edges'));
    const min = Buffer.alloc(params.min);
    for (let i = 0; i < min.length; i++) min[i] = 0x30 + (i % 10);
    expect(chunkBuffer(min, params, gear)).toEqual([params.min]);
    writeFileSync(join(root, 'edges', 'exactly-min'), min);
    const zeros = Buffer.alloc(params.max);
    expect(chunkBuffer(zeros, params, gear), 'premise: all-zero data is cut only at MAX').toEqual([params.max]);
    writeFileSync(join(root, 'edges', 'exactly-max-zeros'), zeros);
    for (const b of [0xab, 0x5a, 0x33, 0xc7, 0x01, 0xfe]) {
      const lengths = chunkBuffer(Buffer.alloc(params.max + 1, b), params, gear);
      if (lengths.length === 2 && lengths[0] === params.max && lengths[1] === 1) {
        patternByte = b;
        break;
      }
    }
    expect(patternByte, 'premise: some repeated byte is cut only at MAX').toBeGreaterThan(0);
    writeFileSync(join(root, 'edges', 'max-plus-one'), Buffer.alloc(params.max + 1, patternByte));
    // - exactly MAX of random bytes that the table never cuts: one chunk whose envelope is larger
    //   than MAX (it does not compress), more than a chunk worker's credit. Random bytes, and
    //   wherever the chunker would cut early, the byte before the cut is changed until it does not.
    const noise = randomBytes(params.max);
    for (let tries = 0, cut = chunkBuffer(noise, params, gear)[0]!; cut < params.max; cut = chunkBuffer(noise, params, gear)[0]!) {
      expect(tries++, 'premise: early cuts can be edited away').toBeLessThan(10_000);
      noise[cut - 1] = (noise[cut - 1]! + 1) & 0xff;
    }
    writeFileSync(join(root, 'edges', 'max-incompressible'), noise);

    // Sparse: 64 MiB with a few bytes in the middle.
    const fd = openSync(join(root, 'sparse'), 'w');
    ftruncateSync(fd, SPARSE_SIZE);
    writeSync(fd, Buffer.from('in the middle of nowhere'), 0, 24, 32 * MiB + 4097);
    closeSync(fd);

    // 60 levels deep.
    let deep = join(root, 'deep');
    for (let i = 0; i < 60; i++) deep = join(deep, `d${i}`);
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(deep, 'bottom.txt'), 'deep down\n');

    // Symlinks, never followed.
    mkdirSync(join(root, 'links'));
    symlinkSync('../small.txt', join(root, 'links', 'relative'));
    symlinkSync('/etc/passwd', join(root, 'links', 'absolute'));
    symlinkSync('no/such/target', join(root, 'links', 'dangling'));
    symlinkSync('../../../../../../../../../../outside-the-tree', join(root, 'links', 'outside'));
    symlinkSync('..', join(root, 'links', 'to-parent-dir'));
    symlinkSync(Buffer.from([0x74, 0xff, 0x2f, 0x78]), p(root, 'links', 'non-utf8-target'));
    symlinkSync(Buffer.from([0x74, 0xff, 0x2f, 0x78]), p(root, 'links', NON_UTF8));

    // Hardlinks: one inode, three names, three directories; and a hardlinked symlink.
    mkdirSync(join(root, 'hard', 'b', 'c'), { recursive: true });
    mkdirSync(join(root, 'hard', 'a'));
    writeFileSync(join(root, 'hard', 'a', 'h1'), 'one inode, three names\n');
    linkSync(join(root, 'hard', 'a', 'h1'), join(root, 'hard', 'b', 'h2'));
    linkSync(join(root, 'hard', 'a', 'h1'), join(root, 'hard', 'b', 'c', 'h3'));
    writeFileSync(join(root, 'hard', 'solo'), 'one name\n');
    symlinkSync('a/h1', join(root, 'hard', 'sym'));
    linkSync(join(root, 'hard', 'sym'), join(root, 'hard', 'sym-hardlink'));

    // Special files.
    mkdirSync(join(root, 'special'));
    mkfifo(join(root, 'special', 'fifo'), 0o644);
    mknod(join(root, 'special', 'null'), 0o020000 | 0o666, makedev(1, 3));
    mknod(join(root, 'special', 'loop7'), 0o060000 | 0o660, makedev(7, 7));

    // Permission bits.
    mkdirSync(join(root, 'perms'));
    writeFileSync(join(root, 'perms', 'setuid'), '#!/bin/sh\n');
    writeFileSync(join(root, 'perms', 'setgid'), '#!/bin/sh\n');
    writeFileSync(join(root, 'perms', 'no-access'), 'nobody may read this (but root)\n');
    mkdirSync(join(root, 'perms', 'sticky'));
    writeFileSync(join(root, 'perms', 'sticky', 'inside'), 'x');
    mkdirSync(join(root, 'perms', 'read-only'));
    writeFileSync(join(root, 'perms', 'read-only', 'f1'), 'in a read-only dir\n');
    writeFileSync(join(root, 'perms', 'read-only', 'f2'), 'me too\n');
    mkdirSync(join(root, 'perms', 'setgid-dir'));

    // Owners (root may give files away): chown before chmod, which would clear setuid/setgid.
    mkdirSync(join(root, 'owned'));
    writeFileSync(join(root, 'owned', 'file'), 'owned by 1234:5678\n');
    symlinkSync('file', join(root, 'owned', 'link'));
    for (const e of ['owned', 'owned/file', 'owned/link', 'perms/setuid', 'perms/setgid', 'special/fifo', 'perms/sticky']) lchownSync(join(root, e), OWNER.uid, OWNER.gid);
    lchownSync(join(root, 'perms', 'no-access'), 0, OWNER.gid);
    chmodSync(join(root, 'perms', 'setuid'), 0o4755);
    chmodSync(join(root, 'perms', 'setgid'), 0o2755);
    chmodSync(join(root, 'perms', 'no-access'), 0o000);
    chmodSync(join(root, 'perms', 'sticky'), 0o1777);
    chmodSync(join(root, 'perms', 'setgid-dir'), 0o2775);
    chmodSync(join(root, 'owned', 'file'), 0o600);
    chmodSync(join(root, 'special', 'fifo'), 0o620);

    // Names.
    mkdirSync(join(root, 'names'));
    for (const name of ['with space', 'new\nline', '-leading-dash', '--', 'unicode-äöü-日本語-🎉', 'star*?[x]', 'back\\slash', "quote'\"", ' leading space', 'trailing space ', 'tab\there', LONG_NAME, LONG_UTF8_NAME]) {
      writeFileSync(join(root, 'names', name), `file named ${JSON.stringify(name)}\n`);
    }
    writeFileSync(p(root, 'names', NON_UTF8), 'non-UTF-8 name\n');
    mkdirSync(p(root, 'names', Buffer.from([0x64, 0x80, 0x81])));
    writeFileSync(p(root, 'names', Buffer.from([0x64, 0x80, 0x81]), Buffer.from([0xc3, 0x28])), 'in a non-UTF-8 dir\n');
    mkdirSync(join(root, 'names', LONG_NAME.slice(0, 254) + 'd'));
    writeFileSync(join(root, 'names', LONG_NAME.slice(0, 254) + 'd', LONG_NAME), 'long/long\n');

    // Xattrs with binary values, on files, dirs, a 0o000 file, a read-only dir, a hardlinked file and
    // the root (the kernel allows user.* xattrs on regular files and directories only).
    setXattr(join(root, 'small.txt'), 'user.binary', Buffer.from([0x00, 0xff, 0x10, 0x80, 0x00]));
    setXattr(join(root, 'small.txt'), 'user.empty', Buffer.alloc(0));
    setXattr(join(root, 'small.txt'), 'user.big', randomBytes(2000));
    setXattr(join(root, 'sub'), 'user.dir-attr', Buffer.from('on a directory'));
    setXattr(join(root, 'perms', 'no-access'), 'user.secret', Buffer.from([1, 2, 3]));
    setXattr(join(root, 'perms', 'read-only'), 'user.ro', Buffer.from('ro dir'));
    setXattr(p(root, 'names', NON_UTF8), 'user.\u00e9t\u00e9', Buffer.from('unicode xattr name'));
    setXattr(join(root, 'hard', 'a', 'h1'), 'user.shared', Buffer.from('all three names see me'));
    setXattr(root, 'user.root', Buffer.from('root dir attr'));

    chmodSync(join(root, 'perms', 'read-only'), 0o555);
    chmodSync(root, 0o750);

    // Times with nanoseconds on everything, symlinks too; directories after their contents.
    let t = 1_700_000_000_123_456_789n;
    const stamp = (path: Buffer): void => {
      t += 1_000_000_007n;
      lutimesNs(path, t - 5n, t);
    };
    const visit = (dir: Buffer): void => {
      for (const name of readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare)) {
        const path = p(dir, name);
        if (lstatSync(path).isDirectory()) visit(path);
        else stamp(path);
      }
      stamp(dir);
    };
    visit(Buffer.from(root));
    // Times far from now: before 1970 and after 2038.
    lutimesNs(join(root, 'sub', 'modify-me.txt'), 0n, -1_234_567_890_987_654_321n);
    lutimesNs(join(root, 'edges', 'exactly-min'), 0n, 4_102_444_800_000_000_001n);
    lutimesNs(join(root, 'edges'), 0n, 1n);
    lutimesNs(join(root, 'sub'), 0n, 999_999_999n);
    lutimesNs(root, 0n, 1_700_000_000_999_999_999n);
  }

  beforeAll(async () => {
    tmp = await makeTempDir('bh-roundtrip-');
    repo = await initRepo(tmp);
    const opened = await Repository.open(new LocalBackend(repo.path), { kind: 'password', password: Buffer.from(repo.env.BH_PASSWORD!) });
    const { min, avg, max } = opened.config.chunker;
    buildSource((src = join(tmp, 'src')), { min, avg, max }, gearTable(opened.keys.chunkerSeed));
    for (const st of (await walkTree(src)).values()) {
      if (st.isFile()) fileCount++;
      if (st.isDirectory()) dirCount++;
    }
    dirCount++; // src itself
    const backup = expectOk(await repo.run(['backup', src, '--json']));
    const s = summaryOf(backup);
    expect(s['errors']).toBe(0);
    expect(s['mode']).toBe('full');
    expect(s['files_new']).toBe(fileCount);
    firstId = s['snapshot_id'] as string;
  });

  afterAll(async () => {
    if (tmp) {
      // Read-only directories are no obstacle for root; rm handles the rest.
      await removeDir(tmp);
    }
  });

  it('restores every entry exactly: names, types, modes, owners, ns mtimes, content, links, devices, xattrs; --verify passes', async () => {
    firstRestore = join(tmp, 'restore-1');
    const r = expectOk(await repo.run(['restore', firstId, '--target', firstRestore, '--verify', '--json']));
    const s = summaryOf(r);
    expect(s['errors']).toBe(0);
    // --verify re-read every file it wrote (hardlinked names are links, not files) and found it right.
    expect(s['files_restored']).toBeGreaterThan(0);
    expect(s['verified']).toBe(s['files_restored']);
    expect(await compareTrees(src, join(firstRestore, src))).toEqual([]);
    // Only the path's own components exist under the target.
    expect(await readdir(firstRestore)).toEqual([src.split('/')[1]]);
  });

  it('restores the same with a worker thread as inline (a snapshot this small starts none; BH_WORKERS=1 forces one)', async () => {
    for (const workers of ['1', '0']) {
      const target = join(tmp, `restore-workers-${workers}`);
      const s = summaryOf(expectOk(await repo.run(['restore', firstId, '--target', target, '--json'], { env: { BH_WORKERS: workers } })));
      expect(s['errors']).toBe(0);
      expect(await compareTrees(src, join(target, src))).toEqual([]);
    }
  });

  it('restores read-only files and directories with xattrs without overriding permissions (as a non-root user must)', async () => {
    const target = join(tmp, 'restore-no-dac');
    // Twice: the second time over the first, whose read-only directories must be filled again.
    for (const overwrite of ['always', 'always']) {
      const r = await bhWithoutDacOverride(repo.env, ['restore', firstId, '--target', target, '--include', `${src}/perms`, '--include', `${src}/hard`, '--overwrite', overwrite]);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      for (const d of ['perms', 'hard']) expect(await compareTrees(join(src, d), join(target, src, d))).toEqual([]);
    }
    await removeDir(target);
  });

  it('keeps a sparse file sparse', async () => {
    const st = await lstat(join(firstRestore, src, 'sparse'), { bigint: true });
    expect(st.size).toBe(BigInt(SPARSE_SIZE));
    // 64 MiB of which at most the one 8 MiB chunk holding data is allocated.
    expect(st.blocks * 512n).toBeLessThan(BigInt(SPARSE_SIZE / 4));
    const zeros = await lstat(join(firstRestore, src, 'edges', 'exactly-max-zeros'), { bigint: true });
    expect(zeros.blocks * 512n).toBeLessThan(1n * BigInt(MiB));
  });

  it('restore --include / --exclude select entries by name and by path', async () => {
    // By path (one subtree, with its hardlinks) and by name, anywhere in the tree.
    const incl = join(tmp, 'restore-include');
    expectOk(await repo.run(['restore', 'latest', '--target', incl, '--include', `${src}/hard`, '--include', 'small.txt', '--include', 'bottom.txt']));
    expect((await readdir(join(incl, src))).sort()).toEqual(['deep', 'hard', 'small.txt']);
    expect(await compareTrees(join(src, 'hard'), join(incl, src, 'hard'))).toEqual([]);
    const got = [...(await walkTree(join(incl, src))).entries()].filter(([k, st]) => !st.isDirectory() && !k.startsWith('"hard/')).map(([k]) => k);
    expect(got).toEqual([`"deep/${Array.from({ length: 60 }, (_, i) => `d${i}`).join('/')}/bottom.txt"`, '"small.txt"']);
    expect(await readFile(join(incl, src, 'small.txt'))).toEqual(await readFile(join(src, 'small.txt')));
    expect(getXattr(join(incl, src, 'small.txt'), 'user.binary')).toEqual(Buffer.from([0x00, 0xff, 0x10, 0x80, 0x00]));

    // Exclude by name and by (relative and absolute) path: exactly those are missing.
    const excl = join(tmp, 'restore-exclude');
    expectOk(await repo.run(['restore', 'latest', '--target', excl, '--exclude', '*.bin', '--exclude', 'names', '--exclude', 'hard/b', '--exclude', `${src}/special/null`]));
    const diffs = await compareTrees(src, join(excl, src));
    expect(diffs.sort()).toEqual(
      ['"random-5m.bin": missing in restored tree', '"random-3m.bin": missing in restored tree', '"sub/copy-of-3m.bin": missing in restored tree', '"names": missing in restored tree', '"hard/b": missing in restored tree', '"special/null": missing in restored tree'].sort(),
    );
    for (const d of [incl, excl]) await removeDir(d);
  });

  it('restore --dry-run writes nothing', async () => {
    const target = join(tmp, 'restore-dry');
    const r = expectOk(await repo.run(['restore', 'latest', '--target', target, '--dry-run', '--json']));
    expect(summaryOf(r)['files_restored']).toBeGreaterThan(0);
    expect(existsSync(target)).toBe(false);
  });

  it('an unchanged tree is not read again; one changed file is the only one read; old and new snapshots restore to their states', async () => {
    const second = summaryOf(expectOk(await repo.run(['backup', src, '--json'])));
    expect(second['parent']).toBe(firstId);
    expect(second['files_unmodified']).toBe(fileCount);
    expect(second['files_new']).toBe(0);
    expect(second['files_changed']).toBe(0);
    expect(second['bytes_read']).toBe(0);
    expect(second['dirs_unmodified']).toBe(dirCount);
    // No data was read, so no data blob can be new; at most the trees of the path's ancestors
    // (/tmp and the test dir, whose mtimes other tests move) are stored again.
    expect(second['bytes_added']).toBeLessThan(4096);

    // Change one file; a dry run first must store nothing.
    const changed = join(src, 'sub', 'modify-me.txt');
    const newContent = Buffer.concat([Buffer.from('version 2, longer\n'), randomBytes(100 * KiB)]);
    await writeFile(changed, newContent);
    const before = repoContents(repo);
    const dry = summaryOf(expectOk(await repo.run(['backup', src, '--json', '--dry-run'])));
    expect(dry['dry_run']).toBe(true);
    expect(dry['snapshot_id']).toBeNull();
    expect(dry['files_changed']).toBe(1);
    expect(dry['bytes_added']).toBeGreaterThan(100 * KiB);
    expect(repoContents(repo)).toEqual(before);

    const third = summaryOf(expectOk(await repo.run(['backup', src, '--json'])));
    expect(third['files_changed']).toBe(1);
    expect(third['files_unmodified']).toBe(fileCount - 1);
    expect(third['files_new']).toBe(0);
    expect(third['bytes_read']).toBe(newContent.length);
    expect(third['dirs_changed']).toBe(2); // sub and src

    // The first snapshot still equals the tree as it was: the first restore, which was proven
    // equal to the source before the change.
    const older = join(tmp, 'restore-older');
    expectOk(await repo.run(['restore', firstId, '--target', older]));
    expect(await compareTrees(join(firstRestore, src), join(older, src))).toEqual([]);
    const diffs = await compareTrees(src, join(older, src));
    expect(diffs.length).toBeGreaterThan(0);
    expect(diffs.every((d) => d.startsWith('"sub/modify-me.txt"'))).toBe(true);
    expect(await readFile(join(older, src, 'sub', 'modify-me.txt'), 'utf8')).toBe('version 1\n');
    await removeDir(older);
    // The newest equals the changed tree, restored over the first restore (--overwrite always:
    // every entry is replaced in place, read-only directories, devices and hardlinks included).
    expectOk(await repo.run(['restore', third['snapshot_id'] as string, '--target', firstRestore]));
    expect(await compareTrees(src, join(firstRestore, src))).toEqual([]);
  });

  it('backup --stdin restores a file with exactly the bytes of standard input', async () => {
    const input = Buffer.concat([Buffer.from('-- dump\nCREATE TABLE t (x BLOB);\n'), randomBytes(1536 * KiB), Buffer.alloc(700 * KiB), Buffer.from('\0\r\n-- end')]);
    const s = summaryOf(expectOk(await repo.run(['backup', '--stdin', '--stdin-filename', 'dump.sql', '--json'], { input })));
    expect(s['bytes_read']).toBe(input.length);
    const target = join(tmp, 'restore-stdin');
    expectOk(await repo.run(['restore', s['snapshot_id'] as string, '--target', target]));
    expect(readdirSync(target)).toEqual(['dump.sql']);
    const restored = await readFile(join(target, 'dump.sql'));
    expect(restored.length).toBe(input.length);
    expect(restored.equals(input)).toBe(true);
    await removeDir(target);
  });

  it('backup --exclude and --exclude-file leave out exactly the matching entries', async () => {
    const ex = join(tmp, 'ex-src');
    const files = ['keep.txt', 'a.tmp', 'sub/b.tmp', 'sub/keep.txt', 'cache/x', 'sub/cache/y', 'logs/old.log', 'logs/keep.txt', 'deeper/logs/new.log', 'secret/s', 'other/secret/s', '#hash', 'dotted/.hidden.tmp'];
    for (const f of files) {
      mkdirSync(join(ex, f, '..'), { recursive: true });
      writeFileSync(join(ex, f), f);
    }
    mkdirSync(join(ex, 'links'));
    symlinkSync('nowhere', join(ex, 'links', 'dangling'));
    symlinkSync('../keep.txt', join(ex, 'links', 'ok'));
    // A socket belongs to a process that is gone: backed up, but skipped on restore (README).
    mknod(join(ex, 'socket'), 0o140000 | 0o755, 0);
    const patternFile = join(tmp, 'excludes.txt');
    writeFileSync(patternFile, '# a comment line\n\ncache\nlogs/*.log\n   \nlinks/dangling\r\n');
    const s = summaryOf(expectOk(await repo.run(['backup', ex, '--exclude', '*.tmp', '--exclude', `${ex}/secret`, '--exclude-file', patternFile, '--json'])));
    const target = join(tmp, 'restore-ex');
    expectOk(await repo.run(['restore', s['snapshot_id'] as string, '--target', target]));
    const diffs = await compareTrees(ex, join(target, ex));
    expect(diffs.sort()).toEqual(
      ['"a.tmp"', '"sub/b.tmp"', '"cache"', '"sub/cache"', '"logs/old.log"', '"deeper/logs/new.log"', '"secret"', '"links/dangling"', '"dotted/.hidden.tmp"', '"socket"'].map((n) => `${n}: missing in restored tree`).sort(),
    );
    await removeDir(target);
  });

  it('a backup of / itself restores like any other path (all but one small directory excluded)', async () => {
    const ex = join(tmp, 'ex-src');
    // '/!(tmp)', '/tmp/!(bh-roundtrip-…)', …: everything but the path to ex-src is left out, so
    // nothing else of this machine (least of all /proc) is read.
    const parts = ex.split('/').filter((x) => x !== '');
    const excludes = parts.flatMap((part, i) => ['--exclude', `/${parts.slice(0, i).map((x) => `${x}/`).join('')}!(${part})`]);
    const s = summaryOf(expectOk(await repo.run(['backup', '/', ...excludes, '--json'])));
    expect(s['errors']).toBe(0);
    const files = [...(await walkTree(ex)).values()].filter((st) => st.isFile()).length;
    expect(s['total_files']).toBe(files);
    const target = join(tmp, 'restore-slash');
    expectOk(await repo.run(['restore', s['snapshot_id'] as string, '--target', target]));
    expect(await readdir(target)).toEqual([parts[0]]);
    expect(await compareTrees(ex, join(target, ex))).toEqual(['"socket": missing in restored tree']);
    await removeDir(target);
  });
});
