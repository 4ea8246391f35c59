#!/usr/bin/env node
/**
 * The benchmark suite: bh against restic on the same data, in the same run (see bench/README.md).
 *
 *   npm run bench                      # build, then all corpora, 3 repetitions
 *   npm run bench -- --quick           # 1 repetition
 *   npm run bench -- --reps 5 --only linux,index
 *
 * Options: --reps N (default 3) · --quick (= --reps 1) · --only linux|versions|index (comma
 * list) · --keep (keep the work dir /tmp/bh-bench-<pid>/).
 *
 * Writes bench/results/bench-<time>.json (every measurement, medians, tables) and
 * bench/results/LATEST.md (the tables). Exits 1 when a tool step failed or a restore was not
 * identical to its source; missed targets are reported, not fatal.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpus, loadavg, totalmem } from 'node:os';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ROOT, RestoreTargets, TS_MINOR, TS_PATCH, applyLinuxSmallChange, copyTree, linuxCorpus, removeTree, revertLinuxSmallChange,
  treeListing, typescriptReleases, warmUp,
} from './corpus.mjs';

// ---------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const value = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const reps = flag('--quick') ? 1 : Math.max(1, Number(value('--reps') ?? 3) || 3);
const ALL_PARTS = ['linux', 'versions', 'index'];
const only = value('--only') ? value('--only').split(',').map((s) => s.trim()) : ALL_PARTS;
for (const part of only) if (!ALL_PARTS.includes(part)) throw new Error(`--only: unknown part ${part} (${ALL_PARTS.join(', ')})`);
const keep = flag('--keep');

const WORK = `/tmp/bh-bench-${process.pid}`;
const PASSWORD = 'bench-password';
const STEP_TIMEOUT_MS = 30 * 60 * 1000;
const started = Date.now();

function log(msg) {
  const t = ((Date.now() - started) / 1000).toFixed(0).padStart(5);
  process.stderr.write(`[${t}s] ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Tools

/** Environment without any inherited repository settings. */
function cleanEnv() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('BH_') || k.startsWith('RESTIC_')) delete env[k];
  return env;
}

const TOOLS = {
  bh: {
    cmd: join(ROOT, 'bin/bh'), // replaced by the snapshot's bin/bh (snapshotBh)
    env: (repo, cache) => ({ BH_REPO: repo, BH_PASSWORD: PASSWORD, BH_CACHE_DIR: cache }),
    init: () => ['init'],
    backup: (path) => ['backup', path, '--host', 'bench'],
    restore: (target) => ['restore', 'latest', '--target', target],
    check: () => ['check', '--read-data'],
  },
  restic: {
    cmd: 'restic',
    env: (repo, cache) => ({ RESTIC_REPOSITORY: repo, RESTIC_PASSWORD: PASSWORD, RESTIC_CACHE_DIR: cache }),
    init: () => ['init', '--repository-version', '2'],
    backup: (path) => ['backup', '--quiet', '--host', 'bench', path],
    restore: (target) => ['restore', 'latest', '--target', target],
    check: () => ['check', '--read-data'],
  },
};
const TOOL_NAMES = ['bh', 'restic'];

/** bh first on odd repetitions, restic first on even ones. */
const orderFor = (rep) => (rep % 2 === 1 ? ['bh', 'restic'] : ['restic', 'bh']);

/**
 * Other work may rebuild dist/ while the suite runs: every bh step runs a copy of the build
 * taken at the start (bin/, dist/, package.json, the native addon; node_modules linked), so all
 * repetitions measure the same bh. Returns the snapshot's dir and a hash of its dist/ + addon.
 */
function snapshotBh() {
  const dir = join(WORK, 'bh-build');
  mkdirSync(join(dir, 'native/build'), { recursive: true });
  for (const p of ['bin', 'dist', 'package.json']) execFileSync('cp', ['-a', join(ROOT, p), join(dir, p)]);
  execFileSync('cp', ['-a', join(ROOT, 'native/build/Release'), join(dir, 'native/build/Release')]);
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const files = execFileSync('sh', ['-c', 'cd "$1" && find dist native -type f | LC_ALL=C sort', 'sh', dir], { encoding: 'utf8' }).split('\n').filter(Boolean);
  const hash = createHash('sha256');
  for (const f of files) hash.update(f).update('\0').update(readFileSync(join(dir, f)));
  TOOLS.bh.cmd = join(dir, 'bin/bh');
  return { dir, build_sha256: hash.digest('hex').slice(0, 16), files: files.length };
}

