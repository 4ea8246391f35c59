/**
 * What the archiver reads, checked with real bh processes on real files (issue 11, items 2 and 7):
 *
 * - overlapping backup paths (`/x/s /x/s/sub`, `/etc /etc/nginx`, one path spelled two ways)
 *   back up exactly the union of what each path holds, each entry once, and nothing beside it;
 *   the restored tree is compared with the file system (tests/helpers/tree-compare.ts);
 * - a file that changes type between the scan of its directory and the read (swapped for a FIFO)
 *   is reported and left out, never waited on; one replaced by another regular file is recorded
 *   as the file that was read; an interrupt does not wait for a worker that waits on a file.
 *
 * The moment between scan and read is made deterministic with a file lease (fcntl F_SETLEASE,
 * held by a small Python process): bh opens the files of a directory only after scanning it,
 * one after another with one worker (BH_WORKERS=1), and its open of the leased first file makes
 * the kernel tell the holder (SIGIO) while bh waits for the lease. The test changes the second
 * file then, and lets the lease go.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, linkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkfifo } from '../src/fsx/index.js';
import { compareTrees } from './helpers/tree-compare.js';
import { describeRun, initRepo, makeTempDir, removeDir, startRunning, summaryOf, type RunResult, type Running, type TestRepo } from './helpers/cli.js';

let work: string;
let repo: TestRepo;
let restores = 0;

beforeAll(async () => {
  work = await makeTempDir('bh-paths-');
  repo = await initRepo(work);
});

afterAll(async () => {
  if (work) await removeDir(work);
});

interface JsonLine {
  message_type: string;
  path?: string;
  error?: string;
  snapshot_id?: string;
}

function jsonLines(r: RunResult): JsonLine[] {
  return r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as JsonLine);
}

function errorsOf(r: RunResult): JsonLine[] {
  return jsonLines(r).filter((l) => l.message_type === 'error');
}

async function backup(paths: string[], extra: string[] = []): Promise<RunResult> {
  return repo.run(['backup', '--json', ...extra, ...paths]);
}

/** Restores `snapshotId` into a new directory; returns it (the source's absolute paths are recreated below it). */
async function restore(snapshotId: string): Promise<string> {
  const target = join(work, `restore-${restores++}`);
  const r = await repo.run(['restore', snapshotId, '--target', target]);
  expect(r.code, describeRun('restore', r)).toBe(0);
  return target;
}

/** Every path below `root` (relative, `/`-separated), symlinks not followed. */
function listTree(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, rel)).sort()) {
    const child = rel === '' ? name : `${rel}/${name}`;
    out.push(child);
    if (lstatSync(join(root, child)).isDirectory()) out.push(...listTree(root, child));
  }
  return out;
}

