/**
 * The local cache (README.md "Local cache") and tree reads by pack, through the real CLI.
 *
 * What reaches the repository is measured on the server side: an S3 repository (s3rver behind
 * the test guard of tests/helpers/s3-server.ts) whose guard logs every request it forwards.
 * S3 rather than SFTP because every read is one logged GET there, so the count is exact; an
 * SFTP server's log would count open/read/close calls of OpenSSH's internal-sftp, which say
 * the same less directly. Cache damage, permissions, --no-cache and an unwritable cache are
 * checked on local repositories against the file system.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bhWithoutDacOverride, expectOk, initRepo, initRepoAt, makeTempDir, removeDir, summaryOf, type TestRepo } from './helpers/cli.js';
import { startS3Server, type S3TestServer } from './helpers/s3-server.js';
import { compareTrees } from './helpers/tree-compare.js';

const PASSWORD = 'correct horse battery staple';
/** Directories in the source: each is one tree the next backup reads from its parent. */
const DIRS = 40;

let server: S3TestServer;
let tmp: string;
let src: string;

beforeAll(async () => {
  server = await startS3Server();
  tmp = await makeTempDir('bh-cache-');
  src = join(tmp, 'src');
  for (let d = 0; d < DIRS; d++) {
    const dir = join(src, `dir-${d}`, 'sub');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'a.txt'), `file a of ${d}\n`.repeat(50));
    await writeFile(join(src, `dir-${d}`, 'b.bin'), createHash('sha256').update(String(d)).digest());
  }
});

afterAll(async () => {
  await server?.stop();
  if (tmp) await removeDir(tmp);
});

/** GET requests the S3 server got for objects in `folder` of the repository at `prefix`. */
function getsOf(prefix: string, folder: string): string[] {
  return server.requests.filter((line) => line.startsWith(`GET /${server.bucket}/${prefix}/${folder}/`));
}

/** Pack files in the S3 repository at `prefix` (s3rver keeps each object in a file `<key>._S3rver_object`). */
async function packCount(prefix: string): Promise<number> {
  const root = join(server.dataDir, server.bucket, prefix, 'data');
  return (await filesBelow(root)).filter((f) => f.endsWith('._S3rver_object')).length;
}

/** The last command read each pack at most once, and none but tree packs (all but the first backup's one data pack). */
async function expectOneReadPerTreePack(prefix: string): Promise<void> {
  const gets = getsOf(prefix, 'data');
  expect(gets.length).toBeGreaterThan(0);
  expect(new Set(gets).size).toBe(gets.length);
  expect(gets.length).toBeLessThanOrEqual((await packCount(prefix)) - 1);
}

/** Every file below `dir`, by path relative to it. */
async function filesBelow(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(dir, rel), { withFileTypes: true })) {
    const path = join(rel, entry.name);
    if (entry.isDirectory()) out.push(...(await filesBelow(dir, path)));
    else out.push(path);
  }
  return out;
}

/** A cache file's path (`data/xx/name`, `index/name`) as the repository names it (`data/name`). */
function refOf(file: string): string {
  const parts = file.split('/');
  return `${parts[0]}/${parts[parts.length - 1]}`;
}

/** The one repository folder below a cache dir (named by the repository id). */
async function repoCacheOf(cacheDir: string): Promise<string> {
  const folders = (await readdir(cacheDir, { withFileTypes: true })).filter((e) => e.isDirectory());
  expect(folders.map((f) => f.name)).toHaveLength(1);
  expect(folders[0]!.name).toMatch(/^[0-9a-f]{64}$/);
  return join(cacheDir, folders[0]!.name);
}

async function backup(repo: TestRepo, flags: string[]): Promise<Record<string, number>> {
  return summaryOf<Record<string, number>>(expectOk(await repo.run(['backup', src, '--json', ...flags]), `backup ${flags.join(' ')}`));
}

