#!/usr/bin/env node
/**
 * Browsing through FUSE: `bh mount` against `restic mount` on the same data, in one run.
 *
 *   npm run build && node bench/mount.mjs            # 3 repetitions
 *   node bench/mount.mjs --reps 1 --work /tmp/bm      # keep the repositories there, reuse them next time
 *
 * Each tool gets a repository with two snapshots: a 1 GiB file of incompressible bytes (host
 * "big"), then the Linux corpus (host "bench", so it is snapshots/latest). Each repetition
 * mounts afresh (nothing of the mount in the page cache; the repositories themselves are warm
 * for both) and times, in child processes, as a user would run them:
 *
 *   find MNT/snapshots/latest -type f | wc -l
 *   tar cf - MNT/snapshots/latest/. | wc -c          (MiB/s)
 *   dd if=MNT/hosts/big/latest/…/one-gib.bin of=/dev/null bs=1M   (MiB/s)
 *
 * The tool order alternates between repetitions; the table shows medians and the ratio
 * restic/bh (above 1: bh is faster). Writes bench/results/mount-<time>.json.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { linuxCorpus, ROOT, warmUp } from './corpus.mjs';

const argv = process.argv.slice(2);
const value = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const reps = Math.max(1, Number(value('--reps') ?? 3));
/** --work DIR keeps the repositories there and reuses them on the next run with the same DIR. */
const WORK = value('--work') ?? `/tmp/bh-bench-mount-${process.pid}`;
const reuse = value('--work') !== undefined;
const PASSWORD = 'bench-password';
const MIB = 1024 * 1024;
const BIG_MIB = 1024;
const BH = join(ROOT, 'bin/bh');

const log = (msg) => process.stderr.write(`${msg}\n`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const env = { ...process.env, BH_PASSWORD: PASSWORD, RESTIC_PASSWORD: PASSWORD, BH_CACHE_DIR: join(WORK, 'bh-cache'), RESTIC_CACHE_DIR: join(WORK, 'restic-cache') };

function run(cmd, args) {
  const result = spawnSync(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * MIB });
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  return result.stdout.toString();
}

const TOOLS = {
  bh: {
    init: (repo) => run(process.execPath, [BH, 'init', '-r', repo]),
    backup: (repo, path, host) => run(process.execPath, [BH, 'backup', '-r', repo, '--host', host, path]),
    mount: (repo, mnt) => spawn(process.execPath, [BH, 'mount', '-r', repo, mnt], { env, stdio: 'ignore' }),
  },
  restic: {
    init: (repo) => run('restic', ['init', '--repository-version', '2', '-r', repo]),
    backup: (repo, path, host) => run('restic', ['backup', '--quiet', '--host', host, '-r', repo, path]),
    mount: (repo, mnt) => spawn('restic', ['mount', '-r', repo, mnt], { env, stdio: 'ignore' }),
  },
};

/** CPU seconds (user + system) process `pid` has used so far. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Seconds a shell pipeline takes, its output, and the CPU seconds the serving process `pid` spent meanwhile. */
function timed(script, pid) {
  const cpu = cpuSeconds(pid);
  const start = process.hrtime.bigint();
  const out = execFileSync('bash', ['-o', 'pipefail', '-c', script], { env, maxBuffer: 64 * MIB }).toString().trim();
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, out, cpu: cpuSeconds(pid) - cpu };
}

async function mounted(tool, repo, mnt) {
  mkdirSync(mnt, { recursive: true });
  const child = TOOLS[tool].mount(repo, mnt);
  const deadline = Date.now() + 120_000;
  // Ready once snapshots/latest lists (from a child process, as everything else here).
  while (spawnSync('ls', [join(mnt, 'snapshots', 'latest')], { stdio: 'ignore' }).status !== 0) {
    if (child.exitCode !== null) throw new Error(`${tool} mount exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error(`${tool} mount did not come up`);
    await sleep(100);
  }
  return child;
}

async function unmount(child, mnt) {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGINT');
  await Promise.race([exited, sleep(15_000)]);
  if (readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} `)) spawnSync('fusermount3', ['-u', '-z', mnt]);
}

