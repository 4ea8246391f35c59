/**
 * MySQL/MariaDB dumps against a real MariaDB server started by this file (tests/helpers/mariadb.ts):
 * `bh backup --mysql`, `bh db restore`, the recorded binlog position and a point-in-time
 * recovery from it (RUNBOOK.md), the old [DATABASE] section under `bh run`, and the failures:
 * wrong password, server down, dump tool missing, tool killed mid-dump, dump without trailer.
 * While a dump runs, every process's command line is sampled for the password.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, readdirSync, statSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestRepo, bh, describeRun, initRepo, makeTempDir, removeDir, startRunning } from './helpers/cli.js';
import { type MariaDb, startMariaDb } from './helpers/mariadb.js';
import { unusedPort } from './helpers/ports.js';
import { parseBinlogPosition } from '../src/sources/mysql.js';

/** A password with every character an option file could trip over; unique enough to grep for. */
const PASSWORD = 'Dmp-"q\\uoted" #semi;colon=eq s3cr3t-41b7';

let db: MariaDb;
let tmp: string;
let repo: TestRepo;

function connection(port = db.port): string[] {
  return ['--mysql-host', '127.0.0.1', '--mysql-port', String(port), '--mysql-user', 'backup'];
}

const withPassword = { BH_MYSQL_PASSWORD: PASSWORD };

interface SnapshotJson {
  id: string;
  paths: string[];
  tags: string[];
  dump?: { engine: string; server_version: string; tool: string; files: { path: string; database?: string; binlog?: { file: string; position: number; gtid?: string } }[] };
}

async function snapshots(): Promise<SnapshotJson[]> {
  const r = await repo.run(['snapshots', '--json']);
  expect(r.code, describeRun('snapshots', r)).toBe(0);
  return JSON.parse(r.stdout) as SnapshotJson[];
}

/** The newest snapshot whose dump holds `path`. */
async function snapshotWith(path: string): Promise<SnapshotJson> {
  const found = (await snapshots()).filter((s) => s.dump?.files.some((f) => f.path === path)).pop();
  expect(found, `no snapshot with ${path}`).toBeDefined();
  return found!;
}

async function checksum(table: string): Promise<string> {
  const [row] = await db.query<{ Checksum: string | number }>(`CHECKSUM TABLE ${table}`);
  return String(row!.Checksum);
}

async function masterStatus(): Promise<{ file: string; position: number }> {
  const [row] = await db.query<{ File: string; Position: number }>('SHOW MASTER STATUS');
  return { file: row!.File, position: Number(row!.Position) };
}

