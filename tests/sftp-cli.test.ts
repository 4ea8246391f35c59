/**
 * The real CLI on an SFTP repository served by a real sshd (tests/helpers/sshd.ts): init, backup,
 * snapshots, restore, check --read-data, with the files checked on the server's disk; a killed
 * write's temporary file on the server, noted by check and removed by prune; then sshd
 * SIGKILLed (with its per-connection children) in the middle of a backup and of a restore: bh
 * fails with a clear message naming sftp and the operation, the repository checks clean once
 * sshd is back, and the rerun succeeds and restores byte for byte.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { describeRun, hashTree, initRepoAt, makeTempDir, removeDir, signal, startRunning, waitFor, type RunResult, type TestRepo } from './helpers/cli.js';
import { startSshd, type Sshd } from './helpers/sshd.js';
import { compareTrees } from './helpers/tree-compare.js';

const MiB = 1024 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;

let sshd: Sshd;
let work: string;

function expectOk(r: RunResult, what: string): RunResult {
  expect(r.code, describeRun(what, r)).toBe(0);
  return r;
}

function filesIn(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => HEX64.test(n));
  } catch {
    return [];
  }
}

function packsIn(repoPath: string): string[] {
  return readdirSync(join(repoPath, 'data')).flatMap((sub) => filesIn(join(repoPath, 'data', sub)));
}

function summaryOf(r: RunResult): { snapshot_id: string; bytes_added: number } {
  const line = r.stdout.split('\n').find((l) => l.includes('"message_type":"summary"'));
  if (!line) throw new Error(`no summary: ${describeRun('backup', r)}`);
  return JSON.parse(line) as { snapshot_id: string; bytes_added: number };
}

/** A repository on the server at `path` (an absolute folder on this machine, served by sshd). */
function sftpRepo(path: string): Promise<TestRepo> {
  return initRepoAt(sshd.url(path), { BH_PASSWORD: 'sftp test password' }, ['--ssh-key', sshd.userKey, '--known-hosts', sshd.knownHosts]);
}

beforeAll(async () => {
  sshd = await startSshd();
  work = await makeTempDir('bh-sftp-cli-');
});

afterAll(async () => {
  await sshd?.stop();
  if (work) await removeDir(work);
});

/** The server stays down while bh runs: every retry is bound to fail, so keep them few and quick. */
const SHORT_RETRIES = { BH_RETRY_ATTEMPTS: '2', BH_RETRY_DELAY_MS: '50' };

describe('bh on an SFTP repository', () => {
  it('init, backup, snapshots, restore, check --read-data; the files are on the server under the repository path', async () => {
    const src = join(work, 'tree');
    mkdirSync(join(src, 'sub', 'deeper'), { recursive: true });
    writeFileSync(join(src, 'small.txt'), 'hello over sftp\n');
    writeFileSync(join(src, 'empty'), '');
    writeFileSync(join(src, 'sub', 'multi-chunk.bin'), randomBytes(2 * MiB + 12345));
    writeFileSync(join(src, 'sub', 'deeper', 'text'), 'x'.repeat(100_000));
    symlinkSync('../small.txt', join(src, 'sub', 'link'));

    const repoPath = join(sshd.dir, 'roundtrip-repo');
    const repo = await sftpRepo(repoPath);
    // init made the layout on the server's disk.
    expect(readdirSync(repoPath).sort()).toEqual(['config', 'data', 'index', 'keys', 'locks', 'snapshots']);
    expect(statSync(join(repoPath, 'config')).mode & 0o777).toBe(0o600);

    const backup = expectOk(await repo.run(['backup', '--json', src]), 'backup');
    const { snapshot_id: id } = summaryOf(backup);
    expect(filesIn(join(repoPath, 'snapshots'))).toEqual([id]);
    expect(filesIn(join(repoPath, 'index')).length).toBeGreaterThanOrEqual(1);
    const packs = packsIn(repoPath);
    expect(packs.length).toBeGreaterThanOrEqual(1);
    const packBytes = packs.reduce((n, p) => n + statSync(join(repoPath, 'data', p.slice(0, 2), p)).size, 0);
    expect(packBytes).toBeGreaterThan(2 * MiB);
    expect(filesIn(join(repoPath, 'locks'))).toEqual([]);
    // No temp files anywhere.
    expect(readdirSync(repoPath, { recursive: true }).filter((n) => String(n).includes('.tmp-'))).toEqual([]);

    const snapshots = expectOk(await repo.run(['snapshots', '--json']), 'snapshots');
    expect(snapshots.stdout).toContain(id);
    // The same folder opened as a local repository shows the same snapshot: one layout.
    const local = expectOk(await repo.run(['snapshots', '--json', '-r', repoPath]), 'snapshots (local path)');
    expect(local.stdout).toContain(id);

    const target = join(work, 'restored');
    expectOk(await repo.run(['restore', id, '--target', target]), 'restore');
    expect(await compareTrees(src, join(target, src))).toEqual([]);
    expectOk(await repo.run(['check', '--read-data']), 'check --read-data');
  });

  it('a temporary file a killed write left on the server: check notes it, prune removes it once older than 30 minutes', async () => {
    const repoPath = join(sshd.dir, 'temporaries-repo');
    const repo = await sftpRepo(repoPath);
    const relative = `data/7c/.tmp-${randomBytes(12).toString('hex')}`;
    const leftover = join(repoPath, relative);
    writeFileSync(leftover, randomBytes(70_000), { mode: 0o600 });
    const old = new Date(Date.now() - 31 * 60_000);
    utimesSync(leftover, old, old);

    const check = expectOk(await repo.run(['check']), 'check');
    expect(check.stdout).toContain(`note: ${relative}: temporary file of an interrupted write (70000 bytes, last written ${new Date(Math.floor(old.getTime() / 1000) * 1000).toISOString()}); harmless, prune removes it`);
    const prune = expectOk(await repo.run(['prune']), 'prune');
    expect(prune.stdout).toContain('remove 1 temporary files of interrupted writes');
    expect(existsSync(leftover)).toBe(false);
  });

  it('a wrong host key or login stops bh with exit 1 and a message, before anything is written', async () => {
    const repoPath = join(sshd.dir, 'refused-repo');
    const env = { BH_REPO: sshd.url(repoPath), BH_PASSWORD: 'x' };
    const unknown = await startRunning(['init', '--ssh-key', sshd.userKey, '--known-hosts', join(work, 'empty_known_hosts')], { env }).done;
    expect(unknown.code, describeRun('init', unknown)).toBe(1);
    expect(unknown.stderr).toMatch(/bh: error: sftp: the host key of \[127\.0\.0\.1\]:\d+ is not known: the server offered ssh-ed25519 SHA256:/);
    expect(unknown.stderr).not.toMatch(/\n\s+at /);
    // The host's private key is a valid key that root's authorized_keys does not hold.
    const refused = await startRunning(['init', '--ssh-key', join(sshd.dir, 'host_key_0'), '--known-hosts', sshd.knownHosts], { env }).done;
    expect(refused.code, describeRun('init', refused)).toBe(1);
    expect(refused.stderr).toContain(`root@127.0.0.1:${sshd.port} refused the login as root`);
    expect(() => statSync(repoPath)).toThrow();
  });
});

