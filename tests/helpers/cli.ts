/**
 * Runs the real `bin/bh` in a child process, as a user would, and gives back its exit code and
 * output. Secrets travel in the environment, never on the command line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BH = join(ROOT, 'bin/bh');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  input?: Buffer | string;
  cwd?: string;
}

export function startBh(args: string[], options: RunOptions = {}): ChildProcess {
  const env: Record<string, string | undefined> = { ...process.env, BH_REPO: undefined, BH_PASSWORD: undefined, BH_PASSWORD_FILE: undefined, ...options.env };
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
  return spawn(process.execPath, [BH, ...args], { env: env as NodeJS.ProcessEnv, cwd: options.cwd ?? ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
}

export function bh(args: string[], options: RunOptions = {}): Promise<RunResult> {
  return startRunning(args, options).done;
}

/** A bh started in the background, whose output can be watched while it runs. */
export interface Running {
  child: ChildProcess;
  /** Resolves once the process is gone. */
  done: Promise<RunResult>;
  stdout(): string;
  stderr(): string;
}

export function startRunning(args: string[], options: RunOptions = {}): Running {
  const child = startBh(args, options);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin!.end(options.input ?? '');
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done, stdout: () => stdout, stderr: () => stderr };
}

export function describeRun(what: string, r: RunResult): string {
  return `${what}: exit ${r.code} signal ${r.signal}\n--- stdout\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-3000)}`;
}

/**
 * Polls until `condition` holds, then freezes bh (SIGSTOP) so that it cannot run to its end
 * before the test acts, however fast it is or however loaded the machine; `signal()` sends a
 * signal and lets bh go on. Fails if bh ends first or after `timeoutMs`.
 */
export async function waitFor(running: Running, condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  let ended = false;
  void running.done.then(() => (ended = true));
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (ended) throw new Error(`bh ended before ${what}: ${describeRun('bh', await running.done)}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
  running.child.kill('SIGSTOP');
}

/** Sends `name` to a bh frozen by waitFor (SIGCONT alone just lets it go on), then lets it run. */
export function signal(running: Running, name: NodeJS.Signals): void {
  if (name !== 'SIGCONT') running.child.kill(name);
  running.child.kill('SIGCONT');
}

/** A repository location plus the env that opens it. */
export interface TestRepo {
  path: string;
  env: Record<string, string>;
  run(args: string[], options?: RunOptions): Promise<RunResult>;
}

export async function makeTempDir(prefix = 'bh-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/** A new directory under `parent` holding `files` files (f0, f1, …) of `size` random bytes each. */
export async function randomFilesDir(parent: string, files: number, size: number): Promise<string> {
  const dir = await mkdtemp(join(parent, 'src-'));
  for (let i = 0; i < files; i++) await writeFile(join(dir, `f${i}`), randomBytes(size));
  return dir;
}

/** `r` itself after asserting exit 0; the message names `what` and carries the output's tails. */
export function expectOk(r: RunResult, what: string): RunResult {
  expect(r.code, `${what}: exit ${r.code}\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-2000)}`).toBe(0);
  return r;
}

/** The `message_type: summary` line of a `--json` run (backup's counters, snapshot id, …). */
export function summaryOf<T = Record<string, unknown>>(r: RunResult): T {
  const line = r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['message_type'] === 'summary');
  if (!line) throw new Error(`no summary line (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return line as T;
}

/** `bh backup PATH --json …extra` into `repo`; the new snapshot's id (throws on a non-zero exit). */
export async function backupSnapshot(repo: TestRepo, path: string, extra: string[] = []): Promise<string> {
  const result = await repo.run(['backup', path, '--json', ...extra]);
  if (result.code !== 0) throw new Error(describeRun('bh backup', result));
  return (JSON.parse(result.stdout.trim().split('\n').pop()!) as { snapshot_id: string }).snapshot_id;
}

/** Creates (inits) a repository in `dir`/repo opened by `password`. */
export async function initRepo(dir: string, password = 'correct horse battery staple'): Promise<TestRepo> {
  return initRepoAt(join(dir, 'repo'), { BH_PASSWORD: password });
}

/**
 * Creates (inits) a repository at any location (a path, `sftp:…`, `s3:…`); `env` holds the
 * password and whatever the backend needs (BH_S3_ENDPOINT, AWS_*, …); `flags` go on every command
 * (e.g. `--ssh-key K --known-hosts F`).
 */
export async function initRepoAt(location: string, env: Record<string, string>, flags: string[] = []): Promise<TestRepo> {
  const repoEnv = { BH_REPO: location, ...env };
  const repo: TestRepo = {
    path: location,
    env: repoEnv,
    run: (args, options = {}) => bh([...args, ...flags], { ...options, env: { ...repoEnv, ...options.env } }),
  };
  const result = await repo.run(['init']);
  if (result.code !== 0) throw new Error(`bh init failed: ${result.stderr}`);
  return repo;
}

/**
 * Runs bh as root but without the capabilities that override file permissions (CAP_DAC_OVERRIDE,
 * CAP_DAC_READ_SEARCH, dropped by util-linux setpriv): mode bits then bind it as they bind an
 * unprivileged user, while it still owns the repository and may chown.
 */
export function bhWithoutDacOverride(env: Record<string, string>, args: string[]): Promise<RunResult> {
  const drop = '-dac_override,-dac_read_search';
  const child = spawn('setpriv', [`--bounding-set=${drop}`, `--inh-caps=${drop}`, process.execPath, BH, ...args], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'], HOME: process.env['HOME'], BH_CACHE_DIR: process.env['BH_CACHE_DIR'], ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** SHA-256 (hex) of every regular file below `root`, by path relative to it. */
export async function hashTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else out.set(relative(root, path), createHash('sha256').update(await readFile(path)).digest('hex'));
    }
  };
  await walk(root);
  return out;
}
