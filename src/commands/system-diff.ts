import { Command, Option } from 'clipanion';
import { diffCaptures } from '../system/diff.js';
import { withCaptures } from '../system/store.js';
import { SystemRepositoryCommand } from './system-base.js';
import { hostFilter } from './snapshot-filter.js';

export class SystemDiffCommand extends SystemRepositoryCommand {
  static override paths = [['system', 'diff']];
  static override usage = Command.Usage({
    category: 'System snapshots',
    description: 'show what changed on a machine between two system snapshots',
    details: `
      Per category (apt, snap, dotfiles, systemd, …): items added (\`+\`), removed (\`-\`) and
      changed (\`M\`: another version, channel or origin), and files added, removed or changed
      (another content or mode). \`latest\` is the newest system snapshot (of --host).
      --json prints one document: a list of categories with their changes.
    `,
    examples: [
      ['What changed since a system snapshot', 'bh system diff -r /srv/backup 1a2b3c4d latest'],
      ['As JSON', 'bh system diff -r /srv/backup 1a2b3c4d 5e6f7a8b --json'],
    ],
  });

  first = Option.String({ name: 'snapshot-1' });
  second = Option.String({ name: 'snapshot-2' });
  hosts = hostFilter('latest');

  async run(): Promise<number> {
    const repo = await this.openRepository();
    const diffs = await withCaptures(repo, [this.first, this.second], { host: this.hosts, onDamagedSnapshot: this.warnDamagedSnapshot, signal: this.interruptSignal() }, async ([a, b]) => diffCaptures(a!.capture, b!.capture));
    if (this.json) {
      this.report.json(diffs);
      return 0;
    }
    // A captured name may hold control characters (a newline, a terminal escape): shown as a JSON string then.
    const shown = (text: string): string => (/[\u0000-\u001f\u007f-\u009f]/.test(text) ? JSON.stringify(text) : text);
    const detail = (d: Record<string, string>): string => Object.entries(d).map(([k, v]) => `${k} ${shown(v)}`).join(', ');
    for (const diff of diffs) {
      this.report.line(`${diff.category}:`);
      for (const item of diff.added) this.report.line(`  +  ${shown(item.name)}${item.detail ? `  (${detail(item.detail)})` : ''}`);
      for (const item of diff.removed) this.report.line(`  -  ${shown(item.name)}${item.detail ? `  (${detail(item.detail)})` : ''}`);
      for (const change of diff.changed) this.report.line(`  M  ${shown(change.name)}  (${detail(change.before)} → ${detail(change.after)})`);
      for (const file of diff.filesAdded) this.report.line(`  +  ${shown(file)}`);
      for (const file of diff.filesRemoved) this.report.line(`  -  ${shown(file)}`);
      for (const file of diff.filesChanged) this.report.line(`  M  ${shown(file)}`);
    }
    if (diffs.length === 0) this.report.line('no changes');
    return 0;
  }
}