function ensureRestic() {
  if (spawnSync('restic', ['version']).status === 0) return;
  log('restic missing: apt-get install -y restic');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (spawnSync('apt-get', ['install', '-y', 'restic'], { stdio: 'inherit', env }).status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
    if (spawnSync('apt-get', ['install', '-y', 'restic'], { stdio: 'inherit', env }).status !== 0) throw new Error('cannot install restic');
  }
}

// ---------------------------------------------------------------------------------------------
// Measuring

/**
 * Runs one command under /usr/bin/time -v, after an untimed sync. Wall time from a monotonic clock around the run
 * (time -v's own wall clock, 10 ms resolution, is kept as wall_time_v_s); CPU = user + sys;
 * peak RSS = maximum resident set size.
 */
function timed(cmd, args, env) {
  const timeFile = join(WORK, `time-${process.pid}.txt`);
  rmSync(timeFile, { force: true });
  // Untimed: the write-back of earlier steps (restores, copies, the other tool) is over first.
  spawnSync('sync');
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-v', '-o', timeFile, cmd, ...args], {
    env: { ...cleanEnv(), ...env },
    cwd: WORK,
    encoding: 'utf8',
    maxBuffer: 512 * 1024 * 1024,
    timeout: STEP_TIMEOUT_MS,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const tv = existsSync(timeFile) ? readFileSync(timeFile, 'utf8') : '';
  const field = (name) => {
    const m = new RegExp(`${name}: (.+)`).exec(tv);
    return m ? m[1].trim() : '';
  };
  const user = Number(field('User time \\(seconds\\)')) || 0;
  const sys = Number(field('System time \\(seconds\\)')) || 0;
  const out = {
    wall_s: round(wall, 3),
    wall_time_v_s: field('Elapsed \\(wall clock\\) time \\(h:mm:ss or m:ss\\)').split(':').map(Number).reduce((acc, v) => acc * 60 + v, 0),
    cpu_s: round(user + sys, 2),
    user_s: user,
    sys_s: sys,
    cpu_per_wall: round((user + sys) / Math.max(wall, 0.001), 2),
    peak_rss_mb: round(Number(field('Maximum resident set size \\(kbytes\\)')) / 1024, 1),
    exit: r.status,
    ok: r.status === 0,
  };
  if (!out.ok) {
    out.error = `${[cmd, ...args].join(' ')} → ${r.error ? r.error.message : r.signal ? `signal ${r.signal}` : `exit ${r.status}`}`;
    out.stderr_tail = `${(r.stderr || '').slice(-3000)}${r.stdout ? `\n--- stdout tail ---\n${r.stdout.slice(-1000)}` : ''}`;
  }
  return out;
}

function round(x, digits) {
  return Number.isFinite(x) ? Number(x.toFixed(digits)) : null;
}

function dirBytes(path) {
  return Number(execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split('\t')[0]);
}

const records = []; // every measurement: { corpus, rep, tool, step, ...metrics }
const failures = [];
const verifications = [];

/** One tool's repository in one repetition of one corpus. */
class Session {
  constructor(corpus, rep, tool) {
    this.corpus = corpus;
    this.rep = rep;
    this.tool = tool;
    this.dir = join(WORK, `${corpus}-rep${rep}-${tool}`);
    this.repo = join(this.dir, 'repo');
    // Each tool's local cache lives with its repository, so a repetition starts cold and
    // nothing is left in the home folder.
    this.env = TOOLS[tool].env(this.repo, join(this.dir, 'cache'));
    this.broken = false; // init or first backup failed: the rest is skipped
  }

