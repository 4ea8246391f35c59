import { Command, Option } from 'clipanion';
import { loadDatabaseConnections } from '../jobs/config.js';
import { ConfigError } from '../jobs/ini.js';
import { fileContent } from '../snapshot/dump.js';
import { findSnapshot } from '../snapshot/snapshot.js';
import { resolvePath, splitSnapshotPath } from '../snapshot/walk.js';
import { type MysqlConnection, restoreMysql } from '../sources/mysql.js';
import { type PostgresConnection, restorePostgres } from '../sources/postgres.js';
import { databaseFileName } from '../sources/source.js';
import { ExitCode, RepositoryCommand, UserError } from './base.js';
import { mysqlConnection, mysqlHostOption, mysqlPortOption, mysqlSocketOption, mysqlUserOption, postgresConnection, postgresHostOption, postgresPortOption, postgresUserOption } from './database-options.js';
import { hostFilter, snapshotFilter, tagFilter } from './snapshot-filter.js';

export class DbRestoreCommand extends RepositoryCommand {
  static override paths = [['db', 'restore']];
  static override usage = Command.Usage({
    description: 'restore a database dump of a snapshot into a database server',
    details: `
      Streams the dump of one database (\`/mysql/DB.sql\` or \`/postgres/DB.sql\`) from the
      snapshot into \`mariadb\`/\`mysql\` or \`psql\`, which stop at the first error: then bh
      exits 1 with their message. psql runs it in one transaction, so a failed restore leaves
      nothing behind; MariaDB keeps what ran before the error.

      --into restores under another name (the dumps hold no database name); --create creates
      the target database first (and refuses one that exists). Without --create the target must
      exist. Connections: the --mysql-*/--postgres-* options, BH_MYSQL_PASSWORD /
      BH_POSTGRES_PASSWORD, or a job's --config (its [DATABASE] / [POSTGRES]); options win over
      the config file.

      \`latest\` picks the newest snapshot with a /mysql (or /postgres) path that matches --host
      and --tag. PostgreSQL roles are in /postgres/globals.sql: \`bh dump latest
      /postgres/globals.sql | psql postgres\`.
    `,
    examples: [
      ['Restore app from the latest snapshot into a new database app_restored', 'BH_MYSQL_PASSWORD=… bh db restore -r /srv/backup latest --mysql app --into app_restored --create --mysql-user root'],
      ['With the connection of a job', 'bh db restore -r /srv/backup 3f9a0c21 --mysql app --config /etc/bh/config.ini'],
      ['PostgreSQL', 'BH_POSTGRES_PASSWORD=… bh db restore -r /srv/backup latest --postgres shop --into shop_test --create --postgres-host 127.0.0.1'],
    ],
  });

  snapshot = Option.String({ name: 'snapshot' });
  mysql = Option.String('--mysql', { description: 'Restore the dump of this MySQL/MariaDB database' });
  postgres = Option.String('--postgres', { description: 'Restore the dump of this PostgreSQL database' });
  into = Option.String('--into', { description: 'Restore into this database (default: the same name)' });
  create = Option.Boolean('--create', false, { description: 'Create the target database first (it must not exist)' });
  config = Option.String('--config', { description: 'Take the connection from this job config file ([DATABASE] or [POSTGRES])' });
  mysqlHost = mysqlHostOption();
  mysqlPort = mysqlPortOption();
  mysqlUser = mysqlUserOption();
  mysqlSocket = mysqlSocketOption();
  postgresHost = postgresHostOption();
  postgresPort = postgresPortOption();
  postgresUser = postgresUserOption();
  hosts = hostFilter('latest');
  tags = tagFilter('latest');

  async run(): Promise<number> {
    if ((this.mysql === undefined) === (this.postgres === undefined)) throw new UserError('name the database to restore with --mysql DB or --postgres DB (one of them)');
    const engine = this.mysql !== undefined ? 'mysql' : 'postgres';
    const database = (this.mysql ?? this.postgres)!;
    const target = this.into ?? database;
    const env = this.context.env;
    const fromConfig = this.config === undefined ? {} : this.configConnections();
    const repo = await this.openRepository();
    const snapshots = await this.loadSnapshots(repo);
    const snapshot = findSnapshot(snapshots, this.snapshot, { ...snapshotFilter({ hosts: this.hosts, tags: this.tags, filterPaths: [] }), paths: [`/${engine}`] });
    const indexed = await repo.loadIndex(snapshots.listing);
    const signal = this.interruptSignal();
    const file = `/${engine}/${databaseFileName(database)}.sql`;
    const node = await resolvePath(this.treeReader(indexed, signal), Buffer.from(snapshot.record.tree, 'hex'), splitSnapshotPath(file));
    if (node?.type !== 'file') throw new UserError(`snapshot ${snapshot.id.slice(0, 8)} has no ${file}; list its dumps with 'bh ls ${snapshot.id.slice(0, 8)} /${engine}'`);
    const input = fileContent(indexed, node, signal);
    const options = { create: this.create, env, signal };
    this.report.line(`restoring ${file} of snapshot ${snapshot.id.slice(0, 8)} into ${engine === 'mysql' ? 'MySQL' : 'PostgreSQL'} database '${target}'`);
    // A failure (DumpFailedError: the client's own message) ends the command with exit 1.
    if (engine === 'mysql') await restoreMysql(this.mysqlTarget(fromConfig.mysql), target, input, options);
    else await restorePostgres(this.postgresTarget(fromConfig.postgres), target, input, options);
    this.report.line(`restored ${file} into '${target}'`);
    return ExitCode.ok;
  }

  private configConnections(): ReturnType<typeof loadDatabaseConnections> {
    try {
      return loadDatabaseConnections(this.config!, this.context.env);
    } catch (error) {
      if (error instanceof ConfigError) throw new UserError(error.message);
      throw error;
    }
  }

  /** Options given on the command line win over the config file's. */
  private mysqlTarget(fromConfig: MysqlConnection | undefined): MysqlConnection {
    const given = mysqlConnection(this, this.context.env);
    return { host: given.host ?? fromConfig?.host, port: given.port ?? fromConfig?.port, socket: given.socket ?? fromConfig?.socket, user: given.user ?? fromConfig?.user, password: given.password ?? fromConfig?.password };
  }

  private postgresTarget(fromConfig: PostgresConnection | undefined): PostgresConnection {
    const given = postgresConnection(this, this.context.env);
    return { host: given.host ?? fromConfig?.host, port: given.port ?? fromConfig?.port, user: given.user ?? fromConfig?.user, password: given.password ?? fromConfig?.password };
  }
}