describe('sshd killed mid-operation', () => {
  let src: string;
  let srcHashes: Map<string, string>;
  let repo: TestRepo;
  let repoPath: string;
  let snapshotId: string;

  beforeAll(async () => {
    src = join(work, 'big');
    mkdirSync(src);
    // ~40 MiB of incompressible data: several 16 MiB packs, so uploads are under way for a while.
    for (let i = 0; i < 10; i++) writeFileSync(join(src, `f${i}.bin`), randomBytes(4 * MiB + i * 1000));
    srcHashes = await hashTree(src);
    repoPath = join(sshd.dir, 'fault-repo');
    repo = await sftpRepo(repoPath);
  });

  it('during a backup: bh fails naming sftp and the operation; after a restart check passes and a rerun succeeds', async () => {
    const running = startRunning(['backup', '--json', src, '--ssh-key', sshd.userKey, '--known-hosts', sshd.knownHosts], { env: { ...repo.env, ...SHORT_RETRIES } });
    await waitFor(running, () => packsIn(repoPath).length >= 1, 'the first pack on the server');
    sshd.kill();
    signal(running, 'SIGCONT');
    const r = await running.done;
    expect(r.code, describeRun('backup with sshd killed', r)).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toMatch(/bh: error: sftp[: ].*(writing|reading|listing|removing|looking up|connect)/);
    expect(r.stderr, 'a message, not a stack trace').not.toMatch(/\n\s+at /);
    expect(filesIn(join(repoPath, 'snapshots'))).toEqual([]);

    await sshd.start();
    expectOk(await repo.run(['check', '--read-data']), 'check after the kill');
    const rerun = expectOk(await repo.run(['backup', '--json', src]), 'backup rerun');
    snapshotId = summaryOf(rerun).snapshot_id;
    const target = join(work, 'after-backup-kill');
    expectOk(await repo.run(['restore', snapshotId, '--target', target]), 'restore');
    expect(await hashTree(join(target, src))).toEqual(srcHashes);
  });

  it('during a restore: bh fails naming sftp; after a restart the restore works', async () => {
    const target = join(work, 'killed-restore');
    const running = startRunning(['restore', snapshotId, '--target', target, '--ssh-key', sshd.userKey, '--known-hosts', sshd.knownHosts], { env: { ...repo.env, ...SHORT_RETRIES } });
    const anyFile = (): boolean => {
      try {
        return readdirSync(join(target, src)).length > 0;
      } catch {
        return false;
      }
    };
    await waitFor(running, anyFile, 'the first restored file');
    sshd.kill();
    signal(running, 'SIGCONT');
    const r = await running.done;
    // The restorer reports each file it could not restore and exits 3 (incomplete).
    expect(r.code, describeRun('restore with sshd killed', r)).toBe(3);
    expect(r.stderr).toMatch(/^error: .*: sftp sftp:\/\/root@127\.0\.0\.1:\d+\/\/.*: reading data\/[0-9a-f]{64} failed: (connection to root@127\.0\.0\.1:\d+ lost|cannot connect to)/m);
    expect(r.stderr).toMatch(/entries could not be restored/);
    expect(r.stderr, 'a message, not a stack trace').not.toMatch(/\n\s+at /);

    await sshd.start();
    const again = join(work, 'restore-again');
    expectOk(await repo.run(['restore', snapshotId, '--target', again]), 'restore after restart');
    expect(await hashTree(join(again, src))).toEqual(srcHashes);
    expectOk(await repo.run(['check']), 'check');
  });
});
