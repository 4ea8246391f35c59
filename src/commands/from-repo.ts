/**
 * Options naming a second, source repository (`bh copy`, `bh init --copy-chunker-params`), as
 * restic's --from-repo: its location and its own secret, which never comes from argv.
 */
import { Option } from 'clipanion';
import { RepositoryNotFoundError } from '../repo/errors.js';
import { RepositorySession } from '../repo/session.js';
import { ExitCode, RepositoryCommand, UserError, resolveSecret } from './base.js';

export abstract class FromRepositoryCommand extends RepositoryCommand {
  fromRepo = Option.String('--from-repo', { description: 'Source repository location (or BH_FROM_REPO)' });
  fromPasswordFile = Option.String('--from-password-file', { description: 'Read the source password from this file (or BH_FROM_PASSWORD_FILE; BH_FROM_PASSWORD holds it directly)' });
  fromKeyFile = Option.String('--from-key-file', { description: 'Open the source with this 32-byte raw key file' });

  protected fromLocation(): string | undefined {
    return this.fromRepo ?? this.context.env['BH_FROM_REPO'];
  }

  /** Opens the source repository (same backend and cache options as the destination's), without a lock. */
  protected async openSourceRepository(location: string): Promise<RepositorySession> {
    const secret = await resolveSecret(
      { keyFile: this.fromKeyFile, passwordFile: this.fromPasswordFile ?? this.context.env['BH_FROM_PASSWORD_FILE'], password: this.context.env['BH_FROM_PASSWORD'], what: 'source ' },
      'no password for the source repository: set BH_FROM_PASSWORD or BH_FROM_PASSWORD_FILE, or pass --from-password-file FILE or --from-key-file FILE',
    );
    try {
      return this.keepSession(await RepositorySession.open(location, secret, this.sessionOptions()));
    } catch (error) {
      if (error instanceof RepositoryNotFoundError) throw new UserError(`source repository: there is no bh repository at ${location} (no config file); check --from-repo/BH_FROM_REPO`, ExitCode.noRepository);
      throw error;
    }
  }
}
