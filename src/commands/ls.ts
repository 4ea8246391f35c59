import { Command, Option } from 'clipanion';
import { findSnapshot } from '../snapshot/snapshot.js';
import { listEntries, longLine, nodeJson } from '../snapshot/walk.js';
import { RepositoryCommand } from './base.js';
import { hostFilter, pathFilter, snapshotFilter, tagFilter } from './snapshot-filter.js';

export class LsCommand extends RepositoryCommand {
  static override paths = [['ls']];
  static override usage = Command.Usage({
    description: 'list the files and directories of a snapshot',
    details: `
      As restic does: without PATH, every entry of the snapshot is listed, recursively, a
      directory before its contents, in name order. With one or more PATHs (absolute snapshot
      paths such as /srv/www), each PATH itself is listed followed by its direct entries, or by
      everything below it with --recursive. A PATH that is not in the snapshot is an error.

      \`latest\` picks the newest snapshot that matches --host, --tag and --path.

      With --long, each line shows mode, uid, gid, size and modification time (local time), and
      " -> target" for symlinks. --json prints one JSON object a line per entry: path, name, type, mode (permission
      bits as a number), permissions, uid, gid, size, mtime and ctime (ISO 8601 UTC with
      nanoseconds), inode, links, and linktarget for symlinks. A name that is not valid UTF-8 is
      shown with U+FFFD in place of the bad bytes; the JSON then also carries its exact bytes,
      base64, as name_bytes and path_bytes.
    `,
    examples: [
      ['Everything in the latest snapshot', 'bh ls -r /srv/backup latest'],
      ['One directory, with details', 'bh ls -r /srv/backup 1a2b3c4d /etc/nginx -l'],
      ['A subtree as JSON lines', 'bh ls -r /srv/backup latest /home/alice --recursive --json'],
    ],
  });

  snapshot = Option.String({ name: 'snapshot' });
  dirs = Option.Rest({ name: 'path' });
  long = Option.Boolean('-l,--long', false, { description: 'Show mode, owner, size and modification time' });
  recursive = Option.Boolean('--recursive', false, { description: 'With PATH: list everything below it, not only its direct entries' });
  hosts = hostFilter('latest');
  tags = tagFilter('latest');
  filterPaths = pathFilter('latest');

  async run(): Promise<number> {
    const repo = await this.openRepository();
    const snapshots = await this.loadSnapshots(repo);
    const snapshot = findSnapshot(snapshots, this.snapshot, snapshotFilter(this));
    const indexed = await repo.loadIndex(snapshots.listing);
    const signal = this.interruptSignal();
    for await (const entry of listEntries(this.treeReader(indexed, signal), Buffer.from(snapshot.record.tree, 'hex'), this.dirs, this.recursive)) {
      if (this.json) this.report.jsonLine(nodeJson(entry.pathBytes, entry.node));
      else this.report.line(this.long ? longLine(entry.path, entry.node) : entry.path);
      await this.report.drain(signal);
    }
    return 0;
  }
}
