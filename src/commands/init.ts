import { Command } from 'clipanion';
import { Repository } from '../repo/repository.js';
import { RepositoryCommand } from './base.js';

export class InitCommand extends RepositoryCommand {
  static override paths = [['init']];
  static override usage = Command.Usage({
    description: 'create a new repository',
    details: `
      Creates an empty repository at the location given by -r/--repo or BH_REPO, sealed with the
      password (BH_PASSWORD, BH_PASSWORD_FILE, --password-file) or a 32-byte raw key file
      (--key-file). Refuses to touch a location that already holds a repository.
    `,
    examples: [
      ['Create a repository in /srv/backup', 'BH_PASSWORD_FILE=/root/.bh-pass bh init -r /srv/backup'],
      ['Create one opened by a raw key file', 'head -c 32 /dev/urandom > /root/bh.key && bh init -r /srv/backup --key-file /root/bh.key'],
    ],
  });

  async run(): Promise<number> {
    const secret = await this.secret();
    const repo = await Repository.init(await this.openBackend(), secret);
    this.report.jsonLine({ message_type: 'initialized', id: repo.config.id, repository: repo.location });
    this.report.line(`created bh repository ${repo.config.id.slice(0, 10)} at ${repo.location}`);
    this.report.line('');
    this.report.line('Keep the password (or key file) safe: losing it makes the repository unreadable.');
    return 0;
  }
}
