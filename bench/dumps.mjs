#!/usr/bin/env node
/**
 * Dedup of consecutive database dumps (issue 14): what a second dump adds to the repository after
 * 1 % of the rows of a ~200 MB MariaDB database changed, for bh (at its default chunk size and
 * two smaller ones) and restic, on the same dumps.
 *
 *   npm run build && node bench/dumps.mjs                 # 1.2 M rows, ~200 MB dump
 *   node bench/dumps.mjs --rows 300000                    # a smaller run (~50 MB)
 *   node bench/dumps.mjs --engine postgres                # PostgreSQL: plain vs custom format
 *
 * A throwaway MariaDB (tests/helpers/mariadb.ts, transpiled) holds one table `orders` (id
 * primary key, ~170 bytes a row in the dump). States, each dumped once:
 *   0. as loaded;
 *   1. "scattered": 1 % of the rows updated, evenly spread (id % 100 = 7): the worst case for
 *      chunk dedup, one changed row every ~17 KB of dump;
 *   2. "clustered": then the newest 1 % of the rows updated (id in the top 1 %), as an orders
 *      table changes day to day.
 * bh's default repository takes the dumps the real way (`bh backup --mysql`); the others
 * (repositories made with smaller chunker parameters through the library, and restic 0.14 with
 * --stdin) take mariadb-dump's output of the same state from a file, made with the same flags.
 * With --engine postgres the same table in PostgreSQL, dumped as plain text (what bh uses, for
 * real through `bh backup --postgres`), in the custom format with its default compression, and
 * uncompressed (--compress=0), each into a bh repository, and plain into restic.
 * The figure is the growth of the repository on disk (every file, compressed and encrypted), the
 * same measure for both tools (restic 0.14's data_added counts bytes before compression).
 * Prints a table and writes bench/results/dumps-<time>.json.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { ROOT } from './corpus.mjs';

const argv = process.argv.slice(2);
const value = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const rows = Number(value('--rows') ?? 1_200_000);
const engine = value('--engine') ?? 'mysql';
const WORK = `/tmp/bh-bench-dumps-${process.pid}`;
const PASSWORD = 'bench-password';
const BH = join(ROOT, 'bin/bh');
const MB = 1e6;

function log(msg) {
  process.stderr.write(`${msg}\n`);
}

/** A database test harness (tests/helpers/NAME.ts), transpiled into node_modules/.cache so that it resolves mysql2 from the project. */
async function loadHarness(harness) {
  const dir = join(ROOT, 'node_modules/.cache/bh-bench-dumps');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  for (const name of [harness, 'ports']) {
    const source = readFileSync(join(ROOT, `tests/helpers/${name}.ts`), 'utf8');
    const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
    writeFileSync(join(dir, `${name}.js`), outputText);
  }
  return import(pathToFileURL(join(dir, `${harness}.js`)).href);
}

/** Bytes of every file below `dir`: what the repository stores, compressed and encrypted, for bh and restic alike. */
function storedBytes(dir) {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += statSync(join(entry.parentPath ?? entry.path, entry.name)).size;
  }
  return total;
}

