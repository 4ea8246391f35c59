import { Command, Option } from 'clipanion';
import { cliModel, generate } from '../clidoc/index.js';
import { bhVersion, buildInfo } from '../ops/provenance.js';
import { BhCommand, EXIT_CODE_MEANINGS, UserError } from './base.js';

export class GenerateCommand extends BhCommand {
  static override paths = [['generate']];
  static override usage = Command.Usage({
    description: 'write man pages and shell completion scripts',
    details: `
      Generates the man pages (bh(1) and one page per command, bh-backup(1), bh-key-add(1), …)
      and completion scripts for bash, zsh and fish from the definitions of the commands this bh
      has, so they always match it. The Debian package ships them; after \`npm install -g\`,
      generate them where your system looks for them. A file name \`-\` writes to stdout.

      The pages' date is SOURCE_DATE_EPOCH when set, else the date of the commit bh was built
      from.
    `,
    examples: [
      ['Man pages for this system', 'bh generate --man /usr/local/share/man/man1'],
      ['bash completion', 'bh generate --bash-completion /etc/bash_completion.d/bh'],
      ['zsh and fish completion', 'bh generate --zsh-completion ~/.zfunc/_bh --fish-completion ~/.config/fish/completions/bh.fish'],
      ['Try the bash completion in this shell', 'source <(bh generate --bash-completion -)'],
    ],
  });

  man = Option.String('--man', { description: 'Write the man pages into this directory' });
  bashCompletion = Option.String('--bash-completion', { description: 'Write the bash completion script to this file' });
  zshCompletion = Option.String('--zsh-completion', { description: 'Write the zsh completion script to this file' });
  fishCompletion = Option.String('--fish-completion', { description: 'Write the fish completion script to this file' });

  async run(): Promise<number> {
    const targets = { manDir: this.man, bash: this.bashCompletion, zsh: this.zshCompletion, fish: this.fishCompletion };
    if (Object.values(targets).every((t) => t === undefined)) {
      throw new UserError('nothing to generate: give --man DIR, --bash-completion FILE, --zsh-completion FILE or --fish-completion FILE');
    }
    const model = cliModel(this.cli.binaryName, this.cli.definitions());
    const written = await generate(model, { version: bhVersion(), date: this.pageDate(), summary: 'encrypted, deduplicating backups', description: OVERVIEW, exitCodes: EXIT_CODE_MEANINGS }, targets, this.context.stdout);
    for (const file of written.filter((f) => f !== '-')) {
      this.report.jsonLine({ message_type: 'generated', file });
      if (!this.json && targets.bash !== '-' && targets.zsh !== '-' && targets.fish !== '-') this.report.line(`wrote ${file}`);
    }
    return 0;
  }

  private pageDate(): string {
    const epoch = this.context.env['SOURCE_DATE_EPOCH'];
    if (epoch !== undefined && /^\d+$/.test(epoch)) return new Date(Number(epoch) * 1000).toISOString().slice(0, 10);
    return (buildInfo().commitDate ?? new Date().toISOString()).slice(0, 10);
  }
}

const OVERVIEW = [
  'bh backs up files into a content-addressed, encrypted chunk repository: files are cut into content-defined chunks, each chunk is compressed (zstd), encrypted and authenticated (AES-256-GCM) and stored once. Repositories live in a local directory, on an SFTP server (`sftp:user@host:/path`) or in an S3 bucket (`s3:bucket/prefix`).',
  'The repository is given with `-r`/`--repo` or `BH_REPO`; its password with `BH_PASSWORD`, `BH_PASSWORD_FILE`, `--password-file` or `--key-file`, never on the command line. Every command that reports takes `--json`. `bh COMMAND --help` prints a command\'s usage; each command has its own page below.',
  'Old Backup Handler configurations (config.ini) run with `bh run` and `bh schedule`. Full documentation: /usr/share/doc/bh/README.md (Debian package) or README.md in the npm package.',
];
