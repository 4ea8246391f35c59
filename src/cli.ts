/**
 * The command line: registers one clipanion class per command and runs it.
 */
import { type BaseContext, Builtins, Cli, type CommandClass as CommandClassOf } from 'clipanion';
import { createRequire } from 'node:module';
import type { WriteStream } from 'node:tty';
import { NATIVE_BUILD_HINT } from './fsx/index.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

type CommandClass = CommandClassOf<BaseContext>;

/**
 * The command modules by the first word of their commands' paths, in the order `bh --help`
 * lists them. A run imports only the module of its first argument: startup compiles a third of
 * the code it would otherwise, and the other commands' dependencies are never loaded.
 */
const COMMAND_MODULES: Record<string, () => Promise<Record<string, unknown>>> = {
  init: () => import('./commands/init.js'),
  backup: () => import('./commands/backup.js'),
  snapshots: () => import('./commands/snapshots.js'),
  forget: () => import('./commands/forget.js'),
  restore: () => import('./commands/restore.js'),
  check: () => import('./commands/check.js'),
  ls: () => import('./commands/ls.js'),
  diff: () => import('./commands/diff.js'),
  find: () => import('./commands/find.js'),
  mount: () => import('./commands/mount.js'),
  stats: () => import('./commands/stats.js'),
  dump: () => import('./commands/dump.js'),
  db: () => import('./commands/db-restore.js'),
  cat: () => import('./commands/cat.js'),
  key: () => import('./commands/key.js'),
  unlock: () => import('./commands/unlock.js'),
  copy: () => import('./commands/copy.js'),
  prune: () => import('./commands/prune.js'),
  repair: () => import('./commands/repair.js'),
  run: () => import('./commands/run.js'),
  schedule: () => import('./commands/schedule.js'),
  status: () => import('./commands/status.js'),
  config: () => import('./commands/config.js'),
  manifest: () => import('./commands/manifest.js'),
  'verify-live': () => import('./commands/verify-live.js'),
  export: () => import('./commands/export.js'),
  'import-legacy': () => import('./commands/import-legacy.js'),
  notify: () => import('./commands/notify.js'),
  system: () => import('./commands/system.js'),
  version: () => import('./commands/version.js'),
  generate: () => import('./commands/generate.js'),
};

/** Commands that read every command's definition (man pages, completion scripts). */
const NEEDS_EVERY_COMMAND = new Set(['generate']);

const isCommandClass = (value: unknown): value is CommandClass => typeof value === 'function' && Array.isArray((value as { paths?: unknown }).paths);


/**
 * restic users write `bh -r REPO backup …`; clipanion wants options after the command path, so
 * a leading -r/--repo is moved to the end.
 */
export function normalizeArgs(argv: string[]): string[] {
  const args = [...argv];
  const first = args[0];
  if ((first === '-r' || first === '--repo') && args.length >= 2) return [...args.slice(2), first, args[1]!];
  if (first?.startsWith('--repo=')) return [...args.slice(1), first];
  return args;
}

/** Exit status of a process whose output pipe was closed (128 + SIGPIPE), as `cat big | head` gives. */
export const EXIT_BROKEN_PIPE = 141;
let pipeGuard = false;

/**
 * `bh ls latest | head`: when the reader goes away, stop quietly with 141 instead of dying on an
 * unhandled EPIPE with a stack trace. Any other stdout error still surfaces.
 */
function guardBrokenPipe(): void {
  if (pipeGuard) return;
  pipeGuard = true;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(EXIT_BROKEN_PIPE);
    throw error;
  });
}

/**
 * The commands the parser needs for `args`: those of the module named by the first argument, or
 * all of them (for `bh --help`, a typo's suggestions, …). clipanion also compiles one state
 * machine over every option of every registered command before it parses, ~0.2 s of CPU for
 * all of them; one module's commands cost little.
 */
export async function commandsFor(args: readonly string[]): Promise<CommandClass[]> {
  const first = args[0];
  const loaders = first !== undefined && Object.hasOwn(COMMAND_MODULES, first) && !NEEDS_EVERY_COMMAND.has(first) ? [COMMAND_MODULES[first]!] : Object.values(COMMAND_MODULES);
  const modules = await Promise.all(loaders.map((load) => load()));
  return modules.flatMap((module) => Object.values(module).filter(isCommandClass));
}

/**
 * Whether help and usage errors are coloured: only on a terminal that has colours, never with
 * NO_COLOR set (https://no-color.org). Left to itself, clipanion asks the environment alone
 * (TERM, FORCE_COLOR), so `bh prune --help | cat` printed escape codes.
 */
function wantsColors(stdout: Partial<Pick<WriteStream, 'isTTY' | 'hasColors'>>, env: Readonly<Record<string, string | undefined>>): boolean {
  if (env['NO_COLOR']) return false;
  return stdout.isTTY === true && stdout.hasColors?.() === true;
}

export async function main(argv: string[]): Promise<number> {
  guardBrokenPipe();
  const args = normalizeArgs(argv);
  const enableColors = wantsColors(process.stdout, process.env);
  const cli = new Cli({ binaryLabel: 'bh — encrypted, deduplicating backups', binaryName: 'bh', binaryVersion: version, enableColors });
  cli.register(Builtins.HelpCommand);
  cli.register(Builtins.VersionCommand);
  let commands: CommandClass[];
  try {
    commands = await commandsFor(args);
  } catch (error) {
    if (!isUnbuiltNativeModule(error)) throw error;
    process.stderr.write(`bh: error: a native module bh needs is not built (${error.message.split('\n')[0]}). ${NATIVE_BUILD_HINT}\n`);
    return 1;
  }
  for (const command of commands) cli.register(command);
  return cli.run(args, Cli.defaultContext);
}

/** A compiled addon (`….node`) that a module requires at load time is missing (zstd-napi's). */
function isUnbuiltNativeModule(error: unknown): error is Error {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && /\.node\b/.test(error.message.split('\n')[0]!);
}