function run(program, args, env = {}, stdinFile) {
  const stdin = stdinFile ? openSync(stdinFile, 'r') : 'ignore';
  const started = performance.now();
  const r = spawnSync(program, args, { env: { ...process.env, ...env }, stdio: [stdin, 'pipe', 'pipe'], maxBuffer: 64 * MB });
  if (typeof stdin === 'number') closeSync(stdin);
  if (r.status !== 0) throw new Error(`${program} ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return { stdout: r.stdout.toString(), seconds: (performance.now() - started) / 1000 };
}

/** bytes_added of a `bh backup --json` run. */
function bhAdded(args, env) {
  const r = run(process.execPath, [BH, 'backup', '--json', ...args], { BH_PASSWORD: PASSWORD, ...env });
  const summary = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).find((l) => l.message_type === 'summary');
  return { added: summary.bytes_added, total: summary.total_bytes, seconds: r.seconds };
}

function resticAdded(repo, file) {
  const r = run('restic', ['-r', repo, 'backup', '--json', '--stdin', '--stdin-filename', 'bench.sql'], { RESTIC_PASSWORD: PASSWORD, RESTIC_CACHE_DIR: join(WORK, 'restic-cache') }, file);
  const summary = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).find((l) => l.message_type === 'summary');
  return { added: summary.data_added, total: summary.total_bytes_processed, seconds: r.seconds };
}

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
const { RepositorySession } = await import(pathToFileURL(join(ROOT, 'dist/repo/session.js')).href);
const results = { date: new Date().toISOString(), engine, rows, machine: { load_average_at_start: (await import('node:os')).loadavg() }, states: [], repos: {} };

/** Dumps `argv`'s standard output into `file`; its size. */
function dumpInto(file, argv, env = {}) {
  const out = openSync(file, 'w');
  execFileSync(argv[0], argv.slice(1), { stdio: ['ignore', out, 'inherit'], env: { ...process.env, ...env } });
  closeSync(out);
  return statSync(file).size;
}

const fromFile = (format) => (repo, files) => bhAdded(['-r', repo.path, '--stdin-filename', `bench.${format}`, '--stdin-from-command', '--', 'cat', files[format]], {});
const smallChunks = {
  'bh 128K/256K/2M': { min: 128 * 1024, avg: 256 * 1024, max: 2 * 1024 * 1024 },
  'bh 32K/64K/512K': { min: 32 * 1024, avg: 64 * 1024, max: 512 * 1024 },
};

/** MariaDB: bh's default repository dumps for real (--mysql); the others read the same state from a file. */
async function mysqlBench() {
  const { startMariaDb } = await loadHarness('mariadb');
  const db = await startMariaDb();
  log(`loading ${rows} rows into MariaDB…`);
  await db.query(`CREATE DATABASE bench; CREATE USER 'backup'@'%' IDENTIFIED BY '${PASSWORD}'; GRANT ALL ON *.* TO 'backup'@'%'`);
  await db.query('CREATE TABLE bench.orders (id INT PRIMARY KEY, customer INT NOT NULL, status VARCHAR(12) NOT NULL, amount DECIMAL(10,2) NOT NULL, note VARCHAR(200), created DATETIME NOT NULL)');
  for (let from = 1; from <= rows; from += 200_000) {
    const to = Math.min(rows, from + 199_999);
    await db.query(`INSERT INTO bench.orders SELECT seq, seq % 5000, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'done'), (seq * 37 % 100000) / 100, CONCAT(MD5(seq), ' ', SHA1(seq), ' ', MD5(seq + 1)), '2024-01-01' + INTERVAL seq SECOND FROM bench.seq_${from}_to_${to}`);
  }
  const connection = ['--mysql-host', '127.0.0.1', '--mysql-port', String(db.port), '--mysql-user', 'backup'];
  const optionFile = join(WORK, 'client.cnf');
  writeFileSync(optionFile, `[client]\nuser=backup\npassword=${PASSWORD}\nhost=127.0.0.1\nport=${db.port}\nprotocol=tcp\n`, { mode: 0o600 });
  return {
    repos: {
      'bh 512K/1M/8M (default)': { kind: 'bh', take: (repo) => bhAdded(['-r', repo.path, '--mysql', 'bench', ...connection], { BH_MYSQL_PASSWORD: PASSWORD }) },
      ...Object.fromEntries(Object.entries(smallChunks).map(([name, chunker]) => [name, { kind: 'bh', chunker, take: fromFile('sql') }])),
      'restic 0.14 (512K/1M/8M)': { kind: 'restic', take: (repo, files) => resticAdded(repo.path, files.sql) },
    },
    change: (sql) => db.query(sql),
    table: 'bench.orders',
    dump: () => {
      const sql = join(WORK, 'dump.sql');
      return { files: { sql }, bytes: dumpInto(sql, ['mariadb-dump', `--defaults-extra-file=${optionFile}`, '--single-transaction', '--quick', '--routines', '--triggers', '--events', '--hex-blob', '--', 'bench']) };
    },
    stop: () => db.stop(),
  };
}

/** PostgreSQL: plain (what bh uses, for real through --postgres), custom with its default compression, and custom uncompressed, into bh's default repository each. */
async function postgresBench() {
  const { startPostgres } = await loadHarness('postgres');
  const pg = await startPostgres();
  log(`loading ${rows} rows into PostgreSQL…`);
  pg.psql('postgres', 'CREATE DATABASE bench');
  pg.psql('bench', `CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, status varchar(12) NOT NULL, amount numeric(10,2) NOT NULL, note varchar(200), created timestamp NOT NULL); INSERT INTO orders SELECT i, i % 5000, (ARRAY['new', 'paid', 'shipped', 'done'])[1 + i % 4], (i::bigint * 37 % 100000) / 100.0, md5(i::text) || ' ' || encode(sha256(i::text::bytea), 'hex') || ' ' || md5((i + 1)::text), timestamp '2024-01-01' + i * interval '1 second' FROM generate_series(1, ${rows}) i`);
  const env = { PGPASSWORD: pg.password };
  const args = ['-h', '127.0.0.1', '-p', String(pg.port), '-U', pg.user, '--dbname', 'bench'];
  return {
    repos: {
      'bh, pg_dump --format=plain (bh backup --postgres)': { kind: 'bh', take: (repo) => bhAdded(['-r', repo.path, '--postgres', 'bench', '--postgres-host', '127.0.0.1', '--postgres-port', String(pg.port), '--postgres-user', pg.user], { BH_POSTGRES_PASSWORD: pg.password }) },
      'bh, pg_dump --format=custom (compressed, its default)': { kind: 'bh', take: fromFile('custom') },
      'bh, pg_dump --format=custom --compress=0': { kind: 'bh', take: fromFile('custom0') },
      'restic 0.14, plain': { kind: 'restic', take: (repo, files) => resticAdded(repo.path, files.plain) },
    },
    change: (sql) => pg.psql('bench', sql),
    table: 'orders',
    dump: () => {
      const files = { plain: join(WORK, 'dump.sql'), custom: join(WORK, 'dump.custom'), custom0: join(WORK, 'dump.custom0') };
      const bytes = dumpInto(files.plain, ['pg_dump', ...args, '--format=plain'], env);
      dumpInto(files.custom, ['pg_dump', ...args, '--format=custom'], env);
      dumpInto(files.custom0, ['pg_dump', ...args, '--format=custom', '--compress=0'], env);
      return { files, bytes };
    },
    stop: () => pg.stop(),
  };
}

const bench = engine === 'postgres' ? await postgresBench() : await mysqlBench();
try {
  for (const [name, repo] of Object.entries(bench.repos)) {
    repo.path = join(WORK, `repo-${Object.keys(results.repos).length}`);
    results.repos[name] = [];
    if (repo.kind === 'restic') run('restic', ['init', '--repository-version', '2', '-r', repo.path], { RESTIC_PASSWORD: PASSWORD });
    else if (repo.chunker) await (await RepositorySession.init(repo.path, { kind: 'password', password: Buffer.from(PASSWORD) }, { backend: { env: process.env } }, { config: { chunker: { algorithm: 'fastcdc-gear32', ...repo.chunker } } })).close();
    else run(process.execPath, [BH, 'init', '-r', repo.path], { BH_PASSWORD: PASSWORD });
  }
  const changes = [
    ['as loaded', null],
    ['scattered: 1 % of rows (id % 100 = 7)', `UPDATE ${bench.table} SET status = 'changed', amount = amount + 1 WHERE id % 100 = 7`],
    ['clustered: the newest 1 % of rows', `UPDATE ${bench.table} SET status = 'changed', amount = amount + 1 WHERE id > ${Math.floor(rows * 0.99)}`],
  ];
  for (const [state, sql] of changes) {
    if (sql) await bench.change(sql);
    const { files, bytes } = bench.dump();
    log(`${state}: dump of ${(bytes / MB).toFixed(1)} MB`);
    results.states.push({ state, dump_bytes: bytes });
    for (const [name, repo] of Object.entries(bench.repos)) {
      const storedBefore = storedBytes(repo.path);
      const r = repo.take(repo, files);
      r.stored = storedBytes(repo.path) - storedBefore;
      log(`  ${name}: repository grew by ${(r.stored / MB).toFixed(2)} MB (tool reports ${(r.added / MB).toFixed(2)} MB added) in ${r.seconds.toFixed(1)} s`);
      results.repos[name].push({ state, ...r });
    }
  }
} finally {
  await bench.stop();
  if (!argv.includes('--keep')) rmSync(WORK, { recursive: true, force: true });
}

const header = ['repository', ...results.states.map((s, i) => (i === 0 ? 'first dump: repository grew by' : `after the ${s.state.split(':')[0]} change: grew by`))];
const lines = [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`];
for (const [name, rowsOf] of Object.entries(results.repos)) {
  lines.push(`| ${name} | ${rowsOf.map((r, i) => `${(r.stored / MB).toFixed(2)} MB${i === 0 ? '' : ` (${((100 * r.stored) / rowsOf[0].stored).toFixed(1)} % of the first)`}`).join(' | ')} |`);
}
const table = `${engine === 'postgres' ? 'PostgreSQL' : 'MariaDB'} dumps of ${rows} rows: ${results.states.map((s) => `${(s.dump_bytes / MB).toFixed(1)} MB`).join(', ')} (states 0, 1, 2); load average at start ${results.machine.load_average_at_start.map((x) => x.toFixed(1)).join(' ')}.\n\n${lines.join('\n')}\n`;
process.stdout.write(table);
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
const jsonPath = join(ROOT, `bench/results/dumps-${engine}-${results.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(jsonPath, JSON.stringify({ ...results, table }, null, 1) + '\n');
log(`wrote ${jsonPath}`);