describe('no-change backup to S3 fetches (almost) nothing', () => {
  it('with the cache: no GET of a pack, index or snapshot; without it: one GET per tree pack, not one per tree', async () => {
    const prefix = 'nochange';
    const repo = await initRepoAt(`s3:${server.bucket}/${prefix}`, { ...server.env, BH_PASSWORD: PASSWORD });
    const cacheA = join(tmp, 'cache-host-a');
    const first = await backup(repo, ['--cache-dir', cacheA]);
    expect(first['dirs_new']).toBe(1 + 2 * DIRS);

    // Same host again: everything it needs was written through into its cache.
    server.requests.length = 0;
    const second = await backup(repo, ['--cache-dir', cacheA]);
    expect(second['files_unmodified']).toBe(2 * DIRS);
    expect(second['dirs_unmodified']).toBe(1 + 2 * DIRS);
    expect(getsOf(prefix, 'data')).toEqual([]);
    expect(getsOf(prefix, 'index')).toEqual([]);
    expect(getsOf(prefix, 'snapshots')).toEqual([]);

    // Without any cache the parent's 81 trees still come from one read per tree pack. (Each
    // backup may add a small tree pack: the trees of the source's ancestors change as other
    // folders come and go in /tmp. The one data pack is never read.)
    server.requests.length = 0;
    const uncached = await backup(repo, ['--no-cache']);
    expect(uncached['files_unmodified']).toBe(2 * DIRS);
    await expectOneReadPerTreePack(prefix);

    // Another host (an empty cache) fetches each file once, and nothing the time after.
    const cacheB = join(tmp, 'cache-host-b');
    server.requests.length = 0;
    await backup(repo, ['--cache-dir', cacheB]);
    await expectOneReadPerTreePack(prefix);
    expect(getsOf(prefix, 'index').length).toBeGreaterThan(0);
    server.requests.length = 0;
    await backup(repo, ['--cache-dir', cacheB]);
    expect(getsOf(prefix, 'data')).toEqual([]);
    expect(getsOf(prefix, 'index')).toEqual([]);
    expect(getsOf(prefix, 'snapshots')).toEqual([]);

    // The cached files are the repository's own bytes, named by their SHA-256.
    const cached = await filesBelow(await repoCacheOf(cacheB));
    for (const file of cached) {
      const object = await readFile(server.objectFile(server.bucket, `${prefix}/${file}`));
      expect(createHash('sha256').update(object).digest('hex'), file).toBe(file.split('/').pop());
    }
    expect(cached.filter((f) => f.startsWith('data/')).length).toBeGreaterThan(0);
  });
});

