/**
 * `bh key list|add|remove|passwd`: the key files that each open the repository (one password or
 * one 32-byte key file each, all sealing the same master key). One class per subcommand.
 */
import { Command, Option } from 'clipanion';
import { resolveFileId } from '../repo/id-prefix.js';
import { decodeKeyFile, unsealKeyFile, type Secret } from '../repo/keyfile.js';
import type { Repository } from '../repo/repository.js';
import { localTime } from '../snapshot/walk.js';
import { RepositoryCommand, UserError, readKeyFileSecret, readPasswordFileSecret } from './base.js';
import { wholeFile } from '../repo/file-limits.js';

const NEW_SECRET_DETAILS = `
      The new password is read from --new-password-file FILE (one trailing newline is ignored),
      or from the environment: BH_NEW_PASSWORD, or BH_NEW_PASSWORD_FILE naming a file; a raw
      32-byte key file is given with --new-key-file FILE. Secrets are never taken on the command
      line. The current password or key (BH_PASSWORD, --password-file, --key-file, …) opens the
      repository as for every command.`;

abstract class NewSecretCommand extends RepositoryCommand {
  newPasswordFile = Option.String('--new-password-file', { description: 'Read the new password from this file (or BH_NEW_PASSWORD / BH_NEW_PASSWORD_FILE)' });
  newKeyFile = Option.String('--new-key-file', { description: 'Use this 32-byte raw key file as the new key' });

  protected async newSecret(): Promise<Secret> {
    if (this.newPasswordFile && this.newKeyFile) throw new UserError('give either --new-password-file or --new-key-file, not both');
    if (this.newKeyFile) return readKeyFileSecret(this.newKeyFile, 'new key file');
    const file = this.newPasswordFile ?? this.context.env['BH_NEW_PASSWORD_FILE'];
    if (file) return readPasswordFileSecret(file, 'new password file');
    const password = this.context.env['BH_NEW_PASSWORD'];
    if (password) return { kind: 'password', password: Buffer.from(password) };
    throw new UserError('no new password given: set BH_NEW_PASSWORD or BH_NEW_PASSWORD_FILE, or pass --new-password-file FILE or --new-key-file FILE');
  }

  /** Adds a key for `secret` and reads it back, making sure it opens the repository before anything relies on it. */
  protected async addVerifiedKey(repo: Repository, secret: Secret): Promise<string> {
    const id = await repo.addKey(secret);
    const file = decodeKeyFile(await repo.backend.read({ type: 'keys', name: id }, wholeFile('keys')), `keys/${id}`);
    const material = await unsealKeyFile(file, secret, `keys/${id}`);
    if (!material || !material.equals(repo.keys.serialize())) throw new Error(`the new key keys/${id} does not open the repository (it was written but reads back wrong); the old key is kept`);
    return id;
  }
}

export class KeyListCommand extends RepositoryCommand {
  static override paths = [['key', 'list']];
  static override usage = Command.Usage({
    category: 'Keys',
    description: 'list the keys that open the repository',
    details: `
      Each key is one password or one 32-byte key file; any of them opens the repository. The
      key that opened it this time is marked with \`*\`. --json prints a JSON array of
      {current, id, created, host, username, kdf} (and N, r, p for scrypt).
    `,
    examples: [['List keys', 'bh key list -r /srv/backup']],
  });

  async run(): Promise<number> {
    const repo = await this.openRepository();
    const keys = (await repo.listKeys()).sort((a, b) => Date.parse(a.file.created) - Date.parse(b.file.created) || a.id.localeCompare(b.id));
    if (this.json) {
      const out = keys.map(({ id, file }) => ({
        current: id === repo.keyId,
        id,
        short_id: id.slice(0, 8),
        created: file.created,
        host: file.host,
        username: file.username,
        kdf: file.kdf,
        ...(file.kdf === 'scrypt' ? { N: file.N, r: file.r, p: file.p } : {}),
      }));
      this.report.json(out);
      return 0;
    }
    this.report.table(
      [' ', 'ID', 'Created', 'Host', 'User', 'KDF'],
      keys.map(({ id, file }) => [id === repo.keyId ? '*' : ' ', id.slice(0, 8), localTime(Date.parse(file.created)), file.host, file.username, file.kdf === 'scrypt' ? `scrypt N=${file.N} r=${file.r} p=${file.p}` : 'raw key file']),
    );
    return 0;
  }
}

