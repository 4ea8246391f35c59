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

export async function main(argv: string[]): Promise<number> {
  guardBrokenPipe();
  const cli = new Cli({ binaryLabel: 'bh — encrypted, deduplicating backups', binaryName: 'bh', binaryVersion: version });
  cli.register(Builtins.HelpCommand);
  cli.register(Builtins.VersionCommand);
  for (const command of COMMANDS) cli.register(command);
  return cli.run(normalizeArgs(argv), Cli.defaultContext);
}
