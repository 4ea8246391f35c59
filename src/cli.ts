/**
 * The command line: registers one clipanion class per command and runs it.
 */
import { Builtins, Cli } from 'clipanion';
import { createRequire } from 'node:module';
import { BackupCommand } from './commands/backup.js';
import { CheckCommand } from './commands/check.js';
import { InitCommand } from './commands/init.js';
import { RestoreCommand } from './commands/restore.js';
import { SnapshotsCommand } from './commands/snapshots.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

export const COMMANDS = [InitCommand, BackupCommand, SnapshotsCommand, RestoreCommand, CheckCommand];

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

export async function main(argv: string[]): Promise<number> {
  const cli = new Cli({ binaryLabel: 'bh — encrypted, deduplicating backups', binaryName: 'bh', binaryVersion: version });
  cli.register(Builtins.HelpCommand);
  cli.register(Builtins.VersionCommand);
  for (const command of COMMANDS) cli.register(command);
  return cli.run(normalizeArgs(argv), Cli.defaultContext);
}
