/**
 * The command line: registers one clipanion class per command and runs it.
 */
import { Builtins, Cli } from 'clipanion';
import { createRequire } from 'node:module';
import { BackupCommand } from './commands/backup.js';
import { CatCommand } from './commands/cat.js';
import { CheckCommand } from './commands/check.js';
import { ConfigCheckCommand, ConfigExampleCommand, ConfigInitKeyCommand } from './commands/config.js';
import { CopyCommand } from './commands/copy.js';
import { DiffCommand } from './commands/diff.js';
import { FindCommand } from './commands/find.js';
import { ForgetCommand } from './commands/forget.js';
import { InitCommand } from './commands/init.js';
import { KeyAddCommand, KeyListCommand, KeyPasswdCommand, KeyRemoveCommand } from './commands/key.js';
import { LsCommand } from './commands/ls.js';
import { PruneCommand } from './commands/prune.js';
import { RepairIndexCommand, RepairSnapshotsCommand } from './commands/repair.js';
import { RestoreCommand } from './commands/restore.js';
import { RunCommand } from './commands/run.js';
import { ScheduleCommand } from './commands/schedule.js';
import { SnapshotsCommand } from './commands/snapshots.js';
import { StatsCommand } from './commands/stats.js';
import { StatusCommand } from './commands/status.js';
import { UnlockCommand } from './commands/unlock.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

export const COMMANDS = [
  InitCommand,
  BackupCommand,
  SnapshotsCommand,
  ForgetCommand,
  RestoreCommand,
  CheckCommand,
  LsCommand,
  DiffCommand,
  FindCommand,
  StatsCommand,
  CatCommand,
  KeyListCommand,
  KeyAddCommand,
  KeyRemoveCommand,
  KeyPasswdCommand,
  UnlockCommand,
  CopyCommand,
  PruneCommand,
  RepairIndexCommand,
  RepairSnapshotsCommand,
  RunCommand,
  ScheduleCommand,
  StatusCommand,
  ConfigCheckCommand,
  ConfigExampleCommand,
  ConfigInitKeyCommand,
];

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
 * The commands the parser needs for `args`: those whose path starts with the first argument, or
 * all of them (for `bh --help`, a typo's suggestions, …). clipanion compiles one state machine
 * over every option of every registered command before it parses, which costs more than a
 * no-change backup spends on any single directory walk; one command's machine is cheap.
 */
export function commandsFor(args: readonly string[]): typeof COMMANDS {
  const matching = COMMANDS.filter((command) => command.paths?.some((path) => path[0] === args[0]));
  return matching.length > 0 ? matching : COMMANDS;
}

export async function main(argv: string[]): Promise<number> {
  guardBrokenPipe();
  const args = normalizeArgs(argv);
  const cli = new Cli({ binaryLabel: 'bh — encrypted, deduplicating backups', binaryName: 'bh', binaryVersion: version });
  cli.register(Builtins.HelpCommand);
  cli.register(Builtins.VersionCommand);
  for (const command of commandsFor(args)) cli.register(command);
  return cli.run(args, Cli.defaultContext);
}
