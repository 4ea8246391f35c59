import { Command } from 'clipanion';
import { versionInfo } from '../ops/provenance.js';
import { BhCommand } from './base.js';

export class VersionCommand extends BhCommand {
  static override paths = [['version']];
  static override usage = Command.Usage({
    description: 'show the versions bh is built from and runs on',
    details: `
      Prints bh's version and the commit it was built from, the Node.js and OpenSSL versions
      it runs on, the zstd library, whether the native addon loads, and the libfuse it loaded
      (if any). Include \`bh version --json\` in bug reports. A part that cannot be loaded is
      named with what to do, and bh exits 1.
    `,
    examples: [
      ['For a bug report', 'bh version --json'],
    ],
  });

  async run(): Promise<number> {
    const info = await versionInfo();
    if (this.json) this.report.json(info);
    const commit = info.commit === null ? 'not recorded' : `${info.commit}${info.dirty ? ' (with uncommitted changes)' : ''}${info.commitDate ? `, ${info.commitDate}` : ''}`;
    this.report.line(`bh ${info.bh}`);
    this.report.line(`commit       ${commit}`);
    this.report.line(`node         ${info.node} (OpenSSL ${info.openssl}) on ${info.platform}`);
    this.report.line(`zstd         ${info.zstd ?? 'not loaded'}`);
    this.report.line(`native addon ${info.nativeAddon.loaded ? 'loaded' : 'not loaded'} (${info.nativeAddon.path})`);
    this.report.line(`libfuse      ${info.libfuse ?? 'not loaded'}`);
    for (const problem of info.problems) this.report.warn(`bh: error: ${problem}`);
    return info.problems.length === 0 ? 0 : 1;
  }
}