  run(step, args, { fatal = false } = {}) {
    const t = TOOLS[this.tool];
    if (this.broken) {
      records.push({ corpus: this.corpus, rep: this.rep, tool: this.tool, step, ok: false, skipped: true });
      return undefined;
    }
    const m = timed(t.cmd, args, this.env);
    const rec = { corpus: this.corpus, rep: this.rep, tool: this.tool, step, ...m };
    records.push(rec);
    log(`${this.corpus} rep ${this.rep} ${this.tool.padEnd(6)} ${step.padEnd(22)} ${m.ok ? `${m.wall_s.toFixed(2)} s  cpu ${m.cpu_s.toFixed(2)} s  rss ${m.peak_rss_mb} MB` : `FAILED: ${m.error}`}`);
    if (!m.ok) {
      failures.push({ corpus: this.corpus, rep: this.rep, tool: this.tool, step, error: m.error, stderr_tail: m.stderr_tail });
      process.stderr.write(`${m.stderr_tail.split('\n').slice(-15).map((l) => `    | ${l}`).join('\n')}\n`);
      if (fatal) this.broken = true;
    }
    return m;
  }

  init() {
    mkdirSync(this.dir, { recursive: true });
    return this.run('init', TOOLS[this.tool].init(), { fatal: true });
  }

  backup(step, path, opts) {
    return this.run(step, TOOLS[this.tool].backup(path), opts);
  }

  size(step) {
    if (this.broken) return undefined;
    const bytes = dirBytes(this.repo);
    records.push({ corpus: this.corpus, rep: this.rep, tool: this.tool, step, ok: true, repo_mb: round(bytes / 1e6, 2), repo_bytes: bytes });
    return bytes;
  }

  /**
   * Restores latest into an empty directory on a filesystem of its own (RestoreTargets); when
   * verify, compares it with `source`; then drops the filesystem.
   */
  restore(source, verify) {
    const target = restoreTargets.fresh();
    const m = this.run('restore', TOOLS[this.tool].restore(target));
    if (m?.ok && verify) {
      const v = verifyRestore(source, join(target, source));
      verifications.push({ corpus: this.corpus, rep: this.rep, tool: this.tool, ...v });
      if (!v.identical) {
        // A benchmark of a broken restore is worthless: the step counts as failed.
        const rec = records[records.length - 1];
        rec.ok = false;
        rec.error = 'restored tree differs from the source';
        failures.push({ corpus: this.corpus, rep: this.rep, tool: this.tool, step: 'restore', error: rec.error, stderr_tail: v.diff_head });
      }
    }
    restoreTargets.release();
  }

  check() {
    return this.run('check --read-data', TOOLS[this.tool].check());
  }

  cleanup() {
    if (!keep) removeTree(this.dir);
  }
}

/**
 * Content: diff -r --no-dereference (must be identical, else the restore counts as failed).
 * Metadata: type, mode, size, mtime (ns), owner, symlink target of every entry below the top
 * folder (reported, not fatal).

 */
