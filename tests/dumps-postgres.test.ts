/**
 * PostgreSQL dumps against a real PostgreSQL server started by this file
 * (tests/helpers/postgres.ts): `bh backup --postgres` (pg_dump per database plus pg_dumpall
 * --globals-only), `bh db restore --postgres`, [POSTGRES] under `bh run`, and the failures.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestRepo, bh, describeRun, initRepo, makeTempDir, removeDir, startRunning } from './helpers/cli.js';
import { unusedPort } from './helpers/ports.js';
import { type Postgres, startPostgres } from './helpers/postgres.js';

/** The dump role's password: a ':' and a '\' test the passfile's escaping. */
const PASSWORD = 'pg:dump\\pw-7c2e';

let pg: Postgres;
let tmp: string;
let repo: TestRepo;

interface SnapshotJson {
  id: string;
  paths: string[];
  tags: string[];
  dump?: { engine: string; server_version: string; files: { path: string; database?: string }[] };
}

function connection(port = pg.port): string[] {
  return ['--postgres-host', '127.0.0.1', '--postgres-port', String(port), '--postgres-user', 'backup'];
}

const withPassword = { BH_POSTGRES_PASSWORD: PASSWORD };

/** A digest of every row of a table, in key order: equal digests, equal contents. */
function digest(database: string, table: string): string {
  return pg.psql(database, `SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY id), '')) FROM ${table} t`)[0]!;
}

async function snapshots(): Promise<SnapshotJson[]> {
  const r = await repo.run(['snapshots', '--json']);
  expect(r.code, describeRun('snapshots', r)).toBe(0);
  return JSON.parse(r.stdout) as SnapshotJson[];
}

beforeAll(async () => {
  tmp = await makeTempDir('bh-dumps-pg-');
  pg = await startPostgres();
  pg.psql('postgres', `CREATE ROLE backup LOGIN SUPERUSER PASSWORD '${PASSWORD.replace(/'/g, "''")}'`);
  pg.psql('postgres', 'CREATE DATABASE shop');
  pg.psql('postgres', 'CREATE DATABASE crm');
  pg.psql('shop', "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), tags text[], data bytea); INSERT INTO items SELECT i, 'item ' || i, i * 1.5, ARRAY['a', 'b' || i], decode(md5(i::text), 'hex') FROM generate_series(1, 3000) i; CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 10");
  pg.psql('crm', "CREATE TABLE people (id int PRIMARY KEY, name text); INSERT INTO people VALUES (1, 'Ada'), (2, 'Grace')");
  repo = await initRepo(tmp);
});

afterAll(async () => {
  await pg?.stop();
  if (tmp) await removeDir(tmp);
});

describe('bh backup --postgres and bh db restore --postgres', () => {
  it('dumps each database and the globals; the first dump restores to the digests taken at dump time after rows changed', async () => {
    const atDump = digest('shop', 'items');
    const first = await repo.run(['backup', '--postgres', 'shop', '--postgres', 'crm', ...connection()], { env: withPassword });
    expect(first.code, describeRun('first dump', first)).toBe(0);
    const [snapshot] = (await snapshots()).filter((s) => s.tags.includes('postgres'));
    expect(snapshot!.paths).toEqual(['/postgres']);
    expect(snapshot!.dump!.files).toEqual([{ path: '/postgres/shop.sql', database: 'shop' }, { path: '/postgres/crm.sql', database: 'crm' }, { path: '/postgres/globals.sql' }]);
    expect(snapshot!.dump!.server_version).toMatch(/^\d+\.\d+/);
    const globals = await repo.run(['dump', snapshot!.id, '/postgres/globals.sql']);
    expect(globals.stdout).toMatch(/CREATE ROLE backup;/);

    pg.psql('shop', "UPDATE items SET price = price + 1 WHERE id % 100 = 0; DELETE FROM items WHERE id < 5; INSERT INTO items VALUES (9001, 'new', 1, NULL, NULL)");
    const later = digest('shop', 'items');
    expect(later).not.toBe(atDump);
    const second = await repo.run(['backup', '--postgres', 'shop', ...connection()], { env: withPassword });
    expect(second.code, describeRun('second dump', second)).toBe(0);

    const restore = await repo.run(['db', 'restore', snapshot!.id, '--postgres', 'shop', '--into', 'shop_first', '--create', ...connection()], { env: withPassword });
    expect(restore.code, describeRun('restore', restore)).toBe(0);
    expect(digest('shop_first', 'items')).toBe(atDump);
    expect(pg.psql('shop_first', 'SELECT count(*) FROM cheap')).toEqual(pg.psql('shop_first', 'SELECT count(*) FROM items WHERE price < 10'));
    const latest = await repo.run(['db', 'restore', 'latest', '--postgres', 'shop', '--into', 'shop_latest', '--create', ...connection()], { env: withPassword });
    expect(latest.code, describeRun('restore latest', latest)).toBe(0);
    expect(digest('shop_latest', 'items')).toBe(later);
  });

  it('`database = *` style: every database that takes connections, templates left out', async () => {
    const r = await repo.run(['backup', '--postgres', '*', ...connection()], { env: withPassword });
    expect(r.code, describeRun('all', r)).toBe(0);
    const snapshot = (await snapshots()).pop()!;
    expect(snapshot.dump!.files.map((f) => f.path)).toEqual(expect.arrayContaining(['/postgres/crm.sql', '/postgres/postgres.sql', '/postgres/shop.sql', '/postgres/globals.sql']));
    expect(snapshot.dump!.files.map((f) => f.path).filter((p) => p.includes('template'))).toEqual([]);
  });

  it('a restore stops at the first error, in one transaction: exit 1 with psql\'s message, nothing left behind', async () => {
    pg.psql('postgres', 'CREATE DATABASE crm_taken');
    pg.psql('crm_taken', 'CREATE TABLE people (id int)');
    const first = (await snapshots()).find((s) => s.dump?.files.some((f) => f.path === '/postgres/crm.sql'))!;
    const r = await repo.run(['db', 'restore', first.id, '--postgres', 'crm', '--into', 'crm_taken', ...connection()], { env: withPassword });
    expect(r.code, describeRun('restore over a table', r)).toBe(1);
    expect(r.stderr).toMatch(/psql restoring into database 'crm_taken'.*exited with status 3; it said:.*relation "people" already exists/s);
    expect(pg.psql('crm_taken', 'SELECT count(*) FROM people')).toEqual(['0']);
  });
});

