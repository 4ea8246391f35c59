/**
 * A real MariaDB server (Debian's mariadb-server) for dump tests, one per test file, started as
 * ../shared/PEERS.md says: its own data directory, socket and pid file in a temp folder, TCP on
 * 127.0.0.1 and a free port, binary logging on (ROW format), `--user=root` when run as root.
 * `stop()` SIGTERMs it and removes the folder; `kill()` / `start()` take it down and up again.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { unusedPort } from './ports.js';

export interface MariaDb {
  readonly port: number;
  readonly dir: string;
  readonly datadir: string;
  readonly socket: string;
  /** A root connection over the socket (no password). */
  root(): Promise<mysql.Connection>;
  /** Runs SQL as root and returns the rows. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs the `mariadb` client as root with `sql` on standard input (or a pipe of bytes). */
  client(args: string[], input: Buffer | string): string;
  stop(): Promise<void>;
}

export async function startMariaDb(): Promise<MariaDb> {
  const dir = await mkdtemp(join(tmpdir(), 'bh-mariadb-'));
  const datadir = join(dir, 'data');
  const socket = join(dir, 'sock');
  const port = await unusedPort();
  const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  execFileSync('mariadb-install-db', ['--no-defaults', `--datadir=${datadir}`, ...asRoot, '--auth-root-authentication-method=normal', '--skip-test-db'], { stdio: 'ignore' });
  let server: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    server = spawn('mariadbd', ['--no-defaults', `--datadir=${datadir}`, `--socket=${socket}`, `--pid-file=${join(dir, 'pid')}`, `--port=${port}`, '--bind-address=127.0.0.1', '--skip-name-resolve', '--log-bin=mysql-bin', '--server-id=1', '--binlog-format=ROW', ...asRoot, `--log-error=${join(dir, 'err.log')}`, '--innodb-buffer-pool-size=64M'], { stdio: 'ignore' });
    for (let i = 0; i < 300; i++) {
      if (existsSync(socket)) {
        try {
          execFileSync('mariadb-admin', ['--no-defaults', `--socket=${socket}`, '-uroot', 'ping'], { stdio: 'ignore' });
          return;
        } catch {
          // not yet
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`MariaDB did not start; see ${join(dir, 'err.log')}`);
  };
  await start();
  const root = (): Promise<mysql.Connection> => mysql.createConnection({ socketPath: socket, user: 'root', multipleStatements: true });
  return {
    port,
    dir,
    datadir,
    socket,
    root,
    async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
      const conn = await root();
      try {
        const [rows] = await conn.query(sql, params);
        return rows as T[];
      } finally {
        await conn.end();
      }
    },
    client(args: string[], input: Buffer | string): string {
      return execFileSync('mariadb', ['--no-defaults', `--socket=${socket}`, '-uroot', ...args], { input, encoding: 'utf8' });
    },
    async stop(): Promise<void> {
      if (server && server.exitCode === null) {
        const gone = new Promise((r) => server!.once('exit', r));
        server.kill('SIGTERM');
        await gone;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
