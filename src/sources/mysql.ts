/**
 * MySQL and MariaDB dumps (the old tool's [DATABASE] section; `bh backup --mysql`), and
 * restores (`bh db restore --mysql`).
 *
 * - One `mariadb-dump` (or `mysqldump`, whichever is on PATH) per database, each its own file
 *   `/mysql/<db>.sql` without CREATE DATABASE / USE, so it restores under any name; with
 *   --single-transaction --quick --routines --triggers --events --hex-blob. Rows come in primary
 *   key order, so consecutive dumps share most chunks.
 * - The password reaches the tools through a 0600 option file in a 0700 directory of our own
 *   (`--defaults-extra-file`, which must be their first argument), removed afterwards.
 * - A dump is good only when the tool exits 0 and its output ends with "-- Dump completed".
 * - With binlog_position, `--master-data=2` (`--source-data=2` for MySQL 8.0.26 and later) makes
 *   the tool write, in a comment, the binary log file and position its transaction started at;
 *   that position (and the GTID the tool prints) is recorded per file in the snapshot record.
 * - mysql2 talks to the server first: the login is checked (a wrong password is a clear error,
 *   not a tool's stderr), `database = *` is listed, and binlog_position checks that binary
 *   logging is on (SHOW MASTER STATUS).
 */
import { basename } from 'node:path';
import mysql from 'mysql2/promise';
import { PrivateDir } from './private-files.js';
import { ProcessStream, feedProcess } from './process-stream.js';
import { type BinlogPosition, type DumpFileRecord, type DumpRecord, DumpFailedError, type Source, type SourceFile, databaseFileName } from './source.js';
import { findTool, toolEnvironment, toolVersion } from './tools.js';

export interface MysqlConnection {
  /** Default localhost, which (as for the mysql clients) means the default socket unless a port is given. */
  host?: string | undefined;
  port?: number | undefined;
  socket?: string | undefined;
  user?: string | undefined;
  password?: string | undefined;
}

export interface MysqlDumpSettings extends MysqlConnection {
  /** Names, or ['*'] for every database but the system schemas. */
  databases: string[];
  /** --single-transaction (InnoDB: a consistent view without locks); off: --lock-tables. Default on. */
  singleTransaction: boolean;
  /** Record the binary log position (and GTID) each dump starts at. */
  binlogPosition: boolean;
}

/** The schemas `database = *` leaves out. */
const SYSTEM_SCHEMAS = new Set(['information_schema', 'performance_schema', 'mysql', 'sys']);
const DUMP_TOOLS = ['mariadb-dump', 'mysqldump'];
const CLIENT_TOOLS = ['mariadb', 'mysql'];
const DEFAULT_SOCKET = '/run/mysqld/mysqld.sock';
const TRAILER = { pattern: /-- Dump completed[^\n]*\n?\s*$/, description: 'the closing "-- Dump completed" line' };

/** How messages name the server. */
export function mysqlServerName(c: MysqlConnection): string {
  const socket = socketOf(c);
  return socket !== undefined ? `the MySQL server at socket ${socket}` : `the MySQL server at ${c.host}:${c.port ?? 3306}`;
}

function socketOf(c: MysqlConnection): string | undefined {
  if (c.socket !== undefined) return c.socket;
  return (c.host === undefined || c.host === 'localhost') && c.port === undefined ? DEFAULT_SOCKET : undefined;
}

