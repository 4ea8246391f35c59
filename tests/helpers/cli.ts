/**
 * Runs the real `bin/bh` in a child process, as a user would, and gives back its exit code and
 * output. Secrets travel in the environment, never on the command line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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
  const child = startBh(args, options);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin!.end(options.input ?? '');
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
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

/** Creates (inits) a repository in `dir`/repo opened by `password`. */
export async function initRepo(dir: string, password = 'correct horse battery staple'): Promise<TestRepo> {
  const path = join(dir, 'repo');
  const env = { BH_REPO: path, BH_PASSWORD: password };
  const repo: TestRepo = {
    path,
    env,
    run: (args, options = {}) => bh(args, { ...options, env: { ...env, ...options.env } }),
  };
  const result = await repo.run(['init']);
  if (result.code !== 0) throw new Error(`bh init failed: ${result.stderr}`);
  return repo;
}
