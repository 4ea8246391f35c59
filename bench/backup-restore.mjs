#!/usr/bin/env node
/**
 * Wall time, CPU time and peak RSS of one bh backup, a no-change backup, a restore and a
 * check --read-data of a few hundred MB tree; restic on the same data when it is installed.
 *
 *   npm run build && node bench/backup-restore.mjs [--size-mb 300] [--keep]
 *
 * The corpus is generated deterministically under bench/corpus/ (not committed): a mix of
 * incompressible files (1 MiB and 8 MiB) and many small text-like files in nested folders.
 * Results are printed as a table and written to bench/results/backup-restore-<time>.json.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const sizeMb = Number(args[args.indexOf('--size-mb') + 1]) || 300;
const keep = args.includes('--keep');
const corpus = join(root, 'bench/corpus', `tree-${sizeMb}mb`);
const work = '/tmp/bh-bench';

/** Deterministic bytes: SHA-256 in counter mode (fast enough, and the same on every machine). */
function pseudoRandom(seed, length) {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0, at = 0; at < length; i++) {
    const block = createHash('sha256').update(`${seed}:${i}`).digest();
    at += block.copy(out, at);
  }
  return out;
}

const WORDS = 'backup restore chunk pack index snapshot tree blob repository encrypt compress dedup the of and to in is for on with as by at from server client file directory'.split(' ');
function textLike(seed, length) {
  const rnd = pseudoRandom(seed, Math.ceil(length / 4) + 8);
  const parts = [];
  let size = 0;
  for (let i = 0; size < length; i++) {
    const word = WORDS[rnd[i % rnd.length] % WORDS.length];
    parts.push(word);
    size += word.length + 1;
  }
  return Buffer.from(parts.join(' ')).subarray(0, length);
}

function makeCorpus() {
  if (existsSync(join(corpus, '.complete'))) return;
  rmSync(corpus, { recursive: true, force: true });
  const budget = sizeMb * 1024 * 1024;
  let written = 0;
  let n = 0;
  const put = (path, data) => {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, data);
    written += data.length;
  };
  // About 2/3 incompressible (media, archives), 1/3 small text files (source trees, configs).
  while (written < budget * 0.6) {
    const big = n % 10 === 0;
    put(join(corpus, 'media', `d${n % 7}`, `blob-${n}.bin`), pseudoRandom(`bin${n}`, big ? 8 * 1024 * 1024 : 1024 * 1024));
    n++;
  }
  while (written < budget) {
    const size = 2048 + (n * 7919) % 60000;
    put(join(corpus, 'src', `m${n % 13}`, `p${n % 29}`, `file-${n}.txt`), textLike(`txt${n}`, size));
    n++;
  }
  writeFileSync(join(corpus, '.complete'), '');
}

function timed(label, command, argv, env) {
  const result = spawnSync('/usr/bin/time', ['-v', command, ...argv], { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`${label} failed (${result.status}): ${result.stderr.slice(-2000)}`);
  const field = (name) => {
    const m = new RegExp(`${name}: (.+)`).exec(result.stderr);
    return m ? m[1].trim() : '';
  };
  const wall = field('Elapsed \\(wall clock\\) time \\(h:mm:ss or m:ss\\)').split(':').map(Number).reduce((acc, v) => acc * 60 + v, 0);
  const cpu = Number(field('User time \\(seconds\\)')) + Number(field('System time \\(seconds\\)'));
  const rssMb = Number(field('Maximum resident set size \\(kbytes\\)')) / 1024;
  return { label, wall_s: wall, cpu_s: Number(cpu.toFixed(2)), peak_rss_mb: Number(rssMb.toFixed(1)) };
}

function dirBytes(path) {
  return Number(execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split('\t')[0]);
}

makeCorpus();
const corpusBytes = dirBytes(corpus);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const bh = join(root, 'bin/bh');
const password = 'bench-password';
const rows = [];

const bhEnv = { BH_REPO: join(work, 'bh-repo'), BH_PASSWORD: password };
rows.push({ tool: 'bh', ...timed('init', bh, ['init'], bhEnv) });
rows.push({ tool: 'bh', ...timed('backup (first)', bh, ['backup', corpus], bhEnv) });
rows.push({ tool: 'bh', ...timed('backup (no change)', bh, ['backup', corpus], bhEnv) });
rows.push({ tool: 'bh', ...timed('restore', bh, ['restore', 'latest', '--target', join(work, 'bh-restore')], bhEnv) });
rows.push({ tool: 'bh', ...timed('check --read-data', bh, ['check', '--read-data'], bhEnv) });
const bhRepoBytes = dirBytes(bhEnv.BH_REPO);
execFileSync('diff', ['-r', '--no-dereference', corpus, join(work, 'bh-restore', corpus)]);

let resticRepoBytes;
const restic = spawnSync('restic', ['version'], { encoding: 'utf8' });
if (restic.status === 0) {
  const rEnv = { RESTIC_REPOSITORY: join(work, 'restic-repo'), RESTIC_PASSWORD: password, RESTIC_CACHE_DIR: join(work, 'restic-cache') };
  rows.push({ tool: 'restic', ...timed('init', 'restic', ['init', '--repository-version', '2'], rEnv) });
  rows.push({ tool: 'restic', ...timed('backup (first)', 'restic', ['backup', '--quiet', corpus], rEnv) });
  rows.push({ tool: 'restic', ...timed('backup (no change)', 'restic', ['backup', '--quiet', corpus], rEnv) });
  rows.push({ tool: 'restic', ...timed('restore', 'restic', ['restore', 'latest', '--target', join(work, 'restic-restore')], rEnv) });
  rows.push({ tool: 'restic', ...timed('check --read-data', 'restic', ['check', '--read-data'], rEnv) });
  resticRepoBytes = dirBytes(rEnv.RESTIC_REPOSITORY);
}

console.log(`corpus: ${corpus} (${(corpusBytes / 1e6).toFixed(1)} MB)`);
console.log('tool    step                   wall s   cpu s   cpu/wall  peak RSS MB   ratio bh/restic (wall)');
for (const row of rows) {
  const peer = row.tool === 'bh' ? rows.find((r) => r.tool === 'restic' && r.label === row.label) : undefined;
  const ratio = peer ? (row.wall_s / peer.wall_s).toFixed(2) : '';
  console.log(`${row.tool.padEnd(7)} ${row.label.padEnd(22)} ${row.wall_s.toFixed(2).padStart(6)}  ${row.cpu_s.toFixed(2).padStart(6)}  ${(row.cpu_s / Math.max(row.wall_s, 0.01)).toFixed(2).padStart(8)}  ${row.peak_rss_mb.toFixed(1).padStart(11)}   ${ratio}`);
}
console.log(`repository size: bh ${(bhRepoBytes / 1e6).toFixed(1)} MB${resticRepoBytes ? `, restic ${(resticRepoBytes / 1e6).toFixed(1)} MB (ratio ${(bhRepoBytes / resticRepoBytes).toFixed(2)})` : ''}`);

mkdirSync(join(root, 'bench/results'), { recursive: true });
const out = join(root, 'bench/results', `backup-restore-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), corpus_bytes: corpusBytes, rows, repo_bytes: { bh: bhRepoBytes, restic: resticRepoBytes ?? null }, node: process.version, bh_version: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version }, null, 2) + '\n');
console.log(`written ${out}`);
if (!keep) rmSync(work, { recursive: true, force: true });
