#!/usr/bin/env node
/**
 * Dedup of consecutive database dumps (issue 14): what a second dump adds to the repository after
 * 1 % of the rows of a ~200 MB MariaDB database changed, for bh (at its default chunk size and
 * two smaller ones) and restic, on the same dumps.
 *
 *   npm run build && node bench/dumps.mjs                 # 1.2 M rows, ~200 MB dump
 *   node bench/dumps.mjs --rows 300000                    # a smaller run (~50 MB)
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
const WORK = `/tmp/bh-bench-dumps-${process.pid}`;
const PASSWORD = 'bench-password';
const BH = join(ROOT, 'bin/bh');
const MB = 1e6;

function log(msg) {
  process.stderr.write(`${msg}\n`);
}

/** The MariaDB test harness, transpiled into node_modules/.cache so that it resolves mysql2 from the project. */
async function loadMariaDbHarness() {
  const dir = join(ROOT, 'node_modules/.cache/bh-bench-dumps');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  for (const name of ['mariadb', 'ports']) {
    const source = readFileSync(join(ROOT, `tests/helpers/${name}.ts`), 'utf8');
    const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
    writeFileSync(join(dir, `${name}.js`), outputText);
  }
  return import(pathToFileURL(join(dir, 'mariadb.js')).href);
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
const { startMariaDb } = await loadMariaDbHarness();
const { RepositorySession } = await import(pathToFileURL(join(ROOT, 'dist/repo/session.js')).href);
const db = await startMariaDb();
const results = { date: new Date().toISOString(), rows, machine: { load_average_at_start: (await import('node:os')).loadavg() }, states: [], repos: {} };
try {
  log(`loading ${rows} rows…`);
  await db.query(`CREATE DATABASE bench; CREATE USER 'backup'@'%' IDENTIFIED BY '${PASSWORD}'; GRANT ALL ON *.* TO 'backup'@'%'`);
  await db.query('CREATE TABLE bench.orders (id INT PRIMARY KEY, customer INT NOT NULL, status VARCHAR(12) NOT NULL, amount DECIMAL(10,2) NOT NULL, note VARCHAR(200), created DATETIME NOT NULL)');
  for (let from = 1; from <= rows; from += 200_000) {
    const to = Math.min(rows, from + 199_999);
    await db.query(`INSERT INTO bench.orders SELECT seq, seq % 5000, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'done'), (seq * 37 % 100000) / 100, CONCAT(MD5(seq), ' ', SHA1(seq), ' ', MD5(seq + 1)), '2024-01-01' + INTERVAL seq SECOND FROM bench.seq_${from}_to_${to}`);
  }
  const connection = ['--mysql-host', '127.0.0.1', '--mysql-port', String(db.port), '--mysql-user', 'backup'];
  const dumpFlags = ['--single-transaction', '--quick', '--routines', '--triggers', '--events', '--hex-blob'];
  const optionFile = join(WORK, 'client.cnf');
  writeFileSync(optionFile, `[client]\nuser=backup\npassword=${PASSWORD}\nhost=127.0.0.1\nport=${db.port}\nprotocol=tcp\n`, { mode: 0o600 });

  const repos = {
    'bh 512K/1M/8M (default)': { kind: 'bh-live', path: join(WORK, 'bh-default') },
    'bh 128K/256K/2M': { kind: 'bh-file', path: join(WORK, 'bh-256k'), chunker: { algorithm: 'fastcdc-gear32', min: 128 * 1024, avg: 256 * 1024, max: 2 * 1024 * 1024 } },
    'bh 32K/64K/512K': { kind: 'bh-file', path: join(WORK, 'bh-64k'), chunker: { algorithm: 'fastcdc-gear32', min: 32 * 1024, avg: 64 * 1024, max: 512 * 1024 } },
    'restic 0.14 (512K/1M/8M)': { kind: 'restic', path: join(WORK, 'restic') },
  };
  run(process.execPath, [BH, 'init', '-r', repos['bh 512K/1M/8M (default)'].path], { BH_PASSWORD: PASSWORD });
  for (const repo of Object.values(repos).filter((r) => r.kind === 'bh-file')) {
    const session = await RepositorySession.init(repo.path, { kind: 'password', password: Buffer.from(PASSWORD) }, { backend: { env: process.env } }, { config: { chunker: repo.chunker } });
    await session.close();
  }
  run('restic', ['init', '--repository-version', '2', '-r', repos['restic 0.14 (512K/1M/8M)'].path], { RESTIC_PASSWORD: PASSWORD });
  for (const name of Object.keys(repos)) results.repos[name] = [];

  const changes = [
    ['as loaded', null],
    ['scattered: 1 % of rows (id % 100 = 7)', `UPDATE bench.orders SET status = 'changed', amount = amount + 1 WHERE id % 100 = 7`],
    ['clustered: the newest 1 % of rows', `UPDATE bench.orders SET status = 'changed', amount = amount + 1 WHERE id > ${Math.floor(rows * 0.99)}`],
  ];
  for (const [state, sql] of changes) {
    if (sql) await db.query(sql);
    const file = join(WORK, 'dump.sql');
    const out = openSync(file, 'w');
    execFileSync('mariadb-dump', [`--defaults-extra-file=${optionFile}`, ...dumpFlags, '--', 'bench'], { stdio: ['ignore', out, 'inherit'] });
    closeSync(out);
    const size = statSync(file).size;
    log(`${state}: dump of ${(size / MB).toFixed(1)} MB`);
    results.states.push({ state, dump_bytes: size });
    for (const [name, repo] of Object.entries(repos)) {
      const storedBefore = storedBytes(repo.path);
      const r =
        repo.kind === 'bh-live'
          ? bhAdded(['-r', repo.path, '--mysql', 'bench', ...connection], { BH_MYSQL_PASSWORD: PASSWORD })
          : repo.kind === 'bh-file'
            ? bhAdded(['-r', repo.path, '--stdin-filename', 'bench.sql', '--stdin-from-command', '--', 'cat', file], {})
            : resticAdded(repo.path, file);
      r.stored = storedBytes(repo.path) - storedBefore;
      log(`  ${name}: repository grew by ${(r.stored / MB).toFixed(2)} MB (tool reports ${(r.added / MB).toFixed(2)} MB added) in ${r.seconds.toFixed(1)} s`);
      results.repos[name].push({ state, ...r });
    }
  }
} finally {
  await db.stop();
  if (!argv.includes('--keep')) rmSync(WORK, { recursive: true, force: true });
}

const header = ['repository (chunker min/avg/max)', ...results.states.map((s, i) => (i === 0 ? 'first dump: repository grew by' : `after the ${s.state.split(':')[0]} change: grew by`))];
const lines = [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`];
for (const [name, rowsOf] of Object.entries(results.repos)) {
  lines.push(`| ${name} | ${rowsOf.map((r, i) => `${(r.stored / MB).toFixed(2)} MB${i === 0 ? '' : ` (${((100 * r.stored) / rowsOf[0].stored).toFixed(1)} % of the first)`}`).join(' | ')} |`);
}
const table = `Dumps of ${rows} rows: ${results.states.map((s) => `${(s.dump_bytes / MB).toFixed(1)} MB`).join(', ')} (states 0, 1, 2); load average at start ${results.machine.load_average_at_start.map((x) => x.toFixed(1)).join(' ')}.\n\n${lines.join('\n')}\n`;
process.stdout.write(table);
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
const jsonPath = join(ROOT, `bench/results/dumps-${results.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(jsonPath, JSON.stringify({ ...results, table }, null, 1) + '\n');
log(`wrote ${jsonPath}`);