function verifyRestore(source, restored) {
  const diff = spawnSync('diff', ['-r', '--no-dereference', source, restored], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const identical = diff.status === 0;
  const b = new Set(treeListing(restored));
  const differing = treeListing(source).filter((line) => !b.has(line));
  const result = { identical, metadata_differences: differing.length, metadata_examples: differing.slice(0, 5) };
  if (!identical) result.diff_head = (diff.stdout + diff.stderr).split('\n').slice(0, 20).join('\n');
  log(`  verify ${restored}: content ${identical ? 'identical' : 'DIFFERENT ✗'}, metadata differences: ${differing.length}`);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Corpora

function runLinux() {
  const corpus = linuxCorpus();
  log(`linux corpus: ${corpus.path} (${(corpus.bytes / 1e6).toFixed(1)} MB, ${corpus.files} files)`);
  const src = join(WORK, 'src', 'linux'); // the one path both tools back up
  for (let rep = 1; rep <= reps; rep++) {
    const order = orderFor(rep);
    log(`linux rep ${rep}/${reps}: ${rep === 1 ? 'copy corpus to' : 'undo the small change in'} ${src}, warm up; order ${order.join(' then ')}`);
    if (rep === 1) copyTree(corpus.path, src);
    else revertLinuxSmallChange(src, corpus.path);
    warmUp(src);
    const sessions = Object.fromEntries(order.map((tool) => [tool, new Session('linux', rep, tool)]));
    for (const tool of order) {
      const s = sessions[tool];
      s.init();
      s.backup('backup (first)', src, { fatal: true });
      s.backup('backup (no change)', src);
    }
    applyLinuxSmallChange(src);
    execFileSync('sync');
    for (const tool of order) {
      const s = sessions[tool];
      s.backup('backup (small change)', src);
      s.restore(src, rep === 1);
      s.check();
      s.size('repository size');
      s.cleanup();
    }
  }
  removeTree(join(WORK, 'src'));
  return corpus;
}

function runVersions(name, versions) {
  const releases = typescriptReleases(versions);
  const corpusName = `versions-${name}`;
  log(`${corpusName}: typescript ${versions.join(', ')} (${releases.map((r) => `${(r.bytes / 1e6).toFixed(1)} MB`).join(', ')})`);
  const path = join(WORK, 'ts', 'package'); // the one path every release is copied into
  for (let rep = 1; rep <= reps; rep++) {
    const order = orderFor(rep);
    const sessions = Object.fromEntries(order.map((tool) => [tool, new Session(corpusName, rep, tool)]));
    for (const tool of order) sessions[tool].init();
    releases.forEach((release, i) => {
      // Like an upgrade: the old release goes, the new one arrives (new inodes and mtimes).
      copyTree(release.path, path);
      warmUp(path);
      for (const tool of order) {
        sessions[tool].backup(i === 0 ? 'backup (first)' : `backup ${release.version}`, path, { fatal: i === 0 });
        sessions[tool].size(`size after ${release.version}`);
      }
      if (i === 0) for (const tool of order) sessions[tool].backup('backup (no change)', path);
    });
    for (const tool of order) {
      const s = sessions[tool];
      s.restore(path, rep === 1);
      s.check();
      s.size('repository size');
      s.cleanup();
    }
  }
  removeTree(join(WORK, 'ts'));
  return { versions, releases, total_bytes: releases.reduce((a, r) => a + r.bytes, 0) };
}

function runIndex() {
  log('index micro-benchmark (node --expose-gc bench/index-memory.mjs)');
  const r = spawnSync(process.execPath, ['--expose-gc', join(ROOT, 'bench/index-memory.mjs'), '--json'], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 * 1024 * 1024, env: { ...process.env, BH_BENCH_DIST: join(bhBuild.dir, 'dist') },
  });
  if (r.status !== 0) {
    failures.push({ corpus: 'index', step: 'index-memory.mjs', error: `exit ${r.status ?? r.signal}`, stderr_tail: '' });
    return { ok: false, error: `exit ${r.status ?? r.signal}` };
  }
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

// ---------------------------------------------------------------------------------------------
// Medians and tables

function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function medianOf(corpus, tool, step, metric) {
  return median(records.filter((r) => r.corpus === corpus && r.tool === tool && r.step === step && r.ok).map((r) => r[metric]));
}

function failedCount(corpus, tool, step) {
  return records.filter((r) => r.corpus === corpus && r.tool === tool && r.step === step && !r.ok).length;
}

/** A row: label, step, metric; target = { ratio: x } (bh/restic ≤ x) or { bhMin: x } (bh ≥ x). */
function row(label, step, metric, target) {
  return { label, step, metric, target };
}

const WALL = 'wall_s';
function timingRows() {
  return [
    row('init (s)', 'init', WALL),
    row('backup, first (s)', 'backup (first)', WALL, { ratio: 0.5 }),
    row('backup, no change (s)', 'backup (no change)', WALL, { ratio: 0.5 }),
  ];
}
function tailRows() {
  return [
    row('restore (s)', 'restore', WALL, { ratio: 0.7 }),
    row('check --read-data (s)', 'check --read-data', WALL, { ratio: 1.0 }),
    row('repository size (MB)', 'repository size', 'repo_mb', { ratio: 1.0 }),
    row('peak RSS, backup first (MB)', 'backup (first)', 'peak_rss_mb', { ratio: 1.0 }),
    row('peak RSS, backup no change (MB)', 'backup (no change)', 'peak_rss_mb', { ratio: 1.0 }),
    row('peak RSS, restore (MB)', 'restore', 'peak_rss_mb', { ratio: 1.0 }),
    row('peak RSS, check --read-data (MB)', 'check --read-data', 'peak_rss_mb', { ratio: 1.0 }),
    row('CPU, backup first (s)', 'backup (first)', 'cpu_s'),
    row('CPU, restore (s)', 'restore', 'cpu_s'),
    row('CPU, check --read-data (s)', 'check --read-data', 'cpu_s'),
    row('CPU/wall, backup first', 'backup (first)', 'cpu_per_wall', { bhMin: 1.6 }),
    row('CPU/wall, restore', 'restore', 'cpu_per_wall', { bhMin: 1.6 }),
  ];
}

function linuxRows() {
  return [...timingRows(), row('backup, small change (s)', 'backup (small change)', WALL), row('CPU/wall, backup small change', 'backup (small change)', 'cpu_per_wall'), ...tailRows()];
}

function versionRows(versions) {
  const rows = [...timingRows()];
  rows[1] = row(`backup, first = ${versions[0]} (s)`, 'backup (first)', WALL, { ratio: 0.5 });
  for (const v of versions.slice(1)) rows.push(row(`backup ${v} (s)`, `backup ${v}`, WALL));
  for (const v of versions) rows.push(row(`repository size after ${v} (MB)`, `size after ${v}`, 'repo_mb', { ratio: 1.0 }));
  rows.push(...tailRows().filter((r) => r.step !== 'repository size' || r.metric !== 'repo_mb'));
  return rows;
}

function evaluate(corpus, spec) {
  const bh = medianOf(corpus, 'bh', spec.step, spec.metric);
  const restic = medianOf(corpus, 'restic', spec.step, spec.metric);
  const ratio = bh !== null && restic !== null && restic > 0 ? bh / restic : null;
  let target = '';
  let pass = null;
  if (spec.target?.ratio !== undefined) {
    target = `≤ ${spec.target.ratio.toFixed(1)}`;
    pass = ratio === null ? false : ratio <= spec.target.ratio;
  } else if (spec.target?.bhMin !== undefined) {
    target = `bh ≥ ${spec.target.bhMin.toFixed(1)}`;
    pass = bh === null ? false : bh >= spec.target.bhMin;
  }
  return {
    label: spec.label, step: spec.step, metric: spec.metric, bh, restic, ratio: ratio === null ? null : round(ratio, 3), target, pass,
    bh_failed: failedCount(corpus, 'bh', spec.step), restic_failed: failedCount(corpus, 'restic', spec.step),
  };
}

function fmt(x, metric) {
  if (x === null || x === undefined) return '—';
  if (metric === 'repo_mb' || metric === 'peak_rss_mb') return x.toFixed(1);
  return x.toFixed(2);
}

/** Two decimals, three where two would hide which side of the target the ratio is on. */
function fmtRatio(r) {
  if (r.ratio === null) return '—';
  const two = r.ratio.toFixed(2);
  const limit = /≤ ([\d.]+)/.exec(r.target);
  return limit && Number(two) === Number(limit[1]) ? r.ratio.toFixed(3) : two;
}

function renderTable(title, rows) {
  const header = ['step', 'bh', 'restic', 'bh/restic', 'target', ''];
  const lines = rows.map((r) => [
    r.label,
    r.bh_failed && r.bh === null ? 'FAIL' : `${fmt(r.bh, r.metric)}${r.bh_failed ? ` (${r.bh_failed} failed)` : ''}`,
    r.restic_failed && r.restic === null ? 'FAIL' : `${fmt(r.restic, r.metric)}${r.restic_failed ? ` (${r.restic_failed} failed)` : ''}`,
    fmtRatio(r),
    r.target,
    r.pass === null ? '' : r.pass ? '✓' : '✗',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmtLine = (cells) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  return [
    `### ${title}`,
    '',
    fmtLine(header),
    `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...lines.map(fmtLine),
    '',
  ].join('\n');
}

function renderIndex(ix) {
  if (!ix || ix.ok === undefined) return '### index micro-benchmark\n\n(not run)\n';
  if (ix.error) return `### index micro-benchmark\n\nFAILED: ${ix.error}\n`;
  const ok = (b) => (b ? '✓' : '✗');
  return [
    `### index micro-benchmark (${(ix.entries / 1e6).toFixed(0)}M synthetic blobs, ${ix.pack_blobs}-blob packs, bulk load)`,
    '',
    '| measure | value | target | |',
    '|:--|--:|--:|:-:|',
    `| memory per blob (B) | ${ix.bytes_per_blob.toFixed(1)} | ≤ ${ix.target_bytes_per_blob} | ${ok(ix.bytes_per_blob <= ix.target_bytes_per_blob)} |`,
    `| memory per blob after +${(ix.incremental_adds / 1e6).toFixed(0)}M incremental adds (B) | ${ix.bytes_per_blob_after_incremental.toFixed(1)} | ≤ ${ix.target_bytes_per_blob} | ${ok(ix.bytes_per_blob_after_incremental <= ix.target_bytes_per_blob)} |`,
    `| bulk load (s) | ${ix.bulk_load_s.toFixed(2)} | | |`,
    `| lookup, ${(ix.lookups / 1e6).toFixed(0)}M present ids (ns/op) | ${ix.lookup_present_ns.toFixed(0)} | all found | ${ok(ix.lookup_present_hits === ix.lookups)} |`,
    `| lookup, ${(ix.lookups / 1e6).toFixed(0)}M absent ids (ns/op) | ${ix.lookup_absent_ns.toFixed(0)} | none found | ${ok(ix.lookup_absent_hits === 0)} |`,
    `| lookup loop overhead, included above (ns/op) | ${ix.lookup_loop_overhead_ns.toFixed(0)} | | |`,
    `| lookup growth 1M → ${(ix.entries / 1e6).toFixed(0)}M blobs | ×${ix.lookup_growth_1m_to_10m} | log₂: ×${ix.lookup_growth_log2_predicts} (+ cache misses) | |`,
    `| incremental add (ns/blob) | ${ix.incremental_add_ns.toFixed(0)} | | |`,
    `| wrong locations in sampled lookups | ${ix.wrong_lookups_in_sample + ix.incremental_wrong_in_sample} | 0 | ${ok(ix.wrong_lookups_in_sample + ix.incremental_wrong_in_sample === 0)} |`,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main

function machine() {
  const version = (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim().split('\n')[0] : null;
  };
  return {
    cpu: cpus()[0]?.model ?? null,
    cores: cpus().length,
    memory_gb: round(totalmem() / 2 ** 30, 1),
    loadavg_at_start: loadavg().map((x) => round(x, 2)),
    node: process.version,
    restic: version('restic', ['version']),
    bh_version: JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version,
    kernel: version('uname', ['-r']),
  };
}

removeTree(WORK);
mkdirSync(WORK, { recursive: true });
if (only.some((p) => p !== 'index')) ensureRestic();
const bhBuild = snapshotBh();
const restoreTargets = new RestoreTargets(WORK);
const info = { ...machine(), bh_build_sha256: bhBuild.build_sha256, restore_targets: restoreTargets.kind };
log(`bench: reps ${reps}, parts ${only.join(', ')}, work dir ${WORK}, bh build ${bhBuild.build_sha256} (snapshot of dist/), load average ${info.loadavg_at_start.join(' ')}`);
if (info.loadavg_at_start[0] > 0.5 * info.cores) log(`warning: the machine is busy (load ${info.loadavg_at_start[0]}); timings will be noisy`);

const corpora = {};
let index;
try {
  if (only.includes('linux')) corpora.linux = runLinux();
  if (only.includes('versions')) {
    corpora['versions-minor'] = runVersions('minor', TS_MINOR);
    corpora['versions-patch'] = runVersions('patch', TS_PATCH);
  }
  if (only.includes('index')) index = runIndex();
} finally {
  restoreTargets.release();
  if (!keep) removeTree(WORK);
}

const tables = {};
if (corpora.linux) tables.linux = linuxRows().map((r) => evaluate('linux', r));
for (const name of ['versions-minor', 'versions-patch']) {
  if (!corpora[name]) continue;
  const rows = versionRows(corpora[name].versions).map((r) => evaluate(name, r));
  // Dedup factor: bytes of all releases / final repository size (informational).
  const dedup = (tool) => {
    const mb = medianOf(name, tool, 'repository size', 'repo_mb');
    return mb ? corpora[name].total_bytes / 1e6 / mb : null;
  };
  const bh = dedup('bh');
  const restic = dedup('restic');
  rows.push({ label: 'releases ÷ repository size (×)', step: 'dedup', metric: 'factor', bh, restic, ratio: bh && restic ? round(bh / restic, 3) : null, target: '', pass: null, bh_failed: 0, restic_failed: 0 });
  tables[name] = rows;
}

const describe = {
  linux: (c) => `linux: Linux 6.1 source without drivers/ except drivers/net, ${(c.bytes / 1e6).toFixed(1)} MB, ${c.files} files; small change = 1 line appended to 10 files + 1 new 1 MiB file`,
  'versions-minor': (c) => `versions-minor: typescript ${c.versions.join(', ')} unpacked, backed up in turn at one path (${(c.total_bytes / 1e6).toFixed(1)} MB in all)`,
  'versions-patch': (c) => `versions-patch: typescript ${c.versions.join(', ')} unpacked, backed up in turn at one path (${(c.total_bytes / 1e6).toFixed(1)} MB in all)`,
};

const date = new Date().toISOString();
const elapsed = round((Date.now() - started) / 1000, 0);
const badVerifications = verifications.filter((v) => !v.identical);
const summary = [
  `## bh vs restic — ${date}`,
  '',
  `${only.some((p) => p !== 'index') ? `Medians of ${reps} repetition${reps > 1 ? 's' : ''} (tool order alternating); ` : ''}bh build ${info.bh_build_sha256}; restores onto a ${info.restore_targets}; ${info.cores} cores (${info.cpu}), node ${info.node}, ${info.restic}; load average at start ${info.loadavg_at_start.join(' ')}; ${elapsed} s in all.`,
  'Ratios are bh/restic (lower is better for bh); targets from the performance issue; CPU/wall targets apply to bh alone.',
  '',
  ...Object.entries(corpora).map(([name, c]) => `- ${describe[name](c)}`),
  '',
  ...Object.entries(tables).map(([name, rows]) => renderTable(name, rows)),
  ...(only.includes('index') ? [renderIndex(index)] : []),
  verifications.length ? `Restore verification (rep 1, diff -r --no-dereference): ${verifications.map((v) => `${v.corpus}/${v.tool} ${v.identical ? 'identical' : 'DIFFERENT ✗'}${v.metadata_differences ? ` (${v.metadata_differences} metadata differences)` : ''}`).join('; ')}` : '',
  failures.length ? `\n**${failures.length} failed step(s):**\n${failures.map((f) => `- ${f.corpus} rep ${f.rep ?? ''} ${f.tool ?? ''} ${f.step}: ${f.error}`).join('\n')}` : '',
  '',
].join('\n');

const resultsDir = join(ROOT, 'bench/results');
mkdirSync(resultsDir, { recursive: true });
const jsonPath = join(resultsDir, `bench-${date.replace(/[:.]/g, '-')}.json`);
info.loadavg_at_end = loadavg().map((x) => round(x, 2));
writeFileSync(jsonPath, JSON.stringify({ date, args: argv, reps, parts: only, elapsed_s: elapsed, machine: info, corpora, tables, index: index ?? null, verifications, failures, records }, null, 1) + '\n');
writeFileSync(join(resultsDir, 'LATEST.md'), summary);
console.log(`\n${summary}`);
console.log(`written ${jsonPath} and bench/results/LATEST.md`);
process.exitCode = failures.length || badVerifications.length ? 1 : 0;
