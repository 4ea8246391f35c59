/**
 * PostgreSQL dumps ([POSTGRES]; `bh backup --postgres`) and restores (`bh db restore --postgres`).
 *
 * - `pg_dump --format=plain` per database, as `/postgres/<db>.sql`, without CREATE DATABASE,
 *   so it restores under any name with psql; plain text, not the custom format, because the
 *   custom format compresses by default (which defeats dedup) and plain is what a `bh dump |
 *   psql` pipe wants. `pg_dumpall --globals-only` alongside, as `/postgres/globals.sql` (roles
 *   and tablespaces, which no single database's dump holds; it needs a superuser).
 * - The password reaches the tools through a 0600 passfile in a 0700 directory of our own,
 *   named by PGPASSFILE (a path, not the secret), removed afterwards.
 * - A dump is good only when the tool exits 0 and its output ends with "-- PostgreSQL database
 *   dump complete" (pg_dumpall: "… database cluster dump complete"), and at most the
 *   `\unrestrict KEY` line newer versions write after it.
 * - psql talks to the server first: the login is checked, `database = *` is listed (every
 *   database that accepts connections, templates left out).
 */
import { execFile } from 'node:child_process';
import { basename } from 'node:path';
import { PrivateDir } from './private-files.js';
import { ProcessStream, feedProcess } from './process-stream.js';
import { type DumpFileRecord, type DumpRecord, DumpFailedError, type Source, type SourceFile, databaseFileName } from './source.js';
import { findTool, toolEnvironment, toolVersion } from './tools.js';
import type { ToolOptions } from './mysql.js';

export interface PostgresConnection {
  /** A host name, an IP address, or a socket directory (starting with /); default: libpq's (the local socket). */
  host?: string | undefined;
  port?: number | undefined;
  user?: string | undefined;
  password?: string | undefined;
}

export interface PostgresDumpSettings extends PostgresConnection {
  /** Names, or ['*'] for every database that accepts connections, templates left out. */
  databases: string[];
}

// pg_dump since 17.6/16.10/15.14 (CVE-2025-8714) ends with `\unrestrict KEY` after the comment.
const DUMP_TRAILER = { pattern: /-- PostgreSQL database dump complete\s*--\s*(\\unrestrict \S+\s*)?$/, description: 'the closing "PostgreSQL database dump complete" comment' };
const GLOBALS_TRAILER = { pattern: /-- PostgreSQL database cluster dump complete\s*--\s*(\\unrestrict \S+\s*)?$/, description: 'the closing "PostgreSQL database cluster dump complete" comment' };

export function postgresServerName(c: PostgresConnection): string {
  return `the PostgreSQL server at ${c.host ?? 'the local socket'}${c.port === undefined ? '' : `:${c.port}`}`;
}

/** libpq's passfile: one line host:port:database:user:password, with : and \ escaped. */
function passfile(c: PostgresConnection): string {
  const escape = (value: string): string => value.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  return `*:*:*:*:${escape(c.password ?? '')}\n`;
}

/** Connection arguments every tool takes (never the password). */
function connectionArgs(c: PostgresConnection): string[] {
  return [...(c.host !== undefined ? ['--host', c.host] : []), ...(c.port !== undefined ? ['--port', String(c.port)] : []), ...(c.user !== undefined ? ['--username', c.user] : []), '--no-password'];
}

/** A private directory holding the passfile, and the environment that names it. */
async function credentials(c: PostgresConnection, env: Readonly<Record<string, string | undefined>>): Promise<{ dir: PrivateDir; env: Record<string, string | undefined> }> {
  const dir = await PrivateDir.create('postgres');
  const extra: Record<string, string> = { PGCONNECT_TIMEOUT: '10' };
  if (c.password !== undefined) extra['PGPASSFILE'] = await dir.write('passfile', passfile(c));
  return { dir, env: toolEnvironment(env, extra) };
}

/** Runs psql with one query against the maintenance database; its rows, one per line. */
function psqlQuery(psql: string, c: PostgresConnection, env: Record<string, string | undefined>, database: string, sql: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(psql, [...connectionArgs(c), '--dbname', database, '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], { env: env as NodeJS.ProcessEnv, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) reject(new DumpFailedError(describePsqlError(c, error as NodeJS.ErrnoException, stderr)));
      else resolve(stdout.split('\n').filter((line) => line !== ''));
    });
  });
}

function describePsqlError(c: PostgresConnection, error: NodeJS.ErrnoException, stderr: string): string {
  if (error.code === 'ENOENT') return 'psql is not on PATH: install the PostgreSQL client (Debian: apt install postgresql-client)';
  const said = stderr.trim().replace(/^psql: (error: )?/, '');
  if (/password authentication failed|no password supplied|authentication failed/.test(said)) return `${postgresServerName(c)} refused the login of user '${c.user ?? '(default)'}': wrong user or password (give it in [POSTGRES] user/password, or BH_POSTGRES_PASSWORD); it said: ${said}`;
  if (/Connection refused|No such file or directory/.test(said)) return `cannot reach ${postgresServerName(c)} (is the server running, and on that port?); it said: ${said}`;
  return `${postgresServerName(c)}: ${said || error.message}`;
}

