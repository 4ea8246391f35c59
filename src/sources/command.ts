/**
 * The simplest sources: standard input, and a command's standard output (`bh backup
 * --stdin-from-command -- CMD ARGS…`, as restic 0.17 has it), each one file at the root.
 */
import { ProcessStream } from './process-stream.js';
import type { Source, SourceFile } from './source.js';

/** Standard input as the file `/<filename>`; nothing to check about how it ended. */
export function standardInput(input: AsyncIterable<Uint8Array>, filename: string): Source {
  return {
    paths: [`/${filename}`],
    async *files(): AsyncGenerator<SourceFile> {
      yield { path: `/${filename}`, data: input, verify: async () => undefined };
    },
    close: async () => undefined,
  };
}

export interface CommandSourceOptions {
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** The command's standard error, as it comes. */
  onStderr?: ((text: string) => void) | undefined;
}

/**
 * The standard output of `argv` (run without a shell) as the file `/<filename>`. A non-zero
 * exit or a signal fails the backup: no snapshot is saved.
 */
export function commandSource(argv: readonly string[], filename: string, options: CommandSourceOptions = {}): Source {
  let running: ProcessStream | undefined;
  return {
    paths: [`/${filename}`],
    async *files(signal?: AbortSignal): AsyncGenerator<SourceFile> {
      running = new ProcessStream({ argv, env: options.env, what: `the command '${argv.join(' ')}'`, onStderr: options.onStderr, signal });
      yield { path: `/${filename}`, data: running.data(), verify: () => running!.verify() };
    },
    close: async () => running?.kill(),
  };
}