describe('a PostgreSQL dump that fails saves no snapshot', () => {
  it('wrong password: exit 1, the login was refused', async () => {
    const before = (await snapshots()).length;
    const r = await repo.run(['backup', '--postgres', 'shop', ...connection()], { env: { BH_POSTGRES_PASSWORD: 'nope' } });
    expect(r.code, describeRun('wrong password', r)).toBe(1);
    expect(r.stderr).toMatch(/PostgreSQL server at 127\.0\.0\.1:\d+ refused the login of user 'backup': wrong user or password/);
    expect((await snapshots()).length).toBe(before);
  });

  it('server down: exit 1, cannot reach it', async () => {
    const before = (await snapshots()).length;
    const r = await repo.run(['backup', '--postgres', 'shop', ...connection(await unusedPort())], { env: withPassword });
    expect(r.code, describeRun('server down', r)).toBe(1);
    expect(r.stderr).toMatch(/cannot reach the PostgreSQL server at 127\.0\.0\.1:\d+ \(is the server running/);
    expect((await snapshots()).length).toBe(before);
  });

  it('pg_dump killed mid-dump: exit 1, no snapshot, and the password on no command line', async () => {
    const before = (await snapshots()).length;
    // pg_dump waits for this lock (it takes ACCESS SHARE on every table), so the test acts while it runs.
    const holder = spawn('psql', ['-X', '-q', '-h', '127.0.0.1', '-p', String(pg.port), '-U', pg.user, '-d', 'shop'], { env: { ...process.env, PGPASSWORD: pg.password }, stdio: ['pipe', 'ignore', 'ignore'] });
    holder.stdin.write('BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);\n');
    for (let i = 0; i < 400 && pg.psql('shop', "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation = 'items'::regclass AND granted").join() !== '1'; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    const running = startRunning(['backup', '--postgres', 'shop', ...connection()], { env: { ...repo.env, ...withPassword } });
    let dump: { pid: string; cmdline: string } | undefined;
    for (let i = 0; i < 600 && !dump; i++) {
      dump = processes().find((p) => /pg_dump\s/.test(p.cmdline) && p.cmdline.includes('--no-password'));
      if (!dump) await new Promise((r) => setTimeout(r, 25));
    }
    expect(dump, `no pg_dump appeared; bh: ${running.stderr()}`).toBeDefined();
    expect(processes().filter((p) => p.cmdline.includes(PASSWORD)).map((p) => p.cmdline)).toEqual([]);
    process.kill(Number(dump!.pid), 'SIGKILL');
    holder.kill('SIGKILL');
    const r = await running.done;
    expect(r.code, describeRun('killed', r)).toBe(1);
    expect(r.stderr).toMatch(/pg_dump of database 'shop' on the PostgreSQL server at 127\.0\.0\.1:\d+: \S*pg_dump was killed by SIGKILL before it finished/);
    expect((await snapshots()).length).toBe(before);
  });
});

function processes(): { pid: string; cmdline: string }[] {
  const out = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      out.push({ pid, cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ') });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

describe('bh run with [POSTGRES]', () => {
  it('dumps the databases into their own snapshot beside the files', async () => {
    const source = join(tmp, 'src');
    mkdirSync(source, { recursive: true });
    writeFileSync(join(source, 'a.txt'), 'a');
    const repoDir = join(tmp, 'job-repo');
    const config = join(tmp, 'job.ini');
    writeFileSync(
      config,
      ['[META]', 'schema_version = 3', '[DEFAULT]', `source_dir = ${source}`, 'mode = full', '[MODES]', 'local = True', 'ssh = False', 'db = True', '[BACKUPS]', `backup_dirs = ${repoDir}`, '[ENCRYPTION]', 'passphrase = ${JOB_PASS}', '[POSTGRES]', 'host = 127.0.0.1', `port = ${pg.port}`, 'user = backup', 'password = ${PG_PASS}', 'database = crm'].join('\n') + '\n',
    );
    const r = await bh(['run', '--config', config, '--state-dir', join(tmp, 'state')], { env: { JOB_PASS: 'jp', PG_PASS: PASSWORD } });
    expect(r.code, describeRun('bh run', r)).toBe(0);
    expect(r.stdout).toMatch(/postgres dump → \S+job-repo\s+ok/);
    const list = await bh(['snapshots', '-r', repoDir, '--json'], { env: { BH_PASSWORD: 'jp' } });
    expect((JSON.parse(list.stdout) as SnapshotJson[]).map((s) => [s.paths, s.tags])).toEqual([[[source], ['bh-run']], [['/postgres'], ['bh-run', 'postgres']]]);
  });
});