function requireTool(names: string[], env: Readonly<Record<string, string | undefined>>): string {
  const tool = findTool(names, env);
  if (tool === undefined) throw new DumpFailedError(`${names[0]} is not on PATH: install the PostgreSQL client (Debian: apt install postgresql-client)`);
  return tool;
}

/** The databases of `settings` as `/postgres/<db>.sql`, then `/postgres/globals.sql`. */
export function postgresSource(settings: PostgresDumpSettings, options: ToolOptions): Source {
  let dir: PrivateDir | undefined;
  let current: ProcessStream | undefined;
  let record: DumpRecord | undefined;
  return {
    paths: ['/postgres'],
    async *files(signal?: AbortSignal): AsyncGenerator<SourceFile> {
      const pgDump = requireTool(['pg_dump'], options.env);
      const pgDumpall = requireTool(['pg_dumpall'], options.env);
      const psql = requireTool(['psql'], options.env);
      const creds = await credentials(settings, options.env);
      dir = creds.dir;
      const [version] = await psqlQuery(psql, settings, creds.env, 'postgres', 'SHOW server_version');
      const present = await psqlQuery(psql, settings, creds.env, 'postgres', 'SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname');
      let databases: string[];
      if (settings.databases.includes('*')) databases = present;
      else {
        const missing = settings.databases.filter((d) => !present.includes(d));
        if (missing.length > 0) throw new DumpFailedError(`${postgresServerName(settings)} has no database ${missing.map((d) => `'${d}'`).join(', ')}; it has: ${present.join(', ')}`);
        databases = [...new Set(settings.databases)];
      }
      const tool = await toolVersion(pgDump, options.env);
      const files: DumpFileRecord[] = [];
      const dumps = [
        ...databases.map((database) => ({ path: `/postgres/${databaseFileName(database)}.sql`, database, argv: [pgDump, ...connectionArgs(settings), '--format=plain', '--dbname', database], trailer: DUMP_TRAILER, what: `pg_dump of database '${database}'` })),
        { path: '/postgres/globals.sql', database: undefined, argv: [pgDumpall, ...connectionArgs(settings), '--globals-only', '--database=postgres'], trailer: GLOBALS_TRAILER, what: 'pg_dumpall --globals-only' },
      ];
      for (const dump of dumps) {
        const stream = new ProcessStream({ argv: dump.argv, env: creds.env, what: `${dump.what} on ${postgresServerName(settings)}`, trailer: dump.trailer, signal });
        current = stream;
        const verify = async (): Promise<void> => {
          await stream.verify();
          files.push(dump.database === undefined ? { path: dump.path } : { path: dump.path, database: dump.database });
        };
        yield { path: dump.path, data: stream.data(), verify };
      }
      record = { version: 1, engine: 'postgres', server_version: version ?? '', tool, files };
    },
    dumpRecord: () => record,
    async close(): Promise<void> {
      current?.kill();
      await dir?.remove();
    },
  };
}

export interface PostgresRestoreOptions extends ToolOptions {
  /** CREATE DATABASE first (refused when it exists); otherwise the database must exist. */
  create: boolean;
  signal?: AbortSignal | undefined;
}

/** Streams a dump into psql connected to `database`, in one transaction, stopping at the first error. */
export async function restorePostgres(connection: PostgresConnection, database: string, input: AsyncIterable<Uint8Array>, options: PostgresRestoreOptions): Promise<void> {
  const psql = requireTool(['psql'], options.env);
  const creds = await credentials(connection, options.env);
  try {
    const exists = (await psqlQuery(psql, connection, creds.env, 'postgres', `SELECT 1 FROM pg_database WHERE datname = '${database.replace(/'/g, "''")}'`)).length > 0;
    if (options.create) {
      if (exists) throw new DumpFailedError(`database '${database}' already exists on ${postgresServerName(connection)}: leave out --create to restore into it, or choose another name with --into`);
      await psqlQuery(psql, connection, creds.env, 'postgres', `CREATE DATABASE "${database.replace(/"/g, '""')}"`);
    } else if (!exists) {
      throw new DumpFailedError(`database '${database}' does not exist on ${postgresServerName(connection)}: add --create to create it`);
    }
    await feedProcess({
      argv: [psql, ...connectionArgs(connection), '--dbname', database, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction'],
      env: creds.env,
      what: `${basename(psql)} restoring into database '${database}' on ${postgresServerName(connection)}`,
      input,
      signal: options.signal,
    });
  } finally {
    await creds.dir.remove();
  }
}
