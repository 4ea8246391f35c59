/**
 * A repository whose storage someone else can write to (issue 22's hostile trial): files planted
 * or padded there, without the key, must cost no hang and no unbounded memory, and each command
 * says which file is wrong. Real bh processes on a real local repository.
 */
import { execFileSync } from 'node:child_process';
import { readdir, rename, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { backupSnapshot, describeRun, initRepo, makeTempDir, randomFilesDir, removeDir, type TestRepo } from './helpers/cli.js';
import { packNames } from './helpers/repo-lib.js';
import { decodeKeyFile, keysToTry, type KeyFile } from '../src/repo/keyfile.js';

let tmp: string;
let repo: TestRepo;
let source: string;

beforeAll(async () => {
  tmp = await makeTempDir('bh-hostile-');
  repo = await initRepo(tmp);
  source = await randomFilesDir(tmp, 5, 20_000);
  await backupSnapshot(repo, source);
});

afterAll(async () => {
  await removeDir(tmp);
});

/** Replaces `path` by what `plant` makes there for the duration of `body`, then puts it back. */
async function withPlanted(path: string, plant: (path: string) => Promise<void>, body: () => Promise<void>): Promise<void> {
  await rename(path, `${path}.real`);
  try {
    await plant(path);
    await body();
  } finally {
    await rm(path, { force: true });
    await rename(`${path}.real`, path);
  }
}

const fifo = async (path: string): Promise<void> => void execFileSync('mkfifo', [path]);

describe('special files planted under repository names', () => {
  it('a FIFO as config: refused at once (exit 1), not waited on', async () => {
    await withPlanted(join(repo.path, 'config'), fifo, async () => {
      const r = await repo.run(['snapshots']);
      expect(r.code, describeRun('snapshots', r)).toBe(1);
      expect(r.stderr).toContain('config is a FIFO, not a regular file; refused');
    });
  });

  it('config as a symlink to /dev/zero: refused, memory untouched', async () => {
    await withPlanted(join(repo.path, 'config'), (path) => symlink('/dev/zero', path), async () => {
      const r = await repo.run(['snapshots']);
      expect(r.code, describeRun('snapshots', r)).toBe(1);
      expect(r.stderr).toContain('config is a device, not a regular file; refused');
    });
  });

  it('a FIFO as a pack: restore and check --read-data name the pack and end', async () => {
    // The largest: the one with the files' data (the trees' pack is a few hundred bytes).
    const packs = await Promise.all([...(await packNames(repo.path))].map(async (name) => ({ name, size: (await stat(join(repo.path, 'data', name.slice(0, 2), name))).size })));
    const pack = packs.sort((a, b) => b.size - a.size)[0]!.name;
    await withPlanted(join(repo.path, 'data', pack.slice(0, 2), pack), fifo, async () => {
      const restore = await repo.run(['restore', 'latest', '--target', join(tmp, `restore-${Date.now()}`)]);
      expect(restore.code, describeRun('restore', restore)).not.toBe(0);
      expect(restore.stderr).toContain(`data/${pack}: is not a regular file`);
      const check = await repo.run(['check', '--read-data']);
      expect(check.code, describeRun('check', check)).not.toBe(0);
      // Listings pass over it: it is no pack.
      expect(check.stdout + check.stderr).toContain(`data/${pack}: pack is listed in the index but missing from the repository`);
    });
  });
});

describe('files planted or padded without the key', () => {
  beforeEach(async () => {
    // The cache would answer instead of the repository.
    repo.env.BH_CACHE_DIR = join(tmp, `cache-${Date.now()}`);
  });

  it('a key file of 1 GiB is passed over: the real key still opens the repository', async () => {
    const planted = join(repo.path, 'keys', '0'.repeat(64));
    await writeFile(planted, '');
    await truncate(planted, 1024 ** 3);
    try {
      const r = await repo.run(['snapshots', '--json']);
      expect(r.code, describeRun('snapshots', r)).toBe(0);
      expect(JSON.parse(r.stdout)).toHaveLength(1);
    } finally {
      await rm(planted);
    }
  });

  it('a pack padded with 1 GiB of junk: ls still reads its trees; check names it as padded', async () => {
    const dataDir = join(repo.path, 'data');
    const paths: string[] = [];
    for (const sub of await readdir(dataDir)) for (const name of await readdir(join(dataDir, sub))) paths.push(join(dataDir, sub, name));
    const sizes = await Promise.all(paths.map(async (path) => (await stat(path)).size));
    try {
      // Every pack, so the tree pack is among them; sparse, so no disk is spent.
      for (const [i, path] of paths.entries()) await truncate(path, sizes[i]! + 1024 ** 3);
      const ls = await repo.run(['ls', 'latest']);
      expect(ls.code, describeRun('ls', ls)).toBe(0);
      expect(ls.stdout).toContain(source);
      const check = await repo.run(['check']);
      expect(check.code, describeRun('check', check)).not.toBe(0);
      expect(check.stdout + check.stderr).toMatch(/longer than its indexed blobs and header make it .*: padded/);
      const readData = await repo.run(['check', '--read-data']);
      expect(readData.stdout + readData.stderr).toMatch(/more than the \d+ it can be; refused unread/);
    } finally {
      for (const [i, path] of paths.entries()) await truncate(path, sizes[i]!);
    }
    const sound = await repo.run(['check', '--read-data']);
    expect(sound.code, describeRun('check', sound)).toBe(0);
  });
});

describe('key files that ask for too much work', () => {
  const scryptFile = (N: number, r: number, p: number): Buffer =>
    Buffer.from(JSON.stringify({ version: 1, created: '2026-01-01T00:00:00Z', host: 'x', username: 'x', salt: 'AAAA', kdf: 'scrypt', N, r, p, data: 'AAAA' }));

  it('beyond the bounds of FORMAT.md §2 are refused by the decoder, naming the parameters', () => {
    // The hostile trial's key file: 1 GiB and 41 s per command.
    expect(() => decodeKeyFile(scryptFile(2 ** 20, 8, 16), 'keys/x')).toThrow('keys/x: key file asks for scrypt N=1048576 r=8 p=16, beyond what bh allows');
    expect(() => decodeKeyFile(scryptFile(2 ** 23, 1, 1), 'keys/x')).toThrow(/beyond what bh allows/);
    expect(() => decodeKeyFile(scryptFile(1024, 1, 1025), 'keys/x')).toThrow(/beyond what bh allows/);
    expect(() => decodeKeyFile(scryptFile(1000, 8, 1), 'keys/x')).toThrow(/beyond what bh allows/);
    for (const [N, r, p] of [[32768, 8, 1], [2 ** 22, 2, 2], [2 ** 20, 8, 2]] as const) expect(decodeKeyFile(scryptFile(N, r, p), 'keys/x').kdf).toBe('scrypt');
  });

  it('are tried last, and only within one budget of work', () => {
    const file = (name: string, N: number, p = 1): { name: string; file: KeyFile } => ({ name, file: decodeKeyFile(scryptFile(N, 8, p), name) });
    const planted = [1, 2, 3, 4, 5].map((i) => file(`planted-${i}`, 2 ** 20, 2));
    const real = file('real', 32768);
    const { tried, untried } = keysToTry([...planted, real]);
    expect(tried[0]!.name).toBe('real');
    // The budget (2^26) holds the real key and three of the heaviest allowed (2^24 each).
    expect(tried).toHaveLength(4);
    expect(untried.map((t) => t.name)).toEqual(['planted-4', 'planted-5']);
  });

  it('a planted key file beyond the bounds: a warning names it, the real key opens (exit 0)', async () => {
    const planted = join(repo.path, 'keys', '1'.repeat(64));
    await writeFile(planted, scryptFile(2 ** 20, 8, 16));
    try {
      const r = await repo.run(['snapshots', '--json']);
      expect(r.code, describeRun('snapshots', r)).toBe(0);
      expect(r.stderr).toContain(`warning: keys/${'1'.repeat(64)}: key file asks for scrypt N=1048576 r=8 p=16, beyond what bh allows`);
    } finally {
      await rm(planted);
    }
  });
});
