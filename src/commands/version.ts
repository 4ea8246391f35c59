import { Command, Option } from 'clipanion';
import { versionInfo } from '../ops/provenance.js';

/**
 * A plain clipanion command, not a BhCommand: base.ts loads the repository layer and with it
 * zstd-napi, and `bh version` must still run, and say so, when a native module is not built.
 */
export class VersionCommand extends Command {
  static override paths = [['version']];
  static override usage = Command.Usage({
    description: 'show the versions bh is built from and runs on',
    details: `
      Prints bh's version and the commit it was built from, the Node.js and OpenSSL versions
      it runs on, the zstd library, whether the native addon loads, and the libfuse it loaded
      (if any). Include \`bh version --json\` in bug reports. A part that cannot be loaded is
      named with what to do, and bh exits 1.
    `,
    examples: [['For a bug report', 'bh version --json']],
  });

  json = Option.Boolean('--json', false, { description: 'Print JSON instead of text' });

  async execute(): Promise<number> {
    const info = await versionInfo();
    const { stdout, stderr } = this.context;
    if (this.json) {
      stdout.write(JSON.stringify(info) + '\n');
    } else {
      const commit = info.commit === null ? 'not recorded' : `${info.commit}${info.dirty ? ' (with uncommitted changes)' : ''}${info.commitDate ? `, ${info.commitDate}` : ''}`;
      stdout.write(
        [
          `bh ${info.bh}`,
          `commit       ${commit}`,
          `node         ${info.node} (OpenSSL ${info.openssl}) on ${info.platform}`,
          `zstd         ${info.zstd ?? 'not loaded'}`,
          `native addon ${info.nativeAddon.loaded ? 'loaded' : 'not loaded'} (${info.nativeAddon.path})`,
          `libfuse      ${info.libfuse ?? 'not loaded'}`,
        ].join('\n') + '\n',
      );
    }
    for (const problem of info.problems) stderr.write(`bh: error: ${problem}\n`);
    return info.problems.length === 0 ? 0 : 1;
  }
}