async function main() {
  const ready = join(WORK, 'ready.json');
  let setup = reuse && existsSync(ready) ? JSON.parse(readFileSync(ready, 'utf8')) : undefined;
  if (!setup) {
    rmSync(WORK, { recursive: true, force: true });
    mkdirSync(WORK, { recursive: true });
    // The corpus folder may be a symbolic link (a shared checkout's): back up the tree it points to.
    const corpusPath = realpathSync(linuxCorpus().path);
    const bigDir = join(WORK, 'big');
    mkdirSync(bigDir);
    const bigFile = join(bigDir, 'one-gib.bin');
    const fd = openSync(bigFile, 'w');
    for (let i = 0; i < BIG_MIB / 64; i++) writeSync(fd, randomBytes(64 * MIB));
    closeSync(fd);
    warmUp(corpusPath);
    const repos = {};
    for (const tool of Object.keys(TOOLS)) {
      const repo = join(WORK, `repo-${tool}`);
      log(`${tool}: init and backups`);
      TOOLS[tool].init(repo);
      TOOLS[tool].backup(repo, bigDir, 'big');
      TOOLS[tool].backup(repo, corpusPath, 'bench');
      repos[tool] = repo;
    }
    setup = { repos, bigFile };
    writeFileSync(ready, JSON.stringify(setup));
  }
  const { repos, bigFile } = setup;
  const results = { bh: { find: [], tar: [], dd: [], cpu: { find: [], tar: [], dd: [] } }, restic: { find: [], tar: [], dd: [], cpu: { find: [], tar: [], dd: [] } } };
  let files;
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? ['bh', 'restic'] : ['restic', 'bh'];
    for (const tool of order) {
      const mnt = join(WORK, `mnt-${tool}`);
      const child = await mounted(tool, repos[tool], mnt);
      try {
        const latest = join(mnt, 'snapshots', 'latest');
        const find = timed(`find ${latest}/ -type f | wc -l`, child.pid);
        // "latest/." and not "latest/": GNU tar drops a trailing slash and would archive the symbolic link alone.
        const tar = timed(`tar cf - ${latest}/. 2>/dev/null | wc -c`, child.pid);
        const dd = timed(`dd if=${join(mnt, 'hosts', 'big', 'latest', bigFile)} of=/dev/null bs=1M 2>&1 | tail -1`, child.pid);
        files ??= Number(find.out);
        if (Number(find.out) !== files) throw new Error(`${tool}: find saw ${find.out} files, the other tool ${files}`);
        results[tool].find.push(find.seconds);
        results[tool].tar.push(Number(tar.out) / MIB / tar.seconds);
        results[tool].dd.push(BIG_MIB / dd.seconds);
        results[tool].cpu.find.push(find.cpu);
        results[tool].cpu.tar.push(tar.cpu);
        results[tool].cpu.dd.push(dd.cpu);
        log(`rep ${rep + 1} ${tool}: find ${find.seconds.toFixed(2)} s (${find.out} files; cpu ${find.cpu.toFixed(2)} s), tar ${(Number(tar.out) / MIB).toFixed(0)} MiB in ${tar.seconds.toFixed(2)} s (cpu ${tar.cpu.toFixed(2)} s), dd ${dd.seconds.toFixed(2)} s (cpu ${dd.cpu.toFixed(2)} s)`);
      } finally {
        await unmount(child, mnt);
      }
    }
  }
  const rows = [
    ['`find MNT/snapshots/latest/ -type f \\| wc -l`', 's', 'find', (bh, restic) => restic / bh],
    ['`tar cf - MNT/snapshots/latest/. \\| wc -c`', 'MiB/s', 'tar', (bh, restic) => bh / restic],
    ['`dd bs=1M` of one 1 GiB file', 'MiB/s', 'dd', (bh, restic) => bh / restic],
  ];
  const lines = [
    `Mount (${files} files of the Linux corpus, ${reps} repetition${reps === 1 ? '' : 's'}, medians; speed-up = how many times faster bh is, target ≥ 1)`,
    '',
    '| measurement | bh | restic 0.14 | speed-up | CPU s of the mount process: bh | restic |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const [label, unit, key, speedup] of rows) {
    const bh = median(results.bh[key]);
    const restic = median(results.restic[key]);
    lines.push(`| ${label} | ${bh.toFixed(2)} ${unit} | ${restic.toFixed(2)} ${unit} | ${speedup(bh, restic).toFixed(2)}× | ${median(results.bh.cpu[key]).toFixed(2)} | ${median(results.restic.cpu[key]).toFixed(2)} |`);
  }
  const table = lines.join('\n');
  console.log(table);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results', `mount-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify({ reps, files, results, table }, null, 2) + '\n');
  if (!reuse) rmSync(WORK, { recursive: true, force: true });
}

main().catch((error) => {
  log(error.stack ?? String(error));
  process.exit(1);
});
