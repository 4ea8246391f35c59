/**
 * Running the tools a capture asks (apt-mark, snap, pip, …): never through a shell (argv
 * arrays only), with a timeout, and with a missing tool told apart from one that failed, so a
 * collector can skip it and say why.
 */
import { execFile } from 'node:child_process';

/** How collectors run tools: the environment (PATH, HOME) and how long one may take. */
export interface ToolOptions {
  env: Readonly<Record<string, string | undefined>>;
  timeoutMs: number;
}

/** Why a tool gave nothing: not installed, or it ran and failed (exit status, signal, timeout). */
export class ToolUnavailableError extends Error {
  constructor(readonly tool: string, readonly missing: boolean, message: string) {
    super(message);
    this.name = 'ToolUnavailableError';
  }
}

export interface ToolOutput {
  stdout: string;
  exitCode: number;
}

/**
 * Runs `tool` with `args` and returns its output. A tool that is not on PATH, exits with a
 * status outside `okExitCodes`, is killed or outlives the timeout throws ToolUnavailableError.
 */
export function runTool(tool: string, args: readonly string[], options: ToolOptions, okExitCodes: readonly number[] = [0]): Promise<ToolOutput> {
  return new Promise((resolve, reject) => {
    execFile(
      tool,
      [...args],
      { env: cleanEnv(options.env), timeout: options.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8', windowsHide: true },
      (error, stdout, stderr) => {
        if (!error) return resolve({ stdout, exitCode: 0 });
        const failure = error as NodeJS.ErrnoException & { code?: string | number; killed?: boolean; signal?: string | null };
        if (failure.code === 'ENOENT') return reject(new ToolUnavailableError(tool, true, `${tool} is not installed (not found on PATH)`));
        if (failure.killed || failure.signal) return reject(new ToolUnavailableError(tool, false, `${tool} ${args.join(' ')} did not finish within ${options.timeoutMs / 1000} s`));
        if (typeof failure.code === 'number' && okExitCodes.includes(failure.code)) return resolve({ stdout, exitCode: failure.code });
        const why = firstLine(stderr) || firstLine(stdout) || failure.message;
        reject(new ToolUnavailableError(tool, false, `${tool} ${args.join(' ')} failed (exit ${String(failure.code)}): ${why}`));
      },
    );
  });
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.trim().slice(0, 200) ?? '';
}

function cleanEnv(env: Readonly<Record<string, string | undefined>>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined) out[key] = value;
  // Tools print in English and without colours, so their output parses the same everywhere.
  out['LC_ALL'] = 'C.UTF-8';
  out['NO_COLOR'] = '1';
  return out;
}