describe('overlapping backup paths', () => {
  it('`/x/s /x/s/sub` with /x/sub/WRONG present backs up /x/s once and not /x/sub', async () => {
    const x = join(work, 'x1');
    mkdirSync(join(x, 's/sub'), { recursive: true });
    mkdirSync(join(x, 'sub'));
    writeFileSync(join(x, 's/sub/f'), 'inside');
    writeFileSync(join(x, 's/g'), 'beside');
    writeFileSync(join(x, 'sub/WRONG'), 'not asked for');
    const r = await backup([join(x, 's'), join(x, 's/sub')]);
    expect(r.code, describeRun('backup', r)).toBe(0);
    const restored = join(await restore(summaryOf<JsonLine>(r).snapshot_id!), x);
    expect(readdirSync(restored)).toEqual(['s']);
    expect(await compareTrees(join(x, 's'), join(restored, 's'))).toEqual([]);
  });

  it('`/x/s /x/s/sub` without /x/sub: a complete backup, exit 0 (not ENOENT for /x/sub)', async () => {
    const x = join(work, 'x2');
    mkdirSync(join(x, 's/sub'), { recursive: true });
    writeFileSync(join(x, 's/sub/f'), 'inside');
    const r = await backup([join(x, 's'), join(x, 's/sub')]);
    expect(r.code, describeRun('backup', r)).toBe(0);
    expect(errorsOf(r)).toEqual([]);
    const restored = join(await restore(summaryOf<JsonLine>(r).snapshot_id!), x);
    expect(readdirSync(restored)).toEqual(['s']);
    expect(await compareTrees(join(x, 's'), join(restored, 's'))).toEqual([]);
  });

  it('`/etc /etc/nginx`-shaped, in either order, never backs up `/nginx`', async () => {
    const root = join(work, 'e');
    mkdirSync(join(root, 'etc/nginx'), { recursive: true });
    mkdirSync(join(root, 'nginx'));
    writeFileSync(join(root, 'etc/nginx/nginx.conf'), 'worker_processes 1;');
    writeFileSync(join(root, 'etc/hosts'), '127.0.0.1 localhost');
    writeFileSync(join(root, 'nginx/decoy'), 'not asked for');
    for (const paths of [[join(root, 'etc'), join(root, 'etc/nginx')], [join(root, 'etc/nginx'), join(root, 'etc')]]) {
      const r = await backup(paths);
      expect(r.code, describeRun(`backup ${paths.join(' ')}`, r)).toBe(0);
      const restored = join(await restore(summaryOf<JsonLine>(r).snapshot_id!), root);
      expect(readdirSync(restored)).toEqual(['etc']);
      expect(await compareTrees(join(root, 'etc'), join(restored, 'etc'))).toEqual([]);
    }
  });

  it('any set of overlapping paths, however spelled, backs up exactly their union (property)', async () => {
    // Nested directories, a name used twice (b), a symlink, a FIFO, a hardlink pair, an empty dir.
    const src = join(work, 'tree');
    mkdirSync(join(src, 'a/b/c'), { recursive: true });
    mkdirSync(join(src, 'b'));
    mkdirSync(join(src, 'e'));
    writeFileSync(join(src, 'a/f'), 'a/f');
    writeFileSync(join(src, 'a/b/g'), 'a/b/g');
    writeFileSync(join(src, 'a/b/c/h'), 'a/b/c/h');
    writeFileSync(join(src, 'top'), 'top');
    linkSync(join(src, 'a/b/c/h'), join(src, 'b/h2'));
    symlinkSync('../f', join(src, 'a/b/link'));
    mkfifo(join(src, 'a/fifo'), 0o644);
    const entries = listTree(src);
    const candidates = ['', ...entries];

    /** What backing up `given` (paths relative to src) with `--exclude exclude` must restore, below src. */
    const union = (given: string[], exclude: string | null): Set<string> => {
      const out = new Set<string>();
      for (const path of given) {
        const parts = path === '' ? [] : path.split('/');
        for (let i = 0; i < parts.length; i++) out.add(parts.slice(0, i).join('/'));
        out.add(path);
        for (const entry of entries) {
          const below = path === '' ? entry : entry.startsWith(`${path}/`) ? entry.slice(path.length + 1) : undefined;
          if (below !== undefined && !below.split('/').includes(exclude ?? '')) out.add(entry);
        }
      }
      return out;
    };
    /** `rel` below src, spelled one of several ways that all mean the same path. */
    const spell = (rel: string, how: 'plain' | 'slash' | 'dot' | 'dotdot'): string => {
      const plain = rel === '' ? src : join(src, rel);
      if (how === 'slash') return `${plain}/`;
      if (how === 'dot') return `${src}/./${rel}`;
      if (how === 'dotdot') return `${src}/e/../${rel}`;
      return plain;
    };

    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.constantFrom(...candidates), { minLength: 1, maxLength: 4 }),
        fc.array(fc.constantFrom('plain' as const, 'slash' as const, 'dot' as const, 'dotdot' as const), { minLength: 4, maxLength: 4 }),
        fc.boolean(),
        fc.option(fc.constantFrom('b', 'c', 'f')),
        async (given, spellings, twice, exclude) => {
          const paths = given.map((rel, i) => spell(rel, spellings[i]!));
          if (twice) paths.push(join(src, given[0]!));
          const r = await backup(paths, exclude === null ? [] : ['--exclude', exclude]);
          expect(r.code, describeRun(`backup ${paths.join(' ')}`, r)).toBe(0);
          const target = await restore(summaryOf<JsonLine>(r).snapshot_id!);
          const expected = union(given, exclude);
          const diffs = await compareTrees(src, join(target, src), { include: (rel) => expected.has(rel.toString()) });
          expect(diffs, `paths ${paths.join(' ')}${exclude === null ? '' : ` --exclude ${exclude}`}`).toEqual([]);
          // Nothing beside src either: the tree above it holds only the way down to it.
          expect(readdirSync(join(target, work))).toEqual(['tree']);
          rmSync(target, { recursive: true, force: true });
        },
      ),
      { numRuns: 6 },
    );
  });

  it('a backup path through a symlink inside another backup path is named as not backed up (exit 3)', async () => {
    const x = join(work, 'x3');
    mkdirSync(join(x, 'real'), { recursive: true });
    writeFileSync(join(x, 'real/file'), 'through the link');
    symlinkSync('real', join(x, 'link'));
    const r = await backup([x, join(x, 'link/file')]);
    expect(r.code, describeRun('backup', r)).toBe(3);
    expect(errorsOf(r)).toEqual([{ message_type: 'error', path: join(x, 'link/file'), error: expect.stringContaining(`not backed up: it runs through ${join(x, 'link')}, a symlink inside another backup path`) }]);
    // The snapshot has /x as it is, the link as a link.
    const restored = join(await restore(summaryOf<JsonLine>(r).snapshot_id!), x);
    expect(await compareTrees(x, restored)).toEqual([]);
  });

  it('a symlink on the way to a backup path is followed: recorded as the directory it leads to', async () => {
    const x = join(work, 'x4');
    mkdirSync(join(x, 'real'), { recursive: true });
    writeFileSync(join(x, 'real/file'), 'through the link');
    symlinkSync('real', join(x, 'link'));
    const r = await backup([join(x, 'link/file')]);
    expect(r.code, describeRun('backup', r)).toBe(0);
    const restored = join(await restore(summaryOf<JsonLine>(r).snapshot_id!), x);
    expect(readdirSync(restored)).toEqual(['link']);
    expect(lstatSync(join(restored, 'link')).isDirectory()).toBe(true);
    expect(await compareTrees(join(x, 'real'), join(restored, 'link'))).toEqual([]);
  });
});