/** The [client] option file the tools read: values double-quoted, with \ and " escaped. */
function optionFile(c: MysqlConnection): string {
  const quote = (value: string): string => `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
  const lines = ['[client]'];
  const socket = socketOf(c);
  if (c.user !== undefined) lines.push(`user=${quote(c.user)}`);
  if (c.password !== undefined) lines.push(`password=${quote(c.password)}`);
  if (socket !== undefined) lines.push(`socket=${quote(socket)}`, 'protocol=socket');
  else lines.push(`host=${quote(c.host ?? 'localhost')}`, `port=${c.port ?? 3306}`, 'protocol=tcp');
  return `${lines.join('\n')}\n`;
}

/** Connects with mysql2, turning its errors into what the user needs to know. */
async function connect(c: MysqlConnection): Promise<mysql.Connection> {
  const socket = socketOf(c);
  try {
    return await mysql.createConnection({
      ...(socket !== undefined ? { socketPath: socket } : { host: c.host ?? 'localhost', port: c.port ?? 3306 }),
      user: c.user ?? 'root',
      password: c.password,
      connectTimeout: 10_000,
    });
  } catch (error) {
    throw new DumpFailedError(describeConnectError(c, error as NodeJS.ErrnoException));
  }
}

function describeConnectError(c: MysqlConnection, error: NodeJS.ErrnoException): string {
  const server = mysqlServerName(c);
  switch (error.code) {
    case 'ER_ACCESS_DENIED_ERROR':
    case 'ER_DBACCESS_DENIED_ERROR':
      return `${server} refused the login of user '${c.user ?? 'root'}': wrong user or password (give it in [DATABASE] user/password, or BH_MYSQL_PASSWORD)`;
    case 'ECONNREFUSED':
      return `cannot reach ${server}: connection refused (is the server running, and on that port?)`;
    case 'ENOENT':
      return `cannot reach ${server}: no such socket (is the server running? give --mysql-socket or a host and port)`;
    case 'ETIMEDOUT':
      return `cannot reach ${server}: timed out`;
    case 'ENOTFOUND':
      return `cannot reach ${server}: no such host`;
    default:
      return `cannot connect to ${server}: ${error.message}`;
  }
}

async function query<T>(conn: mysql.Connection, sql: string, params: unknown[] = []): Promise<T[]> {
  const [rows] = await conn.query(sql, params);
  return rows as T[];
}

interface ServerFacts {
  version: string;
  databases: string[];
}

/** Checks the login, resolves `*`, checks that the databases exist and, if asked, that binary logging is on. */
async function inspectServer(s: MysqlDumpSettings): Promise<ServerFacts> {
  const conn = await connect(s);
  try {
    const [{ version }] = (await query<{ version: string }>(conn, 'SELECT VERSION() AS version')) as [{ version: string }];
    const present = (await query<{ Database: string }>(conn, 'SHOW DATABASES')).map((r) => r.Database);
    let databases: string[];
    if (s.databases.includes('*')) databases = present.filter((d) => !SYSTEM_SCHEMAS.has(d.toLowerCase()));
    else {
      const missing = s.databases.filter((d) => !present.includes(d));
      if (missing.length > 0) throw new DumpFailedError(`${mysqlServerName(s)} has no database ${missing.map((d) => `'${d}'`).join(', ')} (or user '${s.user ?? 'root'}' may not see it); it has: ${present.filter((d) => !SYSTEM_SCHEMAS.has(d.toLowerCase())).join(', ') || 'none'}`);
      databases = [...new Set(s.databases)];
    }
    if (databases.length === 0) throw new DumpFailedError(`${mysqlServerName(s)} has no database to dump besides the system schemas`);
    if (s.binlogPosition && (await query(conn, 'SHOW MASTER STATUS')).length === 0) {
      throw new DumpFailedError(`binlog_position is on, but binary logging is off on ${mysqlServerName(s)} (SHOW MASTER STATUS is empty): start the server with log_bin, or set binlog_position = False`);
    }
    return { version, databases };
  } catch (error) {
    if (error instanceof DumpFailedError) throw error;
    throw new DumpFailedError(`${mysqlServerName(s)}: ${(error as Error).message}`);
  } finally {
    await conn.end().catch(() => undefined);
  }
}

/** MariaDB's tools and MySQL's before 8.0.26 say --master-data; later MySQL tools --source-data. */
function binlogFlag(toolVersionLine: string): string {
  if (/mariadb/i.test(toolVersionLine)) return '--master-data=2';
  const m = /Ver (\d+)\.(\d+)\.(\d+)/.exec(toolVersionLine);
  const newer = m !== null && (Number(m[1]) > 8 || (Number(m[1]) === 8 && (Number(m[2]) > 0 || Number(m[3]) >= 26)));
  return newer ? '--source-data=2' : '--master-data=2';
}

/**
 * The binary log position the dump's comment header states (`CHANGE MASTER TO MASTER_LOG_FILE=…,
 * MASTER_LOG_POS=…` or MySQL's `CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE=…`), and the GTID
 * the tool prints (MariaDB at the end: gtid_slave_pos; MySQL at the start: GTID_PURGED).
 */
export function parseBinlogPosition(header: string, trailer: string): BinlogPosition | undefined {
  const m = /(?:MASTER|SOURCE)_LOG_FILE='([^']+)',\s*(?:MASTER|SOURCE)_LOG_POS=(\d+)/.exec(header);
  if (!m) return undefined;
  const gtid = /gtid_slave_pos='([^']*)'/.exec(trailer)?.[1] ?? /GTID_PURGED=(?:\/\*!\d+ '\+'\*\/ )?'([^']*)'/.exec(header)?.[1];
  return { file: m[1]!, position: Number(m[2]), ...(gtid ? { gtid } : {}) };
}

export interface ToolOptions {
  env: Readonly<Record<string, string | undefined>>;
}

/** The databases of `settings` as files `/mysql/<db>.sql`. */
export function mysqlSource(settings: MysqlDumpSettings, options: ToolOptions): Source {
  let dir: PrivateDir | undefined;
  let current: ProcessStream | undefined;
  let record: DumpRecord | undefined;
  return {
    paths: ['/mysql'],
    async *files(signal?: AbortSignal): AsyncGenerator<SourceFile> {
      const tool = findTool(DUMP_TOOLS, options.env);
      if (tool === undefined) throw new DumpFailedError(`neither ${DUMP_TOOLS.join(' nor ')} is on PATH: install the MariaDB or MySQL client (Debian: apt install mariadb-client)`);
      const facts = await inspectServer(settings);
      const version = await toolVersion(tool, options.env);
      dir = await PrivateDir.create('mysql');
      const optionsFile = await dir.write('client.cnf', optionFile(settings));
      const flags = [
        settings.singleTransaction ? '--single-transaction' : '--lock-tables',
        '--quick',
        '--routines',
        '--triggers',
        '--events',
        '--hex-blob',
        ...(settings.binlogPosition ? [binlogFlag(version)] : []),
      ];
      const files: DumpFileRecord[] = [];
      for (const database of facts.databases) {
        const path = `/mysql/${databaseFileName(database)}.sql`;
        const stream = new ProcessStream({
          argv: [tool, `--defaults-extra-file=${optionsFile}`, ...flags, '--', database],
          env: toolEnvironment(options.env),
          what: `${basename(tool)} of database '${database}' on ${mysqlServerName(settings)}`,
          trailer: TRAILER,
          signal,
        });
        current = stream;
        const verify = async (): Promise<void> => {
          await stream.verify();
          const file: DumpFileRecord = { path, database };
          if (settings.binlogPosition) {
            const binlog = parseBinlogPosition(stream.header(), stream.trailerText());
            if (!binlog) throw new DumpFailedError(`${basename(tool)} of database '${database}': the dump states no binary log position (no CHANGE MASTER comment in its header)`);
            file.binlog = binlog;
          }
          files.push(file);
        };
        yield { path, data: stream.data(), verify };
      }
      record = { version: 1, engine: 'mysql', server_version: facts.version, tool: version, files };
    },
    dumpRecord: () => record,
    async close(): Promise<void> {
      current?.kill();
      await dir?.remove();
    },
  };
}

export interface MysqlRestoreOptions extends ToolOptions {
  /** CREATE DATABASE first (refused when it exists); otherwise the database must exist. */
  create: boolean;
  signal?: AbortSignal | undefined;
}

/**
 * Streams a dump into `mariadb` (or `mysql`) connected to `database`, which stops at the first
 * error and exits non-zero: then this throws with its message.
 */
export async function restoreMysql(connection: MysqlConnection, database: string, input: AsyncIterable<Uint8Array>, options: MysqlRestoreOptions): Promise<void> {
  const tool = findTool(CLIENT_TOOLS, options.env);
  if (tool === undefined) throw new DumpFailedError(`neither ${CLIENT_TOOLS.join(' nor ')} is on PATH: install the MariaDB or MySQL client (Debian: apt install mariadb-client)`);
  const conn = await connect(connection);
  try {
    const exists = (await query(conn, 'SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [database])).length > 0;
    if (options.create) {
      if (exists) throw new DumpFailedError(`database '${database}' already exists on ${mysqlServerName(connection)}: leave out --create to restore into it, or choose another name with --into`);
      await query(conn, `CREATE DATABASE ${conn.escapeId(database)}`);
    } else if (!exists) {
      throw new DumpFailedError(`database '${database}' does not exist on ${mysqlServerName(connection)}: add --create to create it`);
    }
  } catch (error) {
    if (error instanceof DumpFailedError) throw error;
    throw new DumpFailedError(`${mysqlServerName(connection)}: ${(error as Error).message}`);
  } finally {
    await conn.end().catch(() => undefined);
  }
  const dir = await PrivateDir.create('mysql');
  try {
    const optionsFile = await dir.write('client.cnf', optionFile(connection));
    await feedProcess({
      argv: [tool, `--defaults-extra-file=${optionsFile}`, `--database=${database}`],
      env: toolEnvironment(options.env),
      what: `${basename(tool)} restoring into database '${database}' on ${mysqlServerName(connection)}`,
      input,
      signal: options.signal,
    });
  } finally {
    await dir.remove();
  }
}