describe('local cache on a local repository', () => {
  let repo: TestRepo;
  let cacheDir: string;
  let cacheRoot: string;

  beforeAll(async () => {
    repo = await initRepo(join(tmp, 'local'));
    cacheDir = join(tmp, 'cache-local');
    await backup(repo, ['--cache-dir', cacheDir]);
    cacheRoot = await repoCacheOf(cacheDir);
  });

  it('keeps folders 0700 and files 0600, tagged with CACHEDIR.TAG', async () => {
    const tag = await readFile(join(cacheDir, 'CACHEDIR.TAG'), 'utf8');
    expect(tag.startsWith('Signature: 8a477f597d28d172789f06886806bc55')).toBe(true);
    const check = async (dir: string): Promise<void> => {
      expect((await stat(dir)).mode & 0o777, dir).toBe(0o700);
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await check(path);
        else expect((await stat(path)).mode & 0o777, path).toBe(0o600);
      }
    };
    await check(cacheDir);
    const files = await filesBelow(cacheRoot);
    for (const folder of ['data', 'index', 'snapshots']) expect(files.some((f) => f.startsWith(`${folder}/`)), folder).toBe(true);
  });

  it('a flipped byte or a truncated file in the cache is dropped and fetched again; results stay right', async () => {
    const files = await filesBelow(cacheRoot);
    const pack = files.find((f) => f.startsWith('data/'))!;
    const index = files.find((f) => f.startsWith('index/'))!;
    const snapshot = files.find((f) => f.startsWith('snapshots/'))!;
    const packBytes = await readFile(join(cacheRoot, pack));
    packBytes[Math.floor(packBytes.length / 2)]! ^= 0x01;
    await writeFile(join(cacheRoot, pack), packBytes);
    await truncate(join(cacheRoot, index), 10);
    const snapshotBytes = await readFile(join(cacheRoot, snapshot));
    snapshotBytes[0]! ^= 0x80;
    await writeFile(join(cacheRoot, snapshot), snapshotBytes);

    // A backup reads all three: index, parent snapshot, parent trees (change detection).
    const run = expectOk(await repo.run(['backup', src, '--json', '--cache-dir', cacheDir]), 'backup over a damaged cache');
    const summary = summaryOf<Record<string, number>>(run);
    expect(summary['files_unmodified']).toBe(2 * DIRS);
    expect(summary['files_new'] + summary['files_changed']).toBe(0);
    for (const file of [pack, index, snapshot]) expect(run.stderr).toContain(`cached copy of ${refOf(file)} `);
    expect(run.stderr).not.toContain('ignoring parent tree');

    // Refetched and stored again, whole.
    for (const file of [pack, index, snapshot]) {
      const bytes = await readFile(join(cacheRoot, file));
      expect(createHash('sha256').update(bytes).digest('hex'), file).toBe(file.split('/').pop());
    }

    // Damage again: ls walks the trees, restore reads index and snapshot; both stay right.
    await truncate(join(cacheRoot, pack), 100);
    const listed = expectOk(await repo.run(['ls', 'latest', '--cache-dir', cacheDir]), 'ls over a damaged cache');
    expect(listed.stderr).toContain(`cached copy of ${refOf(pack)} `);
    for (let d = 0; d < DIRS; d++) expect(listed.stdout).toContain(join(src, `dir-${d}`, 'sub', 'a.txt'));
    await truncate(join(cacheRoot, index), 0);
    const target = join(tmp, 'restored');
    const restored = expectOk(await repo.run(['restore', 'latest', '--target', target, '--cache-dir', cacheDir]), 'restore over a damaged cache');
    expect(restored.stderr).toContain(`cached copy of ${refOf(index)} `);
    expect(await compareTrees(src, join(target, src))).toEqual([]);
  });

  it('removes the copy of a snapshot another host forgot, at the next listing', async () => {
    expectOk(await repo.run(['backup', src, '--cache-dir', cacheDir]), 'backup');
    const snapshots = (await readdir(join(cacheRoot, 'snapshots'))).sort();
    expect(snapshots.length).toBeGreaterThanOrEqual(2);
    const gone = snapshots[0]!;
    // "Another host": a command with a cache of its own.
    expectOk(await repo.run(['forget', gone, '--cache-dir', join(tmp, 'cache-other')]), 'forget');
    expect(await readdir(join(cacheRoot, 'snapshots'))).toContain(gone);
    expectOk(await repo.run(['snapshots', '--cache-dir', cacheDir]), 'snapshots');
    expect(await readdir(join(cacheRoot, 'snapshots'))).not.toContain(gone);
    expect((await readdir(join(cacheRoot, 'snapshots'))).length).toBe(snapshots.length - 1);
  });

  it('--no-cache creates no cache folder, whether named by flag or by BH_CACHE_DIR', async () => {
    const byFlag = join(tmp, 'never-flag');
    const byEnv = join(tmp, 'never-env');
    expectOk(await repo.run(['backup', src, '--no-cache', '--cache-dir', byFlag]), 'backup --no-cache');
    expectOk(await repo.run(['snapshots', '--no-cache'], { env: { BH_CACHE_DIR: byEnv } }), 'snapshots --no-cache');
    await expect(stat(byFlag)).rejects.toThrow(/ENOENT/);
    await expect(stat(byEnv)).rejects.toThrow(/ENOENT/);
  });

  it('honours BH_CACHE_DIR, then XDG_CACHE_HOME', async () => {
    const xdg = join(tmp, 'xdg');
    expectOk(await repo.run(['snapshots'], { env: { BH_CACHE_DIR: '', XDG_CACHE_HOME: xdg } }), 'snapshots with XDG_CACHE_HOME');
    expect((await filesBelow(await repoCacheOf(join(xdg, 'bh')))).some((f) => f.startsWith('snapshots/'))).toBe(true);
  });

  it('a cache folder that cannot be written is a warning, and the command succeeds', async () => {
    const readOnly = join(tmp, 'cache-read-only');
    await mkdir(readOnly, { mode: 0o700 });
    await chmod(readOnly, 0o500);
    const env = { ...repo.env, BH_CACHE_DIR: readOnly };
    const run = await bhWithoutDacOverride(env, ['backup', src, '--json']);
    expectOk(run, 'backup with a read-only cache folder');
    expect(summaryOf<Record<string, number>>(run)['files_unmodified']).toBe(2 * DIRS);
    expect(run.stderr).toMatch(/warning: cannot use the cache folder .*cache-read-only/);
    expect(await readdir(readOnly)).toEqual([]);

    // A folder that exists but whose files cannot be written: warned about once, still a success.
    const noWrite = join(tmp, 'cache-no-write');
    await mkdir(noWrite, { mode: 0o700 });
    const first = await bhWithoutDacOverride({ ...env, BH_CACHE_DIR: noWrite }, ['snapshots']);
    expectOk(first, 'snapshots');
    const root = await repoCacheOf(noWrite);
    for (const folder of ['snapshots', 'index', 'data']) await chmod(join(root, folder), 0o500);
    const second = await bhWithoutDacOverride({ ...env, BH_CACHE_DIR: noWrite }, ['backup', src]);
    expectOk(second, 'backup with unwritable cache folders');
    expect(second.stderr.match(/warning: cannot write to the cache/g)).toHaveLength(1);
  });
});