/**
 * Holds a write lease on a file: prints `leased`, then `open` when another process opens the file
 * (the kernel's lease break, SIGIO), and lets the lease go at a line on its standard input.
 */
const LEASE_HOLDER = `
import fcntl, os, signal, sys
fd = os.open(sys.argv[1], os.O_RDWR)
def on_break(signum, frame):
    sys.stdout.write('open\\n')
    sys.stdout.flush()
signal.signal(signal.SIGIO, on_break)
fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
sys.stdout.write('leased\\n')
sys.stdout.flush()
sys.stdin.readline()
fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
os.close(fd)
`;

interface LeaseHolder {
  child: ChildProcess;
  output(): string;
  release(): void;
}

async function holdLease(path: string): Promise<LeaseHolder> {
  const child = spawn('python3', ['-c', LEASE_HOLDER, path], { stdio: ['pipe', 'pipe', 'inherit'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  await until(() => output.includes('leased'), 'the lease', () => child.exitCode !== null);
  return { child, output: () => output, release: () => child.stdin!.end('\n') };
}

/** Polls `condition` (a file system or process event, not a time); fails when `gone()` says it can no longer come. */
async function until(condition: () => boolean, what: string, gone: () => boolean): Promise<void> {
  while (!condition()) {
    if (gone()) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('a file that changes between the scan and the read', () => {
  const started: ChildProcess[] = [];

  afterEach(() => {
    // A bh that hangs (the old build on a FIFO) or a lease holder left behind: ours, by their pids.
    for (const child of started.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  /**
   * A directory of `f0` (leased) and `f1`; starts `bh backup` of it with one worker, and returns
   * once bh has scanned the directory and waits to open f0, before it opens f1.
   */
  async function backupStoppedBeforeSecondFile(name: string): Promise<{ dir: string; holder: LeaseHolder; running: Running }> {
    const dir = join(work, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'f0'), 'first file, read first');
    writeFileSync(join(dir, 'f1'), 'second file, as scanned');
    const holder = await holdLease(join(dir, 'f0'));
    started.push(holder.child);
    const running = startRunning(['backup', '--json', dir], { env: { ...repo.env, BH_WORKERS: '1' } });
    started.push(running.child);
    let ended = false;
    void running.done.then(() => (ended = true));
    await until(() => holder.output().includes('open'), 'bh to open f0', () => ended);
    return { dir, holder, running };
  }

  it('swapped for a FIFO after the scan: no hang, exit 3, the entry named, the snapshot saved without it', async () => {
    const { dir, holder, running } = await backupStoppedBeforeSecondFile('fifo');
    rmSync(join(dir, 'f1'));
    mkfifo(join(dir, 'f1'), 0o644);
    holder.release();
    const r = await running.done;
    expect(r.code, describeRun('backup', r)).toBe(3);
    expect(errorsOf(r)).toEqual([{ message_type: 'error', path: join(dir, 'f1'), error: expect.stringContaining('changed type during the backup: it is now a FIFO') }]);
    const restored = join(await restore(summaryOf<JsonLine>(r).snapshot_id!), dir);
    expect(readdirSync(restored)).toEqual(['f0']);
    expect(await compareTrees(dir, restored, { ignoreRootMtime: true, include: (rel) => rel.toString() === 'f0' })).toEqual([]);
  });

  it('replaced by another regular file after the scan: the snapshot records the file that was read', async () => {
    const { dir, holder, running } = await backupStoppedBeforeSecondFile('renamed');
    writeFileSync(join(dir, 'f1.new'), 'second file, renamed over the scanned one');
    utimesSync(join(dir, 'f1.new'), 1_000_000_000, 1_000_000_000);
    renameSync(join(dir, 'f1.new'), join(dir, 'f1'));
    holder.release();
    const r = await running.done;
    expect(r.code, describeRun('backup', r)).toBe(0);
    const restored = join(await restore(summaryOf<JsonLine>(r).snapshot_id!), dir);
    // The directory itself was scanned before the rename changed its mtime.
    expect(await compareTrees(dir, restored, { ignoreRootMtime: true })).toEqual([]);
  });

  it('SIGINT while the worker waits to open a file: exit 130 at once, no snapshot', { timeout: 20_000 }, async () => {
    const snapshotsBefore = readdirSync(join(repo.path, 'snapshots')).length;
    const { running } = await backupStoppedBeforeSecondFile('interrupt');
    // The lease is kept: the worker stays busy with f0 (the kernel would break the lease after 45 s).
    running.child.kill('SIGINT');
    const r = await running.done;
    expect(r.code, describeRun('interrupted backup', r)).toBe(130);
    expect(readdirSync(join(repo.path, 'snapshots'))).toHaveLength(snapshotsBefore);
    expect(readdirSync(join(repo.path, 'locks'))).toEqual([]);
  });
});
