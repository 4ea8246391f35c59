/**
 * The database sections of a job: the old tool's [DATABASE] (MySQL/MariaDB: user, password,
 * database, host, port, single_transaction, binlog_position; bh adds socket) and bh's
 * [POSTGRES] (host, port, user, password, database). `[MODES] db = True` dumps every section
 * that names a database; `database` is a comma-separated list, or `*` for all. A password not in
 * the file comes from BH_MYSQL_PASSWORD / BH_POSTGRES_PASSWORD.
 */
import type { MysqlDumpSettings } from '../sources/mysql.js';
import type { PostgresDumpSettings } from '../sources/postgres.js';

export interface DatabaseJob {
  mysql?: MysqlDumpSettings | undefined;
  postgres?: PostgresDumpSettings | undefined;
}

/** What config.ts's reader offers (typed values, every problem collected). */
export interface SectionReader {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly warnings: string[];
  entry(section: string, key: string): unknown;
  string(section: string, key: string, required?: string): string | undefined;
  bool(section: string, key: string, fallback: boolean, required?: string): boolean;
  number(section: string, key: string, fallback: number, kind: 'integer' | 'decimal', min: number): number;
  list(section: string, key: string, required?: string): string[];
  problem(section: string, key: string | undefined, problem: string, fix: string): void;
}

export const DATABASE_KEYS = ['user', 'password', 'database', 'host', 'port', 'socket', 'single_transaction', 'binlog_position'];
export const POSTGRES_KEYS = ['host', 'port', 'user', 'password', 'database'];

/** The connections of both sections, whether or not [MODES] db is on (`bh db restore --config`). */
export function readDatabaseConnections(r: SectionReader): DatabaseJob {
  const out: DatabaseJob = {};
  if (r.entry('DATABASE', 'database') !== undefined || r.entry('DATABASE', 'user') !== undefined) {
    out.mysql = {
      host: r.string('DATABASE', 'host'),
      port: r.entry('DATABASE', 'port') === undefined ? undefined : r.number('DATABASE', 'port', 3306, 'integer', 1),
      socket: r.string('DATABASE', 'socket'),
      user: r.string('DATABASE', 'user'),
      password: r.string('DATABASE', 'password') ?? r.env['BH_MYSQL_PASSWORD'],
      databases: r.list('DATABASE', 'database'),
      singleTransaction: r.bool('DATABASE', 'single_transaction', true),
      binlogPosition: r.bool('DATABASE', 'binlog_position', false),
    };
  }
  if (r.entry('POSTGRES', 'database') !== undefined || r.entry('POSTGRES', 'user') !== undefined) {
    out.postgres = {
      host: r.string('POSTGRES', 'host'),
      port: r.entry('POSTGRES', 'port') === undefined ? undefined : r.number('POSTGRES', 'port', 5432, 'integer', 1),
      user: r.string('POSTGRES', 'user'),
      password: r.string('POSTGRES', 'password') ?? r.env['BH_POSTGRES_PASSWORD'],
      databases: r.list('POSTGRES', 'database'),
    };
  }
  return out;
}

/** The dumps a run makes: none unless [MODES] db = True, then each section that names databases. */
export function readDatabaseJob(r: SectionReader): DatabaseJob {
  const enabled = r.bool('MODES', 'db', false);
  const found = readDatabaseConnections(r);
  if (!enabled) {
    if (found.mysql || found.postgres) r.warnings.push(`[${found.mysql ? 'DATABASE' : 'POSTGRES'}] is not dumped: [MODES] db is not True`);
    return {};
  }
  for (const [section, settings] of [['DATABASE', found.mysql], ['POSTGRES', found.postgres]] as const) {
    if (settings && settings.databases.length === 0) r.problem(section, 'database', 'is not set', 'name the databases to dump, comma-separated, or * for all');
  }
  if (!found.mysql && !found.postgres) r.problem('MODES', 'db', 'is True, but neither [DATABASE] (MySQL/MariaDB) nor [POSTGRES] names a database', 'add a [DATABASE] section with user, password and database (or [POSTGRES]), or set db = False');
  return found;
}

/** What `bh config check` shows of the dumps: connections and options, never the passwords. */
export function describeDatabaseJob(d: DatabaseJob): { mysql: Record<string, unknown> | null; postgres: Record<string, unknown> | null } {
  const { password: _mysqlPassword, ...mysql } = d.mysql ?? { password: undefined };
  const { password: _postgresPassword, ...postgres } = d.postgres ?? { password: undefined };
  return { mysql: d.mysql ? mysql : null, postgres: d.postgres ? postgres : null };
}