/** Every process's command line, NUL-separated arguments joined by spaces. */
function allCommandLines(): { pid: string; cmdline: string; environ: string }[] {
  const out = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      out.push({ pid, cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '), environ: readFileSync(`/proc/${pid}/environ`, 'utf8') });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

beforeAll(async () => {
  tmp = await makeTempDir('bh-dumps-mysql-');
  db = await startMariaDb();
  const rows = Array.from({ length: 3000 }, (_, i) => `(${i + 1}, 'item ${i + 1}', ${(i * 7) % 101}, ${i % 3 === 0 ? 'NULL' : `'note ${'x'.repeat(i % 50)}'`}, X'${(i % 256).toString(16).padStart(2, '0')}00ff')`);
  await db.query(
    [
      `CREATE USER 'backup'@'%' IDENTIFIED BY ${JSON.stringify(PASSWORD).replace(/^"|"$/g, "'").replace(/\\"/g, '"')}`,
      "GRANT ALL ON *.* TO 'backup'@'%'",
      'CREATE DATABASE app',
      'CREATE TABLE app.items (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, qty INT NOT NULL, note TEXT, raw VARBINARY(16))',
      `INSERT INTO app.items VALUES ${rows.join(',')}`,
      'CREATE TABLE app.audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(50))',
      // Unqualified names inside: a trigger that names `app.` restored under another name would still write to app.
      'USE app',
      "CREATE TRIGGER items_upd AFTER UPDATE ON items FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('updated ', NEW.id))",
      'CREATE DATABASE shop',
      'CREATE TABLE shop.orders (id INT PRIMARY KEY, total DECIMAL(10,2))',
      'INSERT INTO shop.orders VALUES (1, 9.99), (2, 100.00)',
    ].join(';'),
  );
  repo = await initRepo(tmp);
});

afterAll(async () => {
  await db?.stop();
  if (tmp) await removeDir(tmp);
});

describe('bh backup --mysql and bh db restore', () => {
  it('dumps each database into /mysql/<db>.sql with its binlog position; the first dump restores to the checksums taken at dump time, and replaying the binlog from the recorded position reaches the later state', async () => {
    const before = { items: await checksum('app.items'), audit: await checksum('app.audit') };
    const statusBefore = await masterStatus();
    const first = await repo.run(['backup', '--mysql', 'app,shop', '--mysql-binlog-position', '--json', ...connection()], { env: withPassword });
    expect(first.code, describeRun('first dump', first)).toBe(0);
    expect(await masterStatus()).toEqual(statusBefore); // nothing written meanwhile: the dump's position is this one
    const [snapshot] = (await snapshots()).filter((s) => s.tags.includes('mysql'));
    expect(snapshot!.paths).toEqual(['/mysql']);
    expect(snapshot!.dump!.engine).toBe('mysql');
    expect(snapshot!.dump!.server_version).toMatch(/MariaDB/);
    expect(snapshot!.dump!.files.map((f) => [f.path, f.database])).toEqual([['/mysql/app.sql', 'app'], ['/mysql/shop.sql', 'shop']]);
    for (const file of snapshot!.dump!.files) expect(file.binlog).toMatchObject({ file: statusBefore.file, position: statusBefore.position });
    expect(snapshot!.dump!.files[0]!.binlog!.gtid).toMatch(/^\d+-\d+-\d+/);
    const ls = await repo.run(['ls', snapshot!.id]);
    expect(ls.stdout.split('\n').filter((l) => l !== '')).toEqual(['/mysql', '/mysql/app.sql', '/mysql/shop.sql']);

    // The day's changes: 1 % of the rows updated (the trigger writes audit rows), some added and deleted.
    await db.query("UPDATE app.items SET qty = qty + 1000, note = 'changed' WHERE id % 100 = 0; INSERT INTO app.items VALUES (5001, 'new', 1, NULL, NULL); DELETE FROM app.items WHERE id BETWEEN 10 AND 19");
    const after = { items: await checksum('app.items'), audit: await checksum('app.audit') };
    expect(after.items).not.toBe(before.items);
    const second = await repo.run(['backup', '--mysql', 'app', '--json', ...connection()], { env: withPassword });
    expect(second.code, describeRun('second dump', second)).toBe(0);

    // The first dump, into a new database: the checksums of dump time.
    const restore = await repo.run(['db', 'restore', snapshot!.id, '--mysql', 'app', '--into', 'app_first', '--create', ...connection()], { env: withPassword });
    expect(restore.code, describeRun('db restore', restore)).toBe(0);
    expect({ items: await checksum('app_first.items'), audit: await checksum('app_first.audit') }).toEqual(before);
    expect((await db.query<{ n: number }>("SELECT COUNT(*) AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'app_first'"))[0]!.n).toBe(1);

    // Point-in-time recovery (RUNBOOK.md): app is lost; the first dump plus the binlog from its position bring back the later state.
    const stop = await masterStatus();
    await db.query('DROP DATABASE app');
    const back = await repo.run(['db', 'restore', snapshot!.id, '--mysql', 'app', '--create', ...connection()], { env: withPassword });
    expect(back.code, describeRun('db restore app', back)).toBe(0);
    const { file, position } = snapshot!.dump!.files[0]!.binlog!;
    const events = execFileSync('mysqlbinlog', ['--no-defaults', `--start-position=${position}`, `--stop-position=${stop.position}`, '--database=app', join(db.datadir, file)]);
    db.client([], events);
    expect({ items: await checksum('app.items'), audit: await checksum('app.audit') }).toEqual(after);
  });

  it('bh dump writes the stored dump, trailer included, and it pipes into mariadb', async () => {
    const withShop = await snapshotWith('/mysql/shop.sql');
    const r = await repo.run(['dump', withShop.id, '/mysql/shop.sql']);
    expect(r.code, describeRun('dump', r)).toBe(0);
    expect(r.stdout.slice(0, 200)).toContain('-- MariaDB dump');
    expect(r.stdout).toMatch(/-- Dump completed on [^\n]+\n$/);
    db.client(['-e', 'CREATE DATABASE shop_copy'], '');
    db.client(['shop_copy'], r.stdout);
    expect(await checksum('shop_copy.orders')).toBe(await checksum('shop.orders'));
  });

  it('`*` dumps every database but the system schemas, here over the server\'s socket', async () => {
    const r = await repo.run(['backup', '--mysql', '*', '--mysql-socket', db.socket, '--mysql-user', 'root']);
    expect(r.code, describeRun('dump *', r)).toBe(0);
    const files = (await snapshots()).pop()!.dump!.files.map((f) => f.database);
    const expected = (await db.query<{ Database: string }>('SHOW DATABASES')).map((d) => d.Database).filter((d) => !['mysql', 'sys', 'information_schema', 'performance_schema'].includes(d));
    expect(files).toEqual(expected);
    expect(files).toEqual(expect.arrayContaining(['app', 'shop']));
  });

  it('refuses a restore into an existing database with --create, and into a missing one without it', async () => {
    const withShop = await snapshotWith('/mysql/shop.sql');
    const exists = await repo.run(['db', 'restore', withShop.id, '--mysql', 'shop', '--create', ...connection()], { env: withPassword });
    expect(exists.code, describeRun('restore over shop', exists)).toBe(1);
    expect(exists.stderr).toMatch(/database 'shop' already exists.*leave out --create/);
    const missing = await repo.run(['db', 'restore', withShop.id, '--mysql', 'shop', '--into', 'nowhere', ...connection()], { env: withPassword });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/database 'nowhere' does not exist.*add --create/);
  });

  it('stops at the first error of a restore and exits 1 with the client\'s message', async () => {
    await db.query("CREATE DATABASE shop_ro; CREATE USER 'reader'@'%' IDENTIFIED BY 'rpw'; GRANT SELECT ON shop_ro.* TO 'reader'@'%'");
    const withShop = await snapshotWith('/mysql/shop.sql');
    const r = await repo.run(['db', 'restore', withShop.id, '--mysql', 'shop', '--into', 'shop_ro', '--mysql-host', '127.0.0.1', '--mysql-port', String(db.port), '--mysql-user', 'reader'], { env: { BH_MYSQL_PASSWORD: 'rpw' } });
    expect(r.code, describeRun('restore without rights', r)).toBe(1);
    expect(r.stderr).toMatch(/restoring into database 'shop_ro'.*exited with status 1; it said:.*ERROR 1142 .*DROP command denied/s);
    expect(await db.query("SHOW TABLES FROM shop_ro")).toEqual([]);
  });
});

describe('the binlog position in a dump header', () => {
  // MySQL 8 cannot run here (Debian has MariaDB only): its mysqldump's header, as it writes it.
  it('reads MySQL 8\'s CHANGE REPLICATION SOURCE comment and GTID_PURGED, and MariaDB\'s CHANGE MASTER and gtid_slave_pos', () => {
    const mysql8 = "-- MySQL dump 10.13  Distrib 8.0.36\nSET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77';\n--\n-- Position to start replication or point-in-time recovery from\n--\n\n-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000002', SOURCE_LOG_POS=157;\n";
    expect(parseBinlogPosition(mysql8, '')).toEqual({ file: 'binlog.000002', position: 157, gtid: '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77' });
    const mariadb = "-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000001', MASTER_LOG_POS=1145;\n";
    expect(parseBinlogPosition(mariadb, "-- SET GLOBAL gtid_slave_pos='0-1-5';\n-- Dump completed on 2026-12-06 14:26:11\n")).toEqual({ file: 'mysql-bin.000001', position: 1145, gtid: '0-1-5' });
    expect(parseBinlogPosition('-- MariaDB dump 10.19\n', '')).toBeUndefined();
  });
});

describe('a dump that fails saves no snapshot', () => {
  async function count(): Promise<number> {
    return (await snapshots()).length;
  }

  it('wrong password: exit 1, the server refused the login', async () => {
    const before = await count();
    const r = await repo.run(['backup', '--mysql', 'app', ...connection()], { env: { BH_MYSQL_PASSWORD: 'not the password' } });
    expect(r.code, describeRun('wrong password', r)).toBe(1);
    expect(r.stderr).toMatch(/MySQL server at 127\.0\.0\.1:\d+ refused the login of user 'backup': wrong user or password/);
    expect(await count()).toBe(before);
  });

  it('server down: exit 1, connection refused', async () => {
    const before = await count();
    const r = await repo.run(['backup', '--mysql', 'app', ...connection(await unusedPort())], { env: withPassword });
    expect(r.code, describeRun('server down', r)).toBe(1);
    expect(r.stderr).toMatch(/cannot reach the MySQL server at 127\.0\.0\.1:\d+: connection refused \(is the server running/);
    expect(await count()).toBe(before);
  });

  it('dump tool missing: exit 1, names the tools and the package', async () => {
    const before = await count();
    const empty = join(tmp, 'empty-path');
    mkdirSync(empty, { recursive: true });
    const r = await repo.run(['backup', '--mysql', 'app', ...connection()], { env: { ...withPassword, PATH: empty } });
    expect(r.code, describeRun('no tool', r)).toBe(1);
    expect(r.stderr).toContain('neither mariadb-dump nor mysqldump is on PATH: install the MariaDB or MySQL client (Debian: apt install mariadb-client)');
    expect(await count()).toBe(before);
  });

  it('the tool killed mid-dump: exit 1, no snapshot; while it ran, the password was on no command line and in no environment but bh\'s own, and the option file was 0600 in a 0700 directory, removed afterwards', async () => {
    const before = await count();
    // The dump waits for this lock, so the test acts while it certainly runs.
    const locker = await db.root();
    await locker.query('LOCK TABLES app.items WRITE');
    const running = startRunning(['backup', '--mysql', 'app', ...connection()], { env: { ...repo.env, ...withPassword } });
    let dump: { pid: string; cmdline: string } | undefined;
    for (let i = 0; i < 600 && !dump; i++) {
      dump = allCommandLines().find((p) => p.cmdline.includes('mariadb-dump') && p.cmdline.includes('--defaults-extra-file='));
      if (!dump) await new Promise((r) => setTimeout(r, 25));
    }
    expect(dump, `no mariadb-dump process appeared; bh: ${running.stderr()}`).toBeDefined();
    const sample = allCommandLines();
    expect(sample.filter((p) => p.cmdline.includes(PASSWORD)).map((p) => p.cmdline)).toEqual([]);
    expect(sample.filter((p) => p.pid !== String(running.child.pid) && p.environ.includes(PASSWORD)).map((p) => p.cmdline)).toEqual([]);
    const optionFile = /--defaults-extra-file=(\S+)/.exec(dump!.cmdline)![1]!;
    expect(statSync(optionFile).mode & 0o777).toBe(0o600);
    expect(statSync(dirname(optionFile)).mode & 0o777).toBe(0o700);
    process.kill(Number(dump!.pid), 'SIGKILL');
    await locker.query('UNLOCK TABLES');
    await locker.end();
    const r = await running.done;
    expect(r.code, describeRun('killed dump', r)).toBe(1);
    expect(r.stderr).toMatch(/mariadb-dump of database 'app' on the MySQL server at 127\.0\.0\.1:\d+: \S+mariadb-dump was killed by SIGKILL before it finished/);
    expect(r.stdout + r.stderr).not.toContain(PASSWORD);
    expect(existsSync(dirname(optionFile))).toBe(false);
    expect(await count()).toBe(before);
  });

  it('a dump without its trailer: exit 1, no snapshot', async () => {
    // A stand-in: the real mariadb-dump with its last line cut off, exit status 0 — the real
    // tool cannot be made to do this, and a full disk or a proxy that drops the tail can.
    const bin = join(tmp, 'cut-bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'mariadb-dump'), '#!/bin/sh\n/usr/bin/mariadb-dump "$@" | head -n -1\n');
    chmodSync(join(bin, 'mariadb-dump'), 0o755);
    const before = await count();
    const r = await repo.run(['backup', '--mysql', 'app', ...connection()], { env: { ...withPassword, PATH: `${bin}:${process.env['PATH']}` } });
    expect(r.code, describeRun('no trailer', r)).toBe(1);
    expect(r.stderr).toMatch(/mariadb-dump of database 'app' .*: the output ends without the closing "-- Dump completed" line, so the dump is incomplete/);
    expect(await count()).toBe(before);
  });
});

describe('bh run with the old [DATABASE] section', () => {
  let source: string;
  let stateDir: string;

  function config(name: string, database: string, repoDir: string, extra: string[] = []): string {
    const path = join(tmp, `${name}.ini`);
    writeFileSync(
      path,
      [
        '[META]', 'schema_version = 3',
        '[DEFAULT]', `source_dir = ${source}`, 'mode = incremental',
        '[MODES]', 'local = True', 'ssh = False', 'db = True',
        '[BACKUPS]', `backup_dirs = ${repoDir}`,
        '[ENCRYPTION]', 'passphrase = ${JOB_PASS}',
        '[DATABASE]', 'user = backup', database, 'host = 127.0.0.1', `port = ${db.port}`, 'single_transaction = True', 'binlog_position = True',
        ...extra,
      ].join('\n') + '\n',
    );
    return path;
  }

  function lastRun(configPath: string): Record<string, unknown> & { state: string; destinations: { ok: boolean; location: string }[]; dumps: { engine: string; destinations: { ok: boolean; error?: string; snapshotId?: string; copiedFrom?: string; forgotten?: string[] }[] }[] } {
    const file = readdirSync(stateDir).find((n) => n.startsWith(configPath.split('/').pop()!.replace(/\.ini$/, '')) && n.endsWith('.status.json'))!;
    const text = readFileSync(join(stateDir, file), 'utf8');
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain('wrong-pw-5e1');
    return (JSON.parse(text) as { runs: never[] }).runs.pop()!;
  }

  beforeAll(async () => {
    source = join(tmp, 'job-source');
    mkdirSync(source, { recursive: true });
    writeFileSync(join(source, 'site.conf'), 'listen 80\n');
    stateDir = join(tmp, 'state');
  });

  it('backs up the files and dumps the databases, one snapshot each, both recorded in the status file; db restore --config uses the job\'s connection', async () => {
    const repoDir = join(tmp, 'job-repo');
    const idsFile = join(tmp, 'post-hook-ids');
    const path = config('job-ok', 'password = ${DB_PASS}\ndatabase = app, shop', repoDir, ['[HOOKS]', `post_backup = echo "$BH_SNAPSHOT_IDS" > ${idsFile}`]);
    const check = await bh(['config', 'check', '--config', path], { env: { JOB_PASS: 'job pass', DB_PASS: PASSWORD } });
    expect(check.code, describeRun('config check', check)).toBe(0);
    expect(check.stdout).toMatch(/mysql dumps: {2}app, shop on the MySQL server at 127\.0\.0\.1:\d+ as backup, with binlog position/);
    expect(check.stdout + check.stderr).not.toContain(PASSWORD);
    const r = await bh(['run', '--config', path, '--state-dir', stateDir], { env: { JOB_PASS: 'job pass', DB_PASS: PASSWORD } });
    expect(r.code, describeRun('bh run', r)).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(PASSWORD);
    expect(r.stdout).toMatch(/mysql dump → \S+job-repo\s+ok/);
    const run = lastRun(path);
    expect(run.state).toBe('success');
    expect(run.destinations.map((d) => d.ok)).toEqual([true]);
    expect(run.dumps.map((d) => [d.engine, d.destinations.map((x) => x.ok)])).toEqual([['mysql', [true]]]);
    const list = await bh(['snapshots', '-r', repoDir, '--json'], { env: { BH_PASSWORD: 'job pass' } });
    const taken = JSON.parse(list.stdout) as SnapshotJson[];
    expect(taken.map((s) => [s.paths, s.tags])).toEqual([[[source], ['bh-run']], [['/mysql'], ['bh-run', 'mysql']]]);
    expect(taken[1]!.id).toBe(run.dumps[0]!.destinations[0]!.snapshotId);
    expect(readFileSync(idsFile, 'utf8').trim()).toBe(`${taken[0]!.id} ${taken[1]!.id}`);
    expect(taken[1]!.dump!.files.map((f) => [f.path, typeof f.binlog?.position])).toEqual([['/mysql/app.sql', 'number'], ['/mysql/shop.sql', 'number']]);

    // bh db restore with the job's connection (--config): no connection option, no BH_MYSQL_PASSWORD.
    const restore = await bh(['db', 'restore', '-r', repoDir, 'latest', '--mysql', 'shop', '--into', 'shop_from_job', '--create', '--config', path], { env: { BH_PASSWORD: 'job pass', DB_PASS: PASSWORD } });
    expect(restore.code, describeRun('db restore --config', restore)).toBe(0);
    expect(await checksum('shop_from_job.orders')).toBe(await checksum('shop.orders'));
  });

  it('a failing database beside a good file destination: both results recorded, exit 3, the password nowhere in the output or the status file', async () => {
    const repoDir = join(tmp, 'job-repo-2');
    const path = config('job-bad', 'password = wrong-pw-5e1\ndatabase = app', `${repoDir}, ${join(tmp, 'job-repo-3')}`);
    const r = await bh(['run', '--config', path, '--state-dir', stateDir], { env: { JOB_PASS: 'job pass' } });
    expect(r.code, describeRun('bh run', r)).toBe(3);
    expect(r.stdout + r.stderr).not.toContain('wrong-pw-5e1');
    expect(r.stdout).toMatch(/mysql dump → \S+job-repo-2\s+FAILED: .*refused the login of user 'backup'/);
    const run = lastRun(path);
    expect(run.state).toBe('partial');
    expect(run.destinations.map((d) => d.ok)).toEqual([true, true]);
    // The server refused the dump: the second destination does not try it again.
    expect(run.dumps[0]!.destinations).toEqual([
      expect.objectContaining({ ok: false, error: expect.stringMatching(/^the MySQL server at .* refused the login of user 'backup'/) }),
      expect.objectContaining({ ok: false, error: expect.stringMatching(/^not dumped: .*refused the login of user 'backup'/) }),
    ]);
    const list = await bh(['snapshots', '-r', repoDir, '--json'], { env: { BH_PASSWORD: 'job pass' } });
    expect((JSON.parse(list.stdout) as SnapshotJson[]).map((s) => s.paths)).toEqual([[source]]);
  });

  it('copies the dump snapshot into the other destinations and applies [RETENTION] to dumps and files separately', async () => {
    const [first, second] = [join(tmp, 'ret-a'), join(tmp, 'ret-b')];
    const path = config('job-ret', 'password = ${DB_PASS}\ndatabase = shop', `${first}, ${second}`, ['[RETENTION]', 'max_count = 1', 'prune = False']);
    for (let i = 0; i < 2; i++) {
      const r = await bh(['run', '--config', path, '--state-dir', stateDir], { env: { JOB_PASS: 'job pass', DB_PASS: PASSWORD } });
      expect(r.code, describeRun(`bh run ${i + 1}`, r)).toBe(0);
    }
    const run = lastRun(path);
    expect(run.dumps[0]!.destinations.map((d) => [d.ok, d.copiedFrom ?? null, d.forgotten?.length])).toEqual([[true, null, 1], [true, first, 1]]);
    for (const repoDir of [first, second]) {
      const list = await bh(['snapshots', '-r', repoDir, '--json'], { env: { BH_PASSWORD: 'job pass' } });
      expect((JSON.parse(list.stdout) as SnapshotJson[]).map((s) => s.paths)).toEqual([[source], ['/mysql']]);
    }
  });
});
