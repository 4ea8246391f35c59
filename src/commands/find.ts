import { Command, Option } from 'clipanion';
import { compilePatterns } from '../snapshot/exclude.js';
import { Finder } from '../snapshot/find.js';
import { selectSnapshots } from '../snapshot/snapshot.js';
import { localTime, longLine, nodeJson } from '../snapshot/walk.js';
import { RepositoryCommand, UserError } from './base.js';

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
      gid, size, modification time (local) and path. Snapshots without a match are left out.
      A tree that several snapshots share at the same path is searched once and its matches are
      reported for each of them. --json prints one JSON array of
      {"snapshot","short_id","time","hits","matches":[…]} with the fields of \`bh ls --json\`.
    `,
    examples: [
      ['Where were the nginx configs?', "bh find -r /srv/backup '*.conf' --path /etc"],
      ['One file in two snapshots', "bh find -r /srv/backup '/home/alice/notes.txt' --snapshot 1a2b3c4d --snapshot latest"],
    ],
  });

  patterns = Option.Rest({ name: 'pattern', required: 1 });
  snapshotRefs = Option.Array('-s,--snapshot', [], { description: 'Search only this snapshot (repeatable; latest and id prefixes work)' });
  host = Option.String('--host', { description: 'Only snapshots of this host' });
  tags = Option.Array('--tag', [], { description: 'Only snapshots with this tag (repeatable: all must match)' });
  filterPaths = Option.Array('--path', [], { description: 'Only snapshots of this path' });

  async run(): Promise<number> {
    if (this.patterns.every((p) => p.trim() === '')) throw new UserError('give at least one non-empty pattern');
    const matcher = compilePatterns(this.patterns);
    const repo = await this.openRepository();
    const all = await this.loadSnapshots(repo);
    const filter = { host: this.host, tags: this.tags, paths: this.filterPaths };
    const selected = selectSnapshots(all, this.snapshotRefs, filter);
    const indexed = await repo.loadIndex();
    const finder = new Finder(indexed, matcher, this.interruptSignal());
    const results: unknown[] = [];
    let first = true;
    for (const snapshot of selected) {
      this.report.progress(`searching snapshot ${snapshot.id.slice(0, 8)}`);
      const hits = await finder.find(Buffer.from(snapshot.record.tree, 'hex'));
      if (hits.length === 0) continue;
      if (this.json) {
        results.push({ snapshot: snapshot.id, short_id: snapshot.id.slice(0, 8), time: snapshot.record.time, hits: hits.length, matches: hits.map((h) => nodeJson(h.pathBytes, h.node)) });
        continue;
      }
      if (!first) this.report.line('');
      first = false;
      this.report.line(`Found matching entries in snapshot ${snapshot.id.slice(0, 8)} from ${localTime(Date.parse(snapshot.record.time))}`);
      for (const hit of hits) this.report.line(longLine(hit.path, hit.node));
    }
    this.report.clearProgress();
    if (this.json) this.context.stdout.write(JSON.stringify(results) + '\n');
    return 0;
  }
}
