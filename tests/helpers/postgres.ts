/**
 * A real PostgreSQL server (Debian's postgresql, binaries in /usr/lib/postgresql/<v>/bin) for
 * dump tests, one per test file: initdb into a temp folder owned by the postgres user (the
 * server refuses to run as root), scram-sha-256 logins only, TCP on 127.0.0.1 and a free port,
 * its socket in the same folder. `stop()` stops it (pg_ctl -m fast) and removes the folder.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, chmodSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unusedPort } from './ports.js';

export interface Postgres {
  readonly port: number;
  readonly dir: string;
  /** The superuser the tests use, and its password. */
  readonly user: string;
  readonly password: string;
  /** Runs SQL through psql as the superuser on `database`; rows as lines, fields separated by |. */
  psql(database: string, sql: string): string[];
  stop(): Promise<void>;
}

function binDir(): string {
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
  return join('/usr/lib/postgresql', versions[0]!, 'bin');
}

export async function startPostgres(): Promise<Postgres> {
  const dir = await mkdtemp(join(tmpdir(), 'bh-postgres-'));
  const bin = binDir();
  const port = await unusedPort();
  const user = 'bhadmin';
  const password = 'pg admin:pw\\1';
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chmodSync(dir, 0o700);
    chownSync(dir, uid, gid);
  }
  const as = (args: string[]): string[] => (asRoot ? ['runuser', '-u', 'postgres', '--', ...args] : args);
  const run = (args: string[]): void => {
    const [program, ...rest] = as(args);
    execFileSync(program!, rest, { stdio: 'ignore' });
  };
  const pwfile = join(dir, 'pwfile');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (asRoot) execFileSync('chown', ['postgres', pwfile]);
  run([join(bin, 'initdb'), '-D', join(dir, 'data'), '-A', 'scram-sha-256', `--pwfile=${pwfile}`, '-U', user]);
  run([join(bin, 'pg_ctl'), '-D', join(dir, 'data'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, '-l', join(dir, 'log'), '-w', 'start']);
  const env = { ...process.env, PGPASSWORD: password };
  return {
    port,
    dir,
    user,
    password,
    psql(database: string, sql: string): string[] {
      const out = execFileSync('psql', ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', user, '-d', database, '-c', sql], { env, encoding: 'utf8' });
      return out.split('\n').filter((line) => line !== '');
    },
    async stop(): Promise<void> {
      try {
        run([join(bin, 'pg_ctl'), '-D', join(dir, 'data'), '-m', 'fast', '-w', 'stop']);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}
