/**
 * Streams from commands and back out: `bh backup --stdin-from-command -- CMD ARGS…` (its exit
 * status and signals checked, its stderr shown) and `bh dump` (a file byte for byte, a
 * directory as a tar that GNU tar extracts to the same files, modes and links).
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readlinkSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BH, type TestRepo, describeRun, initRepo, makeTempDir, removeDir, startRunning } from './helpers/cli.js';

let tmp: string;
let repo: TestRepo;

beforeAll(async () => {
  tmp = await makeTempDir('bh-dumps-cmd-');
  repo = await initRepo(tmp);
});

afterAll(async () => {
  if (tmp) await removeDir(tmp);
});

/** Runs bh with its standard output going straight into `file` (bytes as they are); exit code and stderr. */
function bhInto(file: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const fd = openSync(file, 'w');
  const child = spawn(process.execPath, [BH, ...args], { env: { ...process.env, ...repo.env }, stdio: ['ignore', fd, 'pipe'] });
  closeSync(fd);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

async function snapshotCount(): Promise<number> {
  const r = await repo.run(['snapshots', '--json']);
  return (JSON.parse(r.stdout) as unknown[]).length;
}

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('bh backup --stdin-from-command', () => {
  it('stores the command\'s output as /NAME, shows its stderr, and bh dump gives the bytes back', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const input = join(tmp, 'data.bin');
    writeFileSync(input, data);
    const r = await repo.run(['backup', '--stdin-filename', 'data.bin', '--json', '--stdin-from-command', '--', 'sh', '-c', 'cat "$0"; echo "progress note" >&2', input]);
    expect(r.code, describeRun('backup', r)).toBe(0);
    expect(r.stderr).toContain('progress note');
    const list = await repo.run(['snapshots', '--json']);
    const [snapshot] = JSON.parse(list.stdout) as { id: string; paths: string[]; summary: { total_bytes: number } }[];
    expect(snapshot!.paths).toEqual(['/data.bin']);
    expect(snapshot!.summary.total_bytes).toBe(data.length);
    const out = join(tmp, 'dumped.bin');
    const dumped = await bhInto(out, ['dump', snapshot!.id, '/data.bin']);
    expect(dumped.code, dumped.stderr).toBe(0);
    expect(sha(readFileSync(out))).toBe(sha(data));
  });

  it('a command that exits non-zero fails the backup: exit 1, its stderr shown, no snapshot', async () => {
    const before = await snapshotCount();
    const r = await repo.run(['backup', '--stdin-filename', 'x', '--stdin-from-command', '--', 'sh', '-c', 'echo half; echo "disk on fire" >&2; exit 3']);
    expect(r.code, describeRun('failing command', r)).toBe(1);
    expect(r.stderr).toContain('disk on fire\n');
    expect(r.stderr).toMatch(/bh: error: the command 'sh -c .*': sh exited with status 3\n/);
    expect(await snapshotCount()).toBe(before);
  });

  it('a command killed by a signal fails the backup: exit 1, no snapshot', async () => {
    const before = await snapshotCount();
    const r = await repo.run(['backup', '--stdin-filename', 'x', '--stdin-from-command', '--', 'sh', '-c', 'echo partial; kill -KILL $$']);
    expect(r.code, describeRun('killed command', r)).toBe(1);
    expect(r.stderr).toMatch(/sh was killed by SIGKILL before it finished/);
    expect(await snapshotCount()).toBe(before);
  });

  it('a program that does not exist: exit 1, says so, no snapshot', async () => {
    const before = await snapshotCount();
    const r = await repo.run(['backup', '--stdin-from-command', '--', 'no-such-program-8f3a', '--flag']);
    expect(r.code, describeRun('missing program', r)).toBe(1);
    expect(r.stderr).toContain('cannot run no-such-program-8f3a: no such program (is it installed and on PATH?)');
    expect(await snapshotCount()).toBe(before);
  });

  it('Ctrl-C during the command: exit 130, no snapshot, and the command is stopped too', async () => {
    const before = await snapshotCount();
    const marker = `bh-test-sleeper-${process.pid}`;
    const running = startRunning(['backup', '--stdin-filename', 'x', '--stdin-from-command', '--', 'sh', '-c', 'echo started; exec sleep 120', marker], { env: repo.env });
    const sleeper = async (): Promise<string | undefined> => {
      for (const pid of await readdir('/proc')) {
        if (!/^\d+$/.test(pid)) continue;
        try {
          const [program, seconds] = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
          const parent = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1];
          if (program === 'sleep' && seconds === '120' && parent === String(running.child.pid)) return pid;
        } catch {
          // gone meanwhile
        }
      }
      return undefined;
    };
    let pid: string | undefined;
    for (let i = 0; i < 600 && !pid; i++) {
      pid = await sleeper();
      if (!pid) await new Promise((r) => setTimeout(r, 25));
    }
    if (!pid) running.child.kill('SIGKILL');
    expect(pid, `the command did not start; bh: ${running.stderr()}`).toBeDefined();
    running.child.kill('SIGINT');
    const r = await running.done;
    expect(r.code, describeRun('interrupted', r)).toBe(130);
    expect(existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep\0')).toBe(false);
    expect(await snapshotCount()).toBe(before);
  });

  it('refuses a missing command, a bad file name, and two stream sources at once', async () => {
    const none = await repo.run(['backup', '--stdin-from-command']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('--stdin-from-command needs the command after --');
    const slash = await repo.run(['backup', '--stdin-filename', 'a/b', '--stdin-from-command', '--', 'true']);
    expect(slash.code).toBe(1);
    expect(slash.stderr).toContain('--stdin-filename must be a plain file name');
    const both = await repo.run(['backup', '--stdin', '--mysql', 'app']);
    expect(both.code).toBe(1);
    expect(both.stderr).toContain('--stdin and --mysql cannot be combined');
  });
});

describe('bh dump', () => {
  it('writes a directory as a tar stream that extracts to the same files, modes, symlinks and empty directories', async () => {
    const src = join(tmp, 'tree');
    mkdirSync(join(src, 'sub/deeper'), { recursive: true });
    mkdirSync(join(src, 'empty'));
    writeFileSync(join(src, 'big.bin'), randomBytes(2 * 1024 * 1024 + 5));
    writeFileSync(join(src, 'sub/a.txt'), 'alpha\n');
    writeFileSync(join(src, 'sub/deeper/script.sh'), '#!/bin/sh\necho hi\n');
    chmodSync(join(src, 'sub/deeper/script.sh'), 0o750);
    writeFileSync(join(src, 'sub/empty-file'), '');
    symlinkSync('../big.bin', join(src, 'sub/link'));
    const backup = await repo.run(['backup', src, '--json']);
    expect(backup.code, describeRun('backup', backup)).toBe(0);
    const tarFile = join(tmp, 'tree.tar');
    const dumped = await bhInto(tarFile, ['dump', 'latest', src]);
    expect(dumped.code, dumped.stderr).toBe(0);
    const out = join(tmp, 'untarred');
    mkdirSync(out);
    execFileSync('tar', ['-x', '-p', '-f', tarFile, '-C', out]);
    const restored = join(out, src);
    expect(await describeTree(restored)).toEqual(await describeTree(src));
  });

  it('refuses a path that is not in the snapshot: exit 1', async () => {
    const r = await repo.run(['dump', 'latest', '/no/such/file']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\/no\/such\/file is not in snapshot [0-9a-f]{8}; list it with 'bh ls/);
  });
});

/** Every entry below `root`: type, permission bits, and content hash or link target. */
async function describeTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const mode = (lstatSync(path).mode & 0o7777).toString(8);
      const name = relative(root, path);
      if (entry.isDirectory()) {
        out[name] = `dir ${mode}`;
        await walk(path);
      } else if (entry.isSymbolicLink()) out[name] = `link -> ${readlinkSync(path)}`;
      else out[name] = `file ${mode} ${sha(readFileSync(path))}`;
    }
  };
  await walk(root);
  return out;
}
