#!/usr/bin/env node
/**
 * Backend throughput: the same data backed up to and restored from each backend, through the
 * real CLI, plus raw 16 MiB pack writes and reads through the Backend interface at several
 * connection counts (how SFTP's `connections` default was chosen).
 *
 *   npm run build && node bench/backends.mjs            # ~200 MiB, 1 repetition
 *   node bench/backends.mjs --mib 100 --reps 3
 *   node bench/backends.mjs --only raw                   # raw pack transfers only
 *
 * Backends: local (a folder in /tmp) and sftp (a throwaway OpenSSH sshd on 127.0.0.1, started
 * from tests/helpers/sshd.ts). S3 has its own script, bench/backends-s3.mjs (s3rver on loopback).
 * Writes bench/results/backends-<time>.json and prints a table (MiB/s, median of the repetitions).
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { ROOT } from './corpus.mjs';

const argv = process.argv.slice(2);
const value = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const MIB = 1024 * 1024;
const dataMiB = Number(value('--mib') ?? 200);
const reps = Math.max(1, Number(value('--reps') ?? 1));
const only = value('--only');
const WORK = `/tmp/bh-bench-backends-${process.pid}`;
const PASSWORD = 'bench-password';

function log(msg) {
  process.stderr.write(`${msg}\n`);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Loads the sshd test harness (TypeScript, node built-ins only) by transpiling it, and the
 * helper it imports, next to the work dir.
 */
async function loadSshdHarness() {
  const dir = join(WORK, 'helpers');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  for (const name of ['sshd', 'ports']) {
    const source = readFileSync(join(ROOT, `tests/helpers/${name}.ts`), 'utf8');
    const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
    writeFileSync(join(dir, `${name}.js`), outputText);
  }
  return import(pathToFileURL(join(dir, 'sshd.js')).href);
}

/** The data set: files of 1–8 MiB of incompressible bytes plus some compressible text, `dataMiB` in all. */
function makeSource(dir) {
  mkdirSync(dir, { recursive: true });
  let left = dataMiB * MIB;
  for (let i = 0; left > 0; i++) {
    const size = Math.min(left, ((i % 8) + 1) * MIB);
    const body = i % 5 === 4 ? Buffer.from('compressible line of text\n'.repeat(Math.ceil(size / 26))).subarray(0, size) : randomBytes(size);
    writeFileSync(join(dir, `f${i}.bin`), body);
    left -= size;
  }
}

function bh(args, env) {
  const started = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/bh'), ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, encoding: 'utf8', maxBuffer: 64 * MIB });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.status !== 0) throw new Error(`bh ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return seconds;
}

async function cliBench(backends) {
  const source = join(WORK, 'source');
  makeSource(source);
  const rows = [];
  for (const backend of backends) {
    const backup = [];
    const restore = [];
    for (let rep = 0; rep < reps; rep++) {
      const { location, flags } = backend.fresh(rep);
      const env = { BH_REPO: location, BH_PASSWORD: PASSWORD };
      bh(['init', ...flags], env);
      backup.push(bh(['backup', source, ...flags], env));
      const target = join(WORK, `restore-${backend.name}-${rep}`);
      restore.push(bh(['restore', 'latest', '--target', target, ...flags], env));
      rmSync(target, { recursive: true, force: true });
    }
    rows.push({ backend: backend.name, backup_s: median(backup), restore_s: median(restore), backup_mibs: dataMiB / median(backup), restore_mibs: dataMiB / median(restore) });
    log(`${backend.name}: backup ${rows.at(-1).backup_mibs.toFixed(1)} MiB/s, restore ${rows.at(-1).restore_mibs.toFixed(1)} MiB/s`);
  }
  return rows;
}

/** 16 packs of 16 MiB written 2 at a time (as a backup uploads them), then read back 2 at a time. */
async function rawBench(sshd) {
  const { openSftpBackend } = await import(pathToFileURL(join(ROOT, 'dist/backends/sftp.js')).href);
  const packs = Array.from({ length: 16 }, () => randomBytes(16 * MIB));
  const names = packs.map((p) => createHash('sha256').update(p).digest('hex'));
  const rows = [];
  for (const connections of [1, 2, 4, 8]) {
    const writes = [];
    const reads = [];
    for (let rep = 0; rep < reps; rep++) {
      const dir = join(sshd.dir, `raw-${connections}-${rep}`);
      const be = await openSftpBackend(sshd.url(dir), { env: {}, sshKey: sshd.userKey, knownHosts: sshd.knownHosts, connections });
      await be.create();
      const two = async (fn) => {
        let next = 0;
        await Promise.all([0, 1].map(async () => { while (next < packs.length) await fn(next++); }));
      };
      let t = process.hrtime.bigint();
      await two((i) => be.write({ type: 'data', name: names[i] }, packs[i]));
      writes.push(Number(process.hrtime.bigint() - t) / 1e9);
      t = process.hrtime.bigint();
      await two(async (i) => {
        const got = await be.read({ type: 'data', name: names[i] });
        if (!got.equals(packs[i])) throw new Error('read back different bytes');
      });
      reads.push(Number(process.hrtime.bigint() - t) / 1e9);
      await be.close();
      rmSync(dir, { recursive: true, force: true });
    }
    const mib = packs.length * 16;
    rows.push({ connections, write_mibs: mib / median(writes), read_mibs: mib / median(reads) });
    log(`raw sftp, ${connections} connection(s): write ${rows.at(-1).write_mibs.toFixed(1)} MiB/s, read ${rows.at(-1).read_mibs.toFixed(1)} MiB/s`);
  }
  return rows;
}

mkdirSync(WORK, { recursive: true });
const { startSshd } = await loadSshdHarness();
const sshd = await startSshd();
try {
  const sftpFlags = ['--ssh-key', sshd.userKey, '--known-hosts', sshd.knownHosts];
  const BACKENDS = [
    { name: 'local', fresh: (rep) => ({ location: join(WORK, `local-repo-${rep}`), flags: [] }) },
    { name: 'sftp', fresh: (rep) => ({ location: sshd.url(join(sshd.dir, `sftp-repo-${rep}`)), flags: sftpFlags }) },
  ];
  const result = { when: new Date().toISOString(), data_mib: dataMiB, reps };
  if (only !== 'raw') result.cli = await cliBench(BACKENDS);
  if (only !== 'cli') result.raw_sftp = await rawBench(sshd);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const out = join(ROOT, 'bench/results', `backends-${result.when.replace(/[:.]/g, '-')}.json`);
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  if (result.cli) console.table(result.cli.map((r) => ({ backend: r.backend, 'backup MiB/s': r.backup_mibs.toFixed(1), 'restore MiB/s': r.restore_mibs.toFixed(1) })));
  if (result.raw_sftp) console.table(result.raw_sftp.map((r) => ({ connections: r.connections, 'write MiB/s': r.write_mibs.toFixed(1), 'read MiB/s': r.read_mibs.toFixed(1) })));
  log(`wrote ${out}`);
} finally {
  await sshd.stop();
  rmSync(WORK, { recursive: true, force: true });
}
