import { Command, Option } from 'clipanion';
import { dumpFile, dumpTar } from '../snapshot/dump.js';
import { findSnapshot } from '../snapshot/snapshot.js';
import { resolvePath, splitSnapshotPath } from '../snapshot/walk.js';
import { RepositoryCommand, UserError } from './base.js';
import { hostFilter, pathFilter, snapshotFilter, tagFilter } from './snapshot-filter.js';

export class DumpCommand extends RepositoryCommand {
  static override paths = [['dump']];
  static override usage = Command.Usage({
    description: 'write a file of a snapshot to standard output, or a directory as tar',
    details: `
      Streams one file of a snapshot to standard output, byte for byte, every chunk verified as
      it is read: the way to pipe a database dump back into its server. A directory (or \`/\`,
      the whole snapshot) comes out as a tar stream, its entries named by their snapshot paths
      without the leading slash.

      \`latest\` picks the newest snapshot that matches --host, --tag and --path.
    `,
    examples: [
      ['Restore a MariaDB dump into a new database', 'mariadb -e "CREATE DATABASE app_restored" && bh dump -r /srv/backup latest /mysql/app.sql | mariadb app_restored'],
      ['The latest PostgreSQL dump of shop', 'bh dump -r /srv/backup --tag postgres latest /postgres/shop.sql | psql shop_restored'],
      ['A directory as a tar file', 'bh dump -r /srv/backup latest /etc > etc.tar'],
    ],
  });

  snapshot = Option.String({ name: 'snapshot' });
  filePath = Option.String({ name: 'path' });
  hosts = hostFilter('latest');
  tags = tagFilter('latest');
  filterPaths = pathFilter('latest');

  async run(): Promise<number> {
    if (this.json) throw new UserError('bh dump writes the data itself to standard output; --json does not apply');
    let components: Buffer[];
    try {
      components = splitSnapshotPath(this.filePath);
    } catch (error) {
      throw new UserError((error as Error).message);
    }
    const repo = await this.openRepository();
    const snapshots = await this.loadSnapshots(repo);
    const snapshot = findSnapshot(snapshots, this.snapshot, snapshotFilter(this));
    const indexed = await repo.loadIndex(snapshots.listing);
    const signal = this.interruptSignal();
    const trees = this.treeReader(indexed, signal);
    const root = Buffer.from(snapshot.record.tree, 'hex');
    const node = components.length === 0 ? undefined : await resolvePath(trees, root, components);
    if (components.length > 0 && !node) throw new UserError(`${this.filePath} is not in snapshot ${snapshot.id.slice(0, 8)}; list it with 'bh ls ${snapshot.id.slice(0, 8)}'`);
    const out = this.context.stdout;
    if (node?.type === 'file') await dumpFile(indexed, node, out, signal);
    else if (!node || node.type === 'dir') {
      const path = Buffer.concat(components.flatMap((c) => [Buffer.from('/'), c]));
      await dumpTar({ repo: indexed, trees, tree: node ? node.subtree! : root, path, node, out, signal });
    } else throw new UserError(`${this.filePath} is a ${node.type} in snapshot ${snapshot.id.slice(0, 8)}: bh dump writes files and directories`);
    return 0;
  }
}
