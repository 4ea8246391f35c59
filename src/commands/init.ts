import { Command, Option } from 'clipanion';
import { RepositorySession } from '../repo/session.js';
import { UserError } from './base.js';
import { FromRepositoryCommand } from './from-repo.js';

export class InitCommand extends FromRepositoryCommand {
  static override paths = [['init']];
  static override usage = Command.Usage({
    description: 'create a new repository',
    details: `
      Creates an empty repository at the location given by -r/--repo or BH_REPO, sealed with the
      password (BH_PASSWORD, BH_PASSWORD_FILE, --password-file) or a 32-byte raw key file
      (--key-file). Refuses to touch a location that already holds a repository. \`config\` is
      created exclusively: of several inits racing for one location exactly one succeeds, the
      others exit 1 saying a repository appeared meanwhile (and remove the key file they wrote).

      With --from-repo SRC --copy-chunker-params, the new repository takes the chunker settings,
      the chunker seed and the blob-id key of SRC (opened with BH_FROM_PASSWORD,
      BH_FROM_PASSWORD_FILE, --from-password-file or --from-key-file), but has its own
      encryption keys and password: both repositories then cut and name chunks alike, so
      \`bh copy\` between them dedupes and copies trees unchanged.
    `,
    examples: [
      ['Create a repository in /srv/backup', 'BH_PASSWORD_FILE=/root/.bh-pass bh init -r /srv/backup'],
      ['Create one opened by a raw key file', 'head -c 32 /dev/urandom > /root/bh.key && bh init -r /srv/backup --key-file /root/bh.key'],
      ['Create a copy target that dedupes with /srv/backup', 'BH_FROM_PASSWORD_FILE=/root/.bh-pass bh init -r /mnt/usb/backup --from-repo /srv/backup --copy-chunker-params'],
    ],
  });

  copyChunkerParams = Option.Boolean('--copy-chunker-params', false, { description: 'Share the chunker seed and blob-id key of --from-repo' });

  async run(): Promise<number> {
    const from = this.fromLocation();
    if (this.copyChunkerParams && !from) throw new UserError('--copy-chunker-params needs the source repository: pass --from-repo LOCATION or set BH_FROM_REPO');
    if (this.fromRepo && !this.copyChunkerParams) throw new UserError('--from-repo is only used with --copy-chunker-params here; to copy snapshots use bh copy');
    const secret = await this.secret();
    const source = this.copyChunkerParams && from ? (await this.openSourceRepository(from)).repo : undefined;
    const { repo } = this.keepSession(await RepositorySession.init(this.repoLocation(), secret, this.sessionOptions(), { chunkingFrom: source }));
    this.report.jsonLine({ message_type: 'initialized', id: repo.config.id, repository: repo.location, chunker_params_from: source?.config.id ?? null });
    this.report.line(`created bh repository ${repo.config.id.slice(0, 10)} at ${repo.location}`);
    if (source) this.report.line(`sharing the chunker parameters and blob ids of repository ${source.config.id.slice(0, 10)} at ${source.location}`);
    this.report.line('');
    this.report.line('Keep the password (or key file) safe: losing it makes the repository unreadable.');
    return 0;
  }
}
