/**
 * The CLI on an S3 repository (s3rver in a child process, tests/helpers/s3-server.ts): init,
 * backup, snapshots, restore, check --read-data, checked against the file system and against
 * s3rver's own data directory. Then faults: the server is killed in the middle of a backup and in
 * the middle of a restore. bh is frozen (SIGSTOP) at the moment the test picks, so the kill lands
 * mid-operation however loaded the machine is; after SIGCONT its next request finds no server.
 * It must exit non-zero with a message naming the S3 operation and key (no stack trace); once the
 * server is back on the same port and directory, `check --read-data` passes, the rerun succeeds
 * and the restore is byte-exact.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { expectOk, hashTree, initRepoAt, makeTempDir, removeDir, type RunResult, startBh, summaryOf, type TestRepo } from './helpers/cli.js';
import { startS3Server, type S3TestServer } from './helpers/s3-server.js';
import { compareTrees } from './helpers/tree-compare.js';

const MiB = 1024 * 1024;
const PASSWORD = 'correct horse battery staple';

let server: S3TestServer;
let tmp: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  server = await startS3Server();
  tmp = await makeTempDir('bh-s3-cli-');
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await server?.stop();
  if (tmp) await removeDir(tmp);
});

/** Objects s3rver holds under `prefix/folder` (recursively), as key suffixes. */
function objectsUnder(prefix: string, folder: string): string[] {
  const root = join(server.dataDir, server.bucket, prefix, folder);
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name), `${rel}${entry.name}/`);
      else if (entry.name.endsWith('._S3rver_object')) out.push(rel + entry.name.slice(0, -'._S3rver_object'.length));
    }
  };
  walk(root, '');
  return out;
}

async function repoAt(prefix: string): Promise<TestRepo> {
  return initRepoAt(`s3:${server.bucket}/${prefix}`, { ...server.env, BH_PASSWORD: PASSWORD });
}

describe('bh on S3: round trip', () => {
  let repo: TestRepo;
  let src: string;

  beforeAll(async () => {
    repo = await repoAt('roundtrip');
    src = join(tmp, 'src');
    await mkdir(join(src, 'sub'), { recursive: true });
    await writeFile(join(src, 'multi-chunk.bin'), randomBytes(2 * MiB + 333));
    await writeFile(join(src, 'empty'), '');
    await writeFile(join(src, 'sub', 'small.txt'), 'hello, s3\n');
    await symlink('../multi-chunk.bin', join(src, 'sub', 'link'));
  });

  it('init wrote config and a key into the bucket', () => {
    expect(existsSync(server.objectFile(server.bucket, 'roundtrip/config'))).toBe(true);
    expect(objectsUnder('roundtrip', 'keys')).toHaveLength(1);
  });

  it('backup, snapshots, restore (equal on the file system), check --read-data', async () => {
    const backup = summaryOf(expectOk(await repo.run(['backup', '--json', src]), 'backup'));
    const id = backup['snapshot_id'] as string;
    expect(id).toMatch(/^[0-9a-f]{64}$/);

    // The packs, index and snapshot are objects in s3rver's bucket, at the local layout.
    const packs = objectsUnder('roundtrip', 'data');
    expect(packs.length).toBeGreaterThan(0);
    for (const key of packs) expect(key).toMatch(/^([0-9a-f]{2})\/\1[0-9a-f]{62}$/);
    expect(objectsUnder('roundtrip', 'index').length).toBeGreaterThan(0);
    expect(objectsUnder('roundtrip', 'snapshots')).toEqual([id]);
    const stored = packs.reduce((n, key) => n + statSync(server.objectFile(server.bucket, `roundtrip/data/${key}`)).size, 0);
    expect(stored).toBeGreaterThan(2 * MiB);

    const snapshots = expectOk(await repo.run(['snapshots', '--json']), 'snapshots');
    expect(snapshots.stdout).toContain(id);

    const target = join(tmp, 'restored');
    expectOk(await repo.run(['restore', id, '--target', target]), 'restore');
    expect(await compareTrees(src, join(target, src))).toEqual([]);

    expectOk(await repo.run(['check', '--read-data']), 'check --read-data');
  });
});

// ---- faults --------------------------------------------------------------------------------------