export class KeyAddCommand extends NewSecretCommand {
  static override paths = [['key', 'add']];
  static override usage = Command.Usage({
    category: 'Keys',
    description: 'add a password or key file that opens the repository',
    details: `
      Adds a new key file sealing the repository's master key under a new password (scrypt) or
      a 32-byte raw key file. Existing keys keep working. Takes a shared lock.
      ${NEW_SECRET_DETAILS}
    `,
    examples: [
      ['Add a second password', 'bh key add -r /srv/backup --new-password-file /root/.bh-second'],
      ['Add a raw key file', 'head -c 32 /dev/urandom > /root/bh.key && bh key add -r /srv/backup --new-key-file /root/bh.key'],
    ],
  });

  async run(): Promise<number> {
    const secret = await this.newSecret();
    const repo = await this.openRepository('shared');
    const id = await this.addVerifiedKey(repo, secret);
    this.report.jsonLine({ message_type: 'key_added', id });
    this.report.line(`saved new key ${id.slice(0, 8)}`);
    return 0;
  }
}

export class KeyRemoveCommand extends RepositoryCommand {
  static override paths = [['key', 'remove']];
  static override usage = Command.Usage({
    category: 'Keys',
    description: 'remove a key',
    details: `
      Removes the key file with this id (or unique prefix of at least 4 hex digits): its
      password or key file no longer opens the repository. As restic does, the key that opened
      the repository for this command cannot be removed (open it with another key, or use
      \`bh key passwd\` to replace it), and neither can the only key. Takes an exclusive lock.
    `,
    examples: [['Remove a key', 'bh key remove -r /srv/backup 1a2b3c4d']],
  });

  id = Option.String({ name: 'id' });

  async run(): Promise<number> {
    const repo = await this.openRepository('exclusive');
    const { name } = await resolveFileId(repo, 'keys', this.id, 'key');
    const count = (await repo.list('keys')).length;
    if (count <= 1) throw new UserError(`refusing to remove key ${name.slice(0, 8)}: it is the only key, and without it the repository could never be opened again`);
    if (name === repo.keyId) {
      throw new UserError(`refusing to remove key ${name.slice(0, 8)}: it is the key in use (the one that opened the repository now); open the repository with another key to remove it, or use 'bh key passwd' to replace it`);
    }
    await repo.removeKey(name);
    this.report.jsonLine({ message_type: 'key_removed', id: name });
    this.report.line(`removed key ${name.slice(0, 8)}`);
    return 0;
  }
}

export class KeyPasswdCommand extends NewSecretCommand {
  static override paths = [['key', 'passwd']];
  static override usage = Command.Usage({
    category: 'Keys',
    description: 'change the password (or key file) in use',
    details: `
      Adds a key for the new password or key file, checks that it opens the repository, then
      removes the key that opened the repository this time. Other keys are not touched. Takes
      an exclusive lock.
      ${NEW_SECRET_DETAILS}
    `,
    examples: [['Change the password', 'BH_PASSWORD_FILE=/root/.bh bh key passwd -r /srv/backup --new-password-file /root/.bh-new']],
  });

  async run(): Promise<number> {
    const secret = await this.newSecret();
    const repo = await this.openRepository('exclusive');
    const id = await this.addVerifiedKey(repo, secret);
    await repo.removeKey(repo.keyId);
    this.report.jsonLine({ message_type: 'key_changed', id, removed: repo.keyId });
    this.report.line(`saved new key ${id.slice(0, 8)}, removed the old key ${repo.keyId.slice(0, 8)}`);
    return 0;
  }
}
