import { open } from 'node:fs/promises';
import { hostname, homedir, userInfo } from 'node:os';
import { resolve } from 'node:path';
import { Command, Option } from 'clipanion';
import { CATEGORIES } from '../system/capture.js';
import { type CaptureResult, captureSystem } from '../system/collect.js';
import { storeCapture } from '../system/store.js';
import { ExitCode, UserError, parseElapsed } from './base.js';
import { SystemRepositoryCommand } from './system-base.js';

export class SystemSnapshotCommand extends SystemRepositoryCommand {
  static override paths = [['system', 'snapshot']];
  static override usage = Command.Usage({
    category: 'System snapshots',
    description: "capture this machine's setup into the repository",
    details: `
      Records what it takes to rebuild this machine after a fresh install: installed packages
      (apt, snap, flatpak, pipx, pip --user, npm -g, cargo, go, VS Code extensions, Docker
      images; winget, choco, pip, npm, cargo and VS Code on Windows), apt sources and keyrings,
      dotfiles, crontabs, systemd units, the dconf database, /etc/fstab and /etc/hosts, compose
      files, user fonts, scripts in ~/bin and ~/.local/bin, shell history (the last 5000 lines;
      --no-history leaves it out), public SSH keys, GPG key ids and network connection names.
      Private keys and passwords are never captured.

      A tool that is not installed (or fails, or runs longer than --tool-timeout) is skipped
      and named; the capture goes on. Tools run without a shell.

      The capture is stored as an encrypted snapshot tagged \`system\` (\`system.json\` and the
      captured files below \`files/\`). It is written as plaintext only with --output, as one
      JSON file of mode 0600 (with the files' bytes in base64); --output alone needs no
      repository.
    `,
    examples: [
      ['Capture into a repository', 'bh system snapshot -r /srv/backup'],
      ["Capture into a job's repository", 'bh system snapshot --config /etc/bh/config.ini'],
      ['Capture to a private file only', 'bh system snapshot --output /root/machine.json --no-history'],
    ],
  });

  output = Option.String('--output', { description: 'Also write the capture as a plaintext JSON file (mode 0600)' });
  history = Option.Boolean('--history', true, { description: 'Capture shell history, the last 5000 lines (--no-history: leave it out)' });
  host = Option.String('--host', { description: 'Record this host name instead of this machine’s' });
  home = Option.String('--home', { description: "Read the user's files below this directory (default $HOME)" });
  root = Option.String('--root', { description: 'Read system files (/etc/…) below this directory, e.g. an old disk mounted at /mnt/old (default /); tools still run here' });
  toolTimeout = Option.String('--tool-timeout', '60s', { description: 'How long one tool may run before it is skipped (e.g. 30s, 2m)' });

  async run(): Promise<number> {
    const writesRepository = this.hasRepository();
    if (!writesRepository && this.output === undefined) throw new UserError('nowhere to put the capture: give -r REPO (or BH_REPO), --config JOB.ini, or --output FILE');
    const toolTimeoutMs = parseElapsed(this.toolTimeout, '--tool-timeout');
    // Open the repository first: a wrong password should not cost a whole capture.
    const repo = writesRepository ? await this.openRepository() : undefined;
    const user = userInfo();
    const env = this.context.env;
    const result = await captureSystem({
      platform: process.platform === 'win32' ? 'windows' : 'linux',
      host: this.host ?? hostname(),
      user: { name: user.username, uid: user.uid },
      home: resolve(this.home ?? env['HOME'] ?? homedir()),
      root: resolve(this.root ?? '/'),
      env,
      toolTimeoutMs,
      history: this.history,
      time: new Date(),
      onCategory: (category) => this.report.progress(`capturing ${category}…`),
    });
    if (this.output !== undefined) await writePrivateJson(this.output, result);
    const stored = repo
      ? await storeCapture(repo, result, {
          signal: this.interruptSignal(),
          onDamagedSnapshot: this.warnDamagedSnapshot,
          onWarning: (message) => this.report.warn(`warning: ${message}`),
        })
      : undefined;
    this.printSummary(result, stored?.snapshotId);
    return ExitCode.ok;
  }

  private printSummary(result: CaptureResult, snapshotId: string | undefined): void {
    const { capture } = result;
    const counts = CATEGORIES.flatMap((name) => {
      const category = capture.categories[name];
      return category ? [{ category: name, items: category.items.length, files: category.files.length }] : [];
    });
    for (const skipped of capture.skipped) this.report.warn(`skipped ${skipped.category}${skipped.tool ? ` (${skipped.tool})` : ''}: ${skipped.reason}`);
    if (this.json) {
      this.report.json({ snapshot_id: snapshotId ?? null, output: this.output ?? null, host: capture.host, time: capture.time, categories: counts, skipped: capture.skipped });
      return;
    }
    this.report.table(['Category', 'Items', 'Files'], counts.map((c) => [c.category, String(c.items), String(c.files)]));
    if (this.output !== undefined) this.report.line(`capture written to ${this.output} (mode 0600, plaintext)`);
    if (snapshotId) this.report.line(`system snapshot ${snapshotId.slice(0, 8)} saved (tag system, host ${capture.host})`);
  }
}

/** The capture as one JSON file that only its owner can read, whatever the umask or an existing file's mode. */
async function writePrivateJson(path: string, result: CaptureResult): Promise<void> {
  const files = Object.fromEntries([...result.contents].map(([stored, bytes]) => [stored, bytes.toString('base64')]));
  let handle;
  try {
    handle = await open(path, 'w', 0o600);
  } catch (error) {
    throw new UserError(`cannot write --output ${path}: ${(error as Error).message}`);
  }
  try {
    await handle.chmod(0o600);
    await handle.writeFile(JSON.stringify({ capture: result.capture, files }, null, 2) + '\n');
  } finally {
    await handle.close();
  }
}