interface Running {
  child: ChildProcess;
  done: Promise<RunResult>;
}

function start(repo: TestRepo, args: string[]): Running {
  // Short retry bounds: the server stays down, so every retry is bound to fail.
  const child = startBh(args, { env: { ...repo.env, BH_RETRY_ATTEMPTS: '2', BH_RETRY_DELAY_MS: '50' } });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin!.end();
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

async function until(what: string, condition: () => boolean, running: Running): Promise<void> {
  const deadline = Date.now() + 60_000;
  let exited = false;
  void running.done.then(() => (exited = true));
  while (!condition()) {
    if (exited) throw new Error(`bh exited before ${what}: ${JSON.stringify(await running.done)}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Freezes bh, kills the server, lets bh go on against nothing; returns how bh ended. */
async function killServerUnder(running: Running): Promise<RunResult> {
  running.child.kill('SIGSTOP');
  try {
    await server.kill();
  } finally {
    running.child.kill('SIGCONT');
  }
  return running.done;
}

/**
 * bh failed as a user should see it: non-zero, a line naming the S3 operation and key (restore
 * names the file it could not finish first), no stack trace.
 */
function expectClearS3Failure(r: RunResult, prefix: string): void {
  expect(r.code, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).not.toBe(0);
  expect(r.signal).toBeNull();
  expect(r.stderr).toMatch(new RegExp(`^(bh: )?error: (\\S+: )?((write|read|stat|list|remove) \\S+: )?s3:${server.bucket}/${prefix}: S3 [A-Za-z]+( \\d+/\\d+)? ${prefix}/\\S+ failed: `, 'm'));
  // No stack trace.
  expect(r.stderr).not.toMatch(/^\s+at /m);
}

describe('bh on S3: the server dies mid-operation', () => {
  let repo: TestRepo;
  let src: string;
  let srcHashes: Map<string, string>;
  const prefix = 'faults';

  beforeAll(async () => {
    repo = await repoAt(prefix);
    src = join(tmp, 'fault-src');
    await mkdir(src);
    // Incompressible, a bit over two 16 MiB packs: the first pack lands long before the end.
    for (let i = 0; i < 6; i++) await writeFile(join(src, `f${i}.bin`), randomBytes(6 * MiB + i));
    srcHashes = await hashTree(src);
  });

  it('a backup: clear error; after restart check passes, the rerun succeeds, the restore is exact', async () => {
    const running = start(repo, ['backup', '--json', src]);
    await until('the first pack lands in the bucket', () => objectsUnder(prefix, 'data').length > 0, running);
    const failed = await killServerUnder(running);
    expectClearS3Failure(failed, prefix);
    expect(objectsUnder(prefix, 'snapshots')).toEqual([]);

    await server.restart();
    expectOk(await repo.run(['check', '--read-data']), 'check after the cut backup');
    const rerun = summaryOf(expectOk(await repo.run(['backup', '--json', src]), 'rerun backup'));
    const id = rerun['snapshot_id'] as string;
    expect(objectsUnder(prefix, 'snapshots')).toEqual([id]);
    expectOk(await repo.run(['check', '--read-data']), 'check after the rerun');

    const target = join(tmp, 'fault-restore-1');
    expectOk(await repo.run(['restore', id, '--target', target]), 'restore');
    expect(await hashTree(join(target, src))).toEqual(srcHashes);
  }, 180_000);

  it('a restore: clear error; after restart the repository checks clean and the restore is exact', async () => {
    const target = join(tmp, 'fault-restore-2');
    const running = start(repo, ['restore', 'latest', '--target', target]);
    const restoredSome = (): boolean => {
      const dir = join(target, src);
      if (!existsSync(dir)) return false;
      return readdirSync(dir).some((name) => statSync(join(dir, name)).size > 0);
    };
    await until('the first restored bytes', restoredSome, running);
    const failed = await killServerUnder(running);
    expectClearS3Failure(failed, prefix);

    await server.restart();
    expectOk(await repo.run(['check', '--read-data']), 'check after the cut restore');
    const again = join(tmp, 'fault-restore-3');
    expectOk(await repo.run(['restore', 'latest', '--target', again]), 'restore again');
    expect(await hashTree(join(again, src))).toEqual(srcHashes);
  }, 180_000);
});
