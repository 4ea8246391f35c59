#!/usr/bin/env node
/**
 * Backup and restore throughput: local directory vs S3 (s3rver on loopback), same data, same run.
 *
 *   npm run build && node bench/backends-s3.mjs [--mib 200] [--reps 1] [--keep]
 *
 * The data is incompressible (random), in 10 MiB files, so the figures are about moving packs,
 * not about dedup or compression. s3rver stores every object as a file on the same disk, so the
 * S3 figure is bh's S3 path (SigV4, HTTP, multipart) plus s3rver's own cost, not a network.
 * Prints a table and exits 1 if a restore differs from the source.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BH = join(ROOT, 'bin/bh');
const argv = process.argv.slice(2);
const option = (name, fallback) => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const MIB = option('--mib', 200);
const REPS = option('--reps', 1);
const KEEP = argv.includes('--keep');
const PASSWORD = 'bench password';

const work = mkdtempSync(join(tmpdir(), 'bh-bench-s3-'));
const source = join(work, 'src');

function hashDir(dir) {
  const out = {};
  for (const name of readdirSync(dir).sort()) out[name] = createHash('sha256').update(readFileSync(join(dir, name))).digest('hex');
  return out;
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startS3rver(dir, port) {
  const child = spawn(process.execPath, ['--openssl-legacy-provider', join(ROOT, 'node_modules/s3rver/bin/s3rver.js'), '-d', dir, '-a', '127.0.0.1', '-p', String(port), '--silent', '--no-vhost-buckets', '--configure-bucket', 'bench'], { stdio: 'ignore' });
  for (let i = 0; i < 300; i++) {
    const up = await new Promise((resolve) => {
      const r = request({ host: '127.0.0.1', port, path: '/' }, (res) => (res.resume(), resolve(true)));
      r.on('error', () => resolve(false));
      r.end();
    });
    if (up) return child;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('s3rver did not start');
}

function bh(args, env) {
  const started = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [BH, ...args], { env: { ...process.env, BH_PASSWORD: PASSWORD, ...env }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.status !== 0) throw new Error(`bh ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return seconds;
}

async function main() {
  mkdirSync(source);
  for (let i = 0; i < Math.ceil(MIB / 10); i++) writeFileSync(join(source, `f${i}.bin`), randomBytes(10 * 1024 * 1024));
  const expected = JSON.stringify(hashDir(source));

  const s3Dir = join(work, 's3rver');
  mkdirSync(s3Dir);
  const port = await freePort();
  const s3rver = await startS3rver(s3Dir, port);
  const s3Env = { BH_S3_ENDPOINT: `http://127.0.0.1:${port}`, BH_S3_PATH_STYLE: '1', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

  const rows = [];
  let failed = false;
  try {
    for (let rep = 0; rep < REPS; rep++) {
      for (const [name, location, env] of [['local', join(work, `local-${rep}`), {}], ['s3 (s3rver)', `s3:bench/rep-${rep}`, s3Env]]) {
        const repoEnv = { ...env, BH_REPO: location };
        bh(['init'], repoEnv);
        const backup = bh(['backup', '--json', source], repoEnv);
        const target = join(work, `restore-${rep}-${name.split(' ')[0]}`);
        const restore = bh(['restore', 'latest', '--target', target], repoEnv);
        const same = JSON.stringify(hashDir(join(target, source))) === expected;
        failed ||= !same;
        rmSync(target, { recursive: true, force: true });
        rows.push({ name, rep, backup, restore, same });
      }
    }
  } finally {
    s3rver.kill('SIGKILL');
    if (!KEEP) rmSync(work, { recursive: true, force: true });
  }

  const mbs = (s) => (MIB / s).toFixed(1);
  console.log(`${MIB} MiB incompressible data, ${Math.ceil(MIB / 10)} files, ${REPS} repetition(s), each row one run`);
  console.log('| backend | backup s | backup MiB/s | restore s | restore MiB/s | restore identical |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.name} | ${r.backup.toFixed(2)} | ${mbs(r.backup)} | ${r.restore.toFixed(2)} | ${mbs(r.restore)} | ${r.same ? 'yes' : 'NO'} |`);
  process.exitCode = failed ? 1 : 0;
}

await main();
