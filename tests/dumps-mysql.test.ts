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
