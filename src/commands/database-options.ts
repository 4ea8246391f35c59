/**
 * The database connection options, one definition for `bh backup` and `bh db restore`: a
 * command declares the fields
 *
 *   mysqlHost = mysqlHostOption(); mysqlPort = mysqlPortOption(); mysqlUser = …; mysqlSocket = …;
 *   postgresHost = postgresHostOption(); postgresPort = …; postgresUser = …;
 *
 * and hands mysqlConnection(this, env) / postgresConnection(this, env) to the library.
 * Passwords come from BH_MYSQL_PASSWORD / BH_POSTGRES_PASSWORD (or the job's config file),
 * never from the command line, where every user of the machine could read them.
 */
import { Option } from 'clipanion';
import * as t from 'typanion';
import type { MysqlConnection } from '../sources/mysql.js';
import type { PostgresConnection } from '../sources/postgres.js';

const isPort = t.cascade(t.isNumber(), [t.isInteger(), t.isInInclusiveRange(1, 65535)]);

export const mysqlHostOption = (): string | undefined => Option.String('--mysql-host', { description: 'MySQL/MariaDB server host (default localhost: the local socket)' });
export const mysqlPortOption = (): number | undefined => Option.String('--mysql-port', { description: 'MySQL/MariaDB server port (default 3306)', validator: isPort });
export const mysqlUserOption = (): string | undefined => Option.String('--mysql-user', { description: 'MySQL/MariaDB user (password: BH_MYSQL_PASSWORD)' });
export const mysqlSocketOption = (): string | undefined => Option.String('--mysql-socket', { description: 'MySQL/MariaDB server socket file' });
export const postgresHostOption = (): string | undefined => Option.String('--postgres-host', { description: 'PostgreSQL host or socket directory (default: the local socket)' });
export const postgresPortOption = (): number | undefined => Option.String('--postgres-port', { description: 'PostgreSQL port (default 5432)', validator: isPort });
export const postgresUserOption = (): string | undefined => Option.String('--postgres-user', { description: 'PostgreSQL user (password: BH_POSTGRES_PASSWORD)' });

export interface MysqlFields {
  mysqlHost: string | undefined;
  mysqlPort: number | undefined;
  mysqlUser: string | undefined;
  mysqlSocket: string | undefined;
}

export interface PostgresFields {
  postgresHost: string | undefined;
  postgresPort: number | undefined;
  postgresUser: string | undefined;
}

export function mysqlConnection(fields: MysqlFields, env: Readonly<Record<string, string | undefined>>): MysqlConnection {
  return { host: fields.mysqlHost, port: fields.mysqlPort, socket: fields.mysqlSocket, user: fields.mysqlUser, password: env['BH_MYSQL_PASSWORD'] };
}

export function postgresConnection(fields: PostgresFields, env: Readonly<Record<string, string | undefined>>): PostgresConnection {
  return { host: fields.postgresHost, port: fields.postgresPort, user: fields.postgresUser, password: env['BH_POSTGRES_PASSWORD'] };
}

/** `--mysql a --mysql b,c` → [a, b, c]. */
export function databaseList(values: readonly string[]): string[] {
  return values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}
