/**
 * [HOOKS] pre_backup / post_backup: shell commands, as the old tool ran them (`/bin/sh -c`, or
 * `cmd.exe /d /s /c` on Windows). The command line is exactly what the config file's owner wrote;
 * bh never splices a value into it. What a hook may want to know (the run's result) arrives in
 * BH_* environment variables, so nothing from a run can inject shell syntax. The hook inherits
 * bh's environment minus the variables the config's secrets came from (the runner drops them).
 *
 * A hook runs in its own process group with a timeout: at the timeout the whole group gets
 * SIGTERM, then SIGKILL 5 s later. Its output (stdout and stderr together) is kept, the last
 * 64 KiB, for the report and the status file.
 */
import { spawn } from 'node:child_process';
import type { HookOutcome } from './state.js';

const OUTPUT_LIMIT = 64 * 1024;
const KILL_GRACE_MS = 5000;

export interface HookOptions {
  timeoutSeconds: number;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  signal?: AbortSignal | undefined;
}

export function runHook(command: string, options: HookOptions): Promise<HookOutcome> {
  const windows = process.platform === 'win32';
  const child = spawn(windows ? (process.env['ComSpec'] ?? 'cmd.exe') : '/bin/sh', windows ? ['/d', '/s', '/c', command] : ['-c', command], {
    cwd: options.cwd,
    env: options.env as NodeJS.ProcessEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: !windows,
    windowsVerbatimArguments: windows,
  });
  let output = '';
  const collect = (data: Buffer): void => {
    output += data.toString('utf8');
    if (output.length > 2 * OUTPUT_LIMIT) output = output.slice(-OUTPUT_LIMIT);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);

  let timedOut = false;
  const killGroup = (signal: NodeJS.Signals): void => {
    try {
      if (windows || child.pid === undefined) child.kill(signal);
      else process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  const stop = (): void => {
    killGroup('SIGTERM');
    setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS).unref();
  };
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, options.timeoutSeconds * 1000);
  options.signal?.addEventListener('abort', stop, { once: true });

  return new Promise((resolve) => {
    const finish = (exitCode: number | null, extra = ''): void => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', stop);
      resolve({ command, exitCode, timedOut, output: (output + extra).slice(-OUTPUT_LIMIT) });
    };
    child.on('error', (error) => finish(null, `bh: cannot start the hook: ${error.message}\n`));
    child.on('close', (code) => finish(code));
  });
}

export function hookSucceeded(outcome: HookOutcome): boolean {
  return outcome.exitCode === 0 && !outcome.timedOut;
}

export function describeHookFailure(what: string, outcome: HookOutcome): string {
  if (outcome.timedOut) return `${what} hook did not finish in time and was stopped`;
  if (outcome.exitCode === null) return `${what} hook could not be run or was killed`;
  return `${what} hook exited with status ${outcome.exitCode}`;
}
