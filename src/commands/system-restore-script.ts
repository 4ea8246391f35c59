import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Command, Option } from 'clipanion';
import { BASH_PHASES, POWERSHELL_PHASES, UnknownPhaseError, restoreScript } from '../system/restore-script.js';
import { withCaptures } from '../system/store.js';
import { UserError } from './base.js';
import { SystemRepositoryCommand } from './system-base.js';
import { hostFilter } from './snapshot-filter.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

export class SystemRestoreScriptCommand extends SystemRepositoryCommand {
  static override paths = [['system', 'restore-script']];
  static override usage = Command.Usage({
    category: 'System snapshots',
    description: 'turn a system snapshot into a restore script to review and run',
    details: `
      Writes a script that rebuilds the captured machine on a fresh install: bash for a Linux
      capture, PowerShell for a Windows one. It works in phases, in this order:

      - bash: ${BASH_PHASES.join(', ')};
      - PowerShell: ${POWERSHELL_PHASES.join(', ')};

      then lists what is left to do by hand (private keys, Wi-Fi and VPN secrets, browser
      profiles, fstab and hosts merges). Each step warns when it fails and the script goes on.
      Files are embedded in base64 and written with their owner and mode; a file that exists
      and differs is kept beside as NAME.before-bh-restore. Every name is quoted, and names
      that are not valid for their package manager are left out and listed for review.

      Run the script with --dry-run (PowerShell: -DryRun) first: it prints every command
      instead of running it. The script holds your dotfiles: --output writes it with mode 0700.
    `,
    examples: [
      ['The script of the newest system snapshot', 'bh system restore-script -r /srv/backup latest --output restore.sh'],
      ['Packages and dotfiles only', 'bh system restore-script -r /srv/backup 1a2b3c4d --only apt,dotfiles > restore.sh'],
    ],
  });

  snapshot = Option.String({ name: 'snapshot' });
  output = Option.String('--output', { description: 'Write the script to this file (mode 0700) instead of standard output' });
  only = Option.String('--only', { description: 'Only these phases, comma-separated (e.g. apt,dotfiles)' });
  hosts = hostFilter('latest');

  async run(): Promise<number> {
    const only = this.only?.split(',').map((p) => p.trim()).filter((p) => p !== '');
    const repo = await this.openRepository();
    const script = await withCaptures(repo, [this.snapshot], { host: this.hosts, onDamagedSnapshot: this.warnDamagedSnapshot, signal: this.interruptSignal() }, async ([opened]) => {
      try {
        return await restoreScript({ capture: opened!.capture, snapshotId: opened!.snapshot.id, read: opened!.read }, { only, version });
      } catch (error) {
        if (error instanceof UnknownPhaseError) throw new UserError(error.message);
        throw error;
      }
    });
    if (this.output === undefined) {
      this.report.raw(script);
      return 0;
    }
    let handle;
    try {
      handle = await open(this.output, 'w', 0o700);
    } catch (error) {
      throw new UserError(`cannot write --output ${this.output}: ${(error as Error).message}`);
    }
    try {
      await handle.chmod(0o700);
      await handle.writeFile(script);
    } finally {
      await handle.close();
    }
    this.report.warn(`restore script written to ${this.output}: read it, then run it with --dry-run first`);
    return 0;
  }
}
