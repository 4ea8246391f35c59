import { Command, Option } from 'clipanion';
import { compilePatterns } from '../snapshot/exclude.js';
import { Finder } from '../snapshot/find.js';
import { selectSnapshots } from '../snapshot/snapshot.js';
import { localTime, longLine, nodeJson } from '../snapshot/walk.js';
import { RepositoryCommand, UserError } from './base.js';
import { hostFilter, pathFilter, snapshotFilter, tagFilter } from './snapshot-filter.js';

export class FindCommand extends RepositoryCommand {
  static override paths = [['find']];
  static override usage = Command.Usage({
    description: 'find files and directories in snapshots',
    details: `
      Searches every snapshot (or those given with --snapshot, or those matching --host, --tag
      and --path) for entries matching any PATTERN. Patterns are shell globs as for --exclude: a
      pattern without "/" matches an entry's name anywhere (\`*.conf\`), one with "/" matches the
      whole snapshot path (\`/etc/**/*.conf\`; \`nginx/*.conf\` is anchored anywhere). Quote
      patterns so that the shell does not expand them. Matching directories are listed and
      searched further.

      Matches are grouped by snapshot (oldest first), each as restic's long listing: mode, uid,
      gid, size, modification time (local) and path, printed as they are found. Snapshots
      without a match are left out. A directory found to hold no match is not searched again,
      in a later snapshot or elsewhere in the same one (with a pattern containing "/": at the
      same path). --json prints one JSON array of
      {"snapshot","short_id","time","matches":[…],"hits"} with the fields of \`bh ls --json\`.
      A malformed pattern (an unclosed "[" or "{", a range such as [z-a]) is refused.
    `,
    examples: [
      ['Where were the nginx configs?', "bh find -r /srv/backup '*.conf' --path /etc"],
      ['One file in two snapshots', "bh find -r /srv/backup '/home/alice/notes.txt' --snapshot 1a2b3c4d --snapshot latest"],
    ],
  });

  patterns = Option.Rest({ name: 'pattern', required: 1 });
  snapshotRefs = Option.Array('-s,--snapshot', [], { description: 'Search only this snapshot (repeatable; latest and id prefixes work)' });
  hosts = hostFilter('snapshots');
  tags = tagFilter('snapshots');
  filterPaths = pathFilter('snapshots');

  async run(): Promise<number> {
    if (this.patterns.every((p) => p.trim() === '')) throw new UserError('give at least one non-empty pattern');
    const patterns = compilePatterns(this.patterns);
    const repo = await this.openRepository();
    const all = await this.loadSnapshots(repo);
    const filter = snapshotFilter(this);
    const selected = selectSnapshots(all, this.snapshotRefs, filter);
    const indexed = await repo.loadIndex(all.listing);
    const signal = this.interruptSignal();
    const finder = new Finder(this.treeReader(indexed, signal), patterns);
    // Matches are written as they are found, the JSON document too: memory does not grow with them.
    const out = this.report;
    let groups = 0;
    for (const snapshot of selected) {
      this.report.progress(`searching snapshot ${snapshot.id.slice(0, 8)}`);
      let hits = 0;
      for await (const hit of finder.find(Buffer.from(snapshot.record.tree, 'hex'))) {
        if (hits++ === 0) {
          if (this.json) out.raw(`${groups === 0 ? '[' : ','}{"snapshot":"${snapshot.id}","short_id":"${snapshot.id.slice(0, 8)}","time":${JSON.stringify(snapshot.record.time)},"matches":[`);
          else this.report.line(`${groups === 0 ? '' : '\n'}Found matching entries in snapshot ${snapshot.id.slice(0, 8)} from ${localTime(Date.parse(snapshot.record.time))}`);
          groups++;
        }
        if (this.json) out.raw(`${hits === 1 ? '' : ','}${JSON.stringify(nodeJson(hit.pathBytes, hit.node))}`);
        else this.report.line(longLine(hit.path, hit.node));
        await this.report.drain(signal);
      }
      if (this.json && hits > 0) out.raw(`],"hits":${hits}}`);
    }
    this.report.clearProgress();
    if (this.json) out.raw(groups === 0 ? '[]\n' : ']\n');
    return 0;
  }
}
