/**
 * Corpus builders for the benchmark suite (bench/run.mjs). Everything is cached under
 * bench/corpus/ (gitignored); a `.complete` marker in each corpus folder makes reruns instant.
 * The cached corpora are never modified: run.mjs copies them to its work dir first.
 *
 *   linux     the Linux 6.1 source from Debian's linux-source-6.1 package, without drivers/
 *             except drivers/net (~560 MB, ~50 k files)
 *   ts-<ver>  `npm pack typescript@<ver>`, unpacked (one folder per release)
 *
 * `node bench/corpus.mjs` builds them all and prints their sizes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CORPUS_DIR = join(ROOT, 'bench/corpus');

/** Minor releases: daily-change model with large changes (they share little). */
export const TS_MINOR = ['5.0.4', '5.1.6', '5.2.2', '5.3.3', '5.4.5', '5.5.4', '5.6.3'];
/** Patch releases: small changes between releases, where dedup should shine. */
export const TS_PATCH = ['5.4.2', '5.4.3', '5.4.4', '5.4.5'];

const LINUX_TAR = '/usr/src/linux-source-6.1.tar.xz';
const LINUX_TOP = 'linux-source-6.1';

function log(msg) {
  process.stderr.write(`[corpus] ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || '').slice(-2000)}`);
  return r.stdout;
}

/** Bytes (du -sb, apparent size) and number of entries (files, links, dirs) under `dir`. */
export function treeStats(dir) {
  const bytes = Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
  const files = Number(execFileSync('sh', ['-c', 'find "$1" -type f | wc -l', 'sh', dir], { encoding: 'utf8' }).trim());
  const entries = Number(execFileSync('sh', ['-c', 'find "$1" | wc -l', 'sh', dir], { encoding: 'utf8' }).trim());
  return { bytes, files, entries };
}

function ensureLinuxTarball() {
  if (existsSync(LINUX_TAR)) return;
  log(`${LINUX_TAR} missing: apt-get install -y linux-source-6.1`);
  const first = spawnSync('apt-get', ['install', '-y', 'linux-source-6.1'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (first.status !== 0) {
    log('install failed; apt-get update and retry');
    run('apt-get', ['update']);
    run('apt-get', ['install', '-y', 'linux-source-6.1'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  if (!existsSync(LINUX_TAR)) throw new Error(`${LINUX_TAR} still missing after installing linux-source-6.1`);
}

/** The Linux corpus: returns { path, bytes, files, entries }. */
export function linuxCorpus() {
  const dir = join(CORPUS_DIR, 'linux');
  const marker = join(dir, '.complete');
  if (!existsSync(marker)) {
    ensureLinuxTarball();
    log(`extracting ${LINUX_TAR} into ${dir} (without drivers/ except drivers/net)`);
    const tmp = join(CORPUS_DIR, 'linux.tmp');
    rmSync(tmp, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    // Two passes over the archive: GNU tar has no "exclude except" pattern.
    run('tar', ['xJf', LINUX_TAR, '-C', tmp, '--no-same-owner', `--exclude=${LINUX_TOP}/drivers`]);
    run('tar', ['xJf', LINUX_TAR, '-C', tmp, '--no-same-owner', `${LINUX_TOP}/drivers/net`]);
    renameSync(join(tmp, LINUX_TOP), dir);
    rmSync(tmp, { recursive: true, force: true });
    const stats = treeStats(dir);
    writeFileSync(marker, JSON.stringify(stats) + '\n');
  }
  const stats = JSON.parse(readText(marker) || '{}');
  return { path: dir, ...(stats.bytes ? stats : treeStats(dir)) };
}

function readText(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** One unpacked typescript release: returns { version, path, bytes, files }. */
export function typescriptRelease(version) {
  const dir = join(CORPUS_DIR, `ts-${version}`);
  const marker = join(dir, '.complete');
  if (!existsSync(marker)) {
    const tarballs = join(CORPUS_DIR, 'tarballs');
    mkdirSync(tarballs, { recursive: true });
    const tgz = join(tarballs, `typescript-${version}.tgz`);
    if (!existsSync(tgz)) {
      log(`npm pack typescript@${version}`);
      run('npm', ['pack', `typescript@${version}`, '--pack-destination', tarballs, '--silent'], { cwd: tarballs });
      if (!existsSync(tgz)) throw new Error(`npm pack typescript@${version} did not produce ${tgz}`);
    }
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    run('tar', ['xzf', tgz, '-C', dir, '--no-same-owner']); // -> dir/package/...
    const stats = treeStats(join(dir, 'package'));
    writeFileSync(marker, JSON.stringify(stats) + '\n');
  }
  const stats = JSON.parse(readText(marker));
  return { version, path: join(dir, 'package'), ...stats };
}

export function typescriptReleases(versions) {
  return versions.map((v) => typescriptRelease(v));
}

/** Deterministic bytes: SHA-256 in counter mode (incompressible, the same on every machine). */
export function pseudoRandom(seed, length) {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0, at = 0; at < length; i++) {
    const block = createHash('sha256').update(`${seed}:${i}`).digest();
    at += block.copy(out, at);
  }
  return out;
}

/** Files of the Linux tree that get one appended line in the "small change" step. */
export const LINUX_CHANGED_FILES = [
  'Makefile',
  'README',
  'init/main.c',
  'kernel/fork.c',
  'kernel/sched/core.c',
  'mm/mmap.c',
  'fs/namei.c',
  'net/core/dev.c',
  'lib/string.c',
  'include/linux/sched.h',
];

/**
 * The "small change" between two backups of a working copy of the Linux corpus (never the
 * cached one): one line appended to each of LINUX_CHANGED_FILES and one new 1 MiB file of
 * incompressible bytes. Deterministic; returns what it changed.
 */
export function applyLinuxSmallChange(copyDir) {
  if (copyDir.startsWith(CORPUS_DIR)) throw new Error('refusing to modify the cached corpus');
  for (const rel of LINUX_CHANGED_FILES) {
    const path = join(copyDir, rel);
    if (!existsSync(path)) throw new Error(`small change: ${rel} missing in ${copyDir}`);
    appendFileSync(path, `/* bh bench: small change to ${rel} */\n`);
  }
  const added = join(copyDir, 'bh-bench-new-file.bin');
  writeFileSync(added, pseudoRandom('bh-bench-small-change', 1024 * 1024));
  return { appended: LINUX_CHANGED_FILES.length, added_bytes: 1024 * 1024 };
}

/**
 * Undoes applyLinuxSmallChange on a working copy, from the pristine corpus: the changed files
 * are copied back with cp -a (content and mtime), the new file is removed, and the top
 * folder's mtime is reset. Afterwards the copy must list exactly like the corpus (checked), so
 * every repetition backs up the same tree without copying 50 k files again.
 */
export function revertLinuxSmallChange(copyDir, pristineDir) {
  if (copyDir.startsWith(CORPUS_DIR)) throw new Error('refusing to modify the cached corpus');
  for (const rel of LINUX_CHANGED_FILES) run('cp', ['-a', join(pristineDir, rel), join(copyDir, rel)]);
  rmSync(join(copyDir, 'bh-bench-new-file.bin'), { force: true });
  run('touch', ['-r', pristineDir, copyDir]);
  const a = treeListing(pristineDir).filter((l) => !l.startsWith('.complete\t'));
  const b = treeListing(copyDir);
  if (a.join('\n') !== b.join('\n')) throw new Error(`revert of the small change left ${copyDir} different from ${pristineDir}`);
}

/**
 * One line per entry under `dir` (sorted): relative path, type, mode, size (not for folders:
 * their size is a file-system detail), mtime with ns, owner:group, symlink target.
 */
export function treeListing(dir) {
  const out = run('sh', ['-c', `cd "$1" && find . -mindepth 1 -printf '%P\\t%y\\t%m\\t%s\\t%T@\\t%U:%G\\t%l\\n' | LC_ALL=C sort`, 'sh', dir]);
  return out.split('\n').filter(Boolean).map((line) => {
    const f = line.split('\t');
    if (f[1] === 'd') f[3] = '';
    return f.join('\t');
  });
}

/**
 * Removes a tree and syncs, so its I/O is over before the next timed step. Files are unlinked
 * by 8 parallel rm processes first: on a virtual disk where every unlink waits on I/O this is
 * ~4× faster than one rm -rf (56 k entries: ~70 s → ~15 s here).
 */
export function removeTree(path) {
  if (!existsSync(path)) return;
  run('sh', ['-c', 'find "$1" -mindepth 1 -not -type d -print0 | xargs -0 -r -P 8 -n 200 rm -f --; rm -rf -- "$1"', 'sh', path]);
  run('sync', []);
  lastRemoval = Date.now();
}

/** When removeTree last freed inodes (ms since the epoch). */
let lastRemoval = 0;
/**
 * How long ext4 without a journal keeps a freed inode from being reused once its inode table
 * block is written back (RECENTCY_MIN in fs/ext4/ialloc.c), plus a margin.
 */
const EXT4_RECENTLY_DELETED_MS = 65_000;
const RESTORE_FS_BYTES = 4 * 2 ** 30;

/**
 * Where restores land (bench/README.md, "Restore targets"). Each restore gets a filesystem of
 * its own, made just before it: ext4 with its journal (the usual Linux default), in a sparse
 * image on a loop device, empty and synced. Measured here, the disk of these machines (/tmp) is
 * ext4 *without* a journal, where the kernel skips every inode freed in the last 60 s (360 s
 * while its inode table block is dirty) when it allocates a new one, looking each up in the
 * buffer cache: a restore of 52 k files just after another 52 k were deleted spent 10–25 s of
 * system time in it instead of 2 s, whichever tool ran; other work on the machine deleting
 * files on the same disk adds more. A fresh filesystem per restore keeps both the suite's own
 * deletions and the neighbours' out of the measurement.
 *
 * Without root or loop devices, restores go to `fallbackDir` after waiting until the suite's
 * last bulk removal is EXT4_RECENTLY_DELETED_MS old; `kind` says which (it is in the JSON).
 */
export class RestoreTargets {
  constructor(workDir) {
    this.image = join(workDir, 'restore-fs.img');
    this.mountPoint = join(workDir, 'restore-fs');
    this.fallbackDir = join(workDir, 'restore');
    this.mounted = false;
    this.kind = process.getuid?.() === 0 && canMountLoop(this.image, this.mountPoint) ? 'fresh ext4 (journal) on a loop device per restore' : 'work dir, 65 s after the last bulk removal';
  }

  /** A new empty directory to restore into, on a filesystem made for it (or settled). */
  fresh() {
    if (this.kind.startsWith('fresh')) {
      this.release();
      makeLoopFs(this.image, this.mountPoint);
      this.mounted = true;
      const dir = join(this.mountPoint, 'target');
      mkdirSync(dir);
      run('sync', []);
      return dir;
    }
    removeTree(this.fallbackDir);
    const wait = lastRemoval + EXT4_RECENTLY_DELETED_MS - Date.now();
    if (wait > 0) spawnSync('sleep', [String(wait / 1000)]);
    mkdirSync(this.fallbackDir, { recursive: true });
    run('sync', []);
    return this.fallbackDir;
  }

  /** Unmounts and deletes the last filesystem (its image is one file: nothing to wait for). */
  release() {
    if (this.mounted) {
      run('umount', [this.mountPoint]);
      this.mounted = false;
    }
    rmSync(this.image, { force: true });
    removeTree(this.fallbackDir);
  }
}

function makeLoopFs(image, mountPoint) {
  rmSync(image, { force: true });
  writeFileSync(image, '');
  run('truncate', ['-s', String(RESTORE_FS_BYTES), image]);
  // Inode tables and journal written now, not by the kernel's lazy-init thread during a restore.
  run('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', image]);
  mkdirSync(mountPoint, { recursive: true });
  run('mount', ['-o', 'loop', image, mountPoint]);
}

function canMountLoop(image, mountPoint) {
  try {
    makeLoopFs(image, mountPoint);
    run('umount', [mountPoint]);
    rmSync(image, { force: true });
    return true;
  } catch (error) {
    log(`restores go to the work dir: cannot make a loop filesystem (${error.message.split('\n')[0]})`);
    rmSync(image, { force: true });
    return false;
  }
}

/** Copies `from` to `to` with cp -a (`to` must not exist), then syncs so writeback is done. */
export function copyTree(from, to) {
  removeTree(to);
  mkdirSync(dirname(to), { recursive: true });
  run('cp', ['-a', from, to]);
  // A corpus folder that is a symlink would be copied as the link: every later change to the
  // "copy" would then go to the cached corpus.
  if (!lstatSync(to).isDirectory()) throw new Error(`copy of ${from} is not a directory (is the corpus a symlink? use a real folder)`);
  rmSync(join(to, '.complete'), { force: true });
  run('sync', []);
}

/**
 * Reads every byte of `dir` once, so both tools start with a warm page cache. (Through cat: GNU
 * tar writing straight to /dev/null notices it and skips reading file contents.)
 */
export function warmUp(dir) {
  run('sh', ['-c', 'tar cf - -C "$1" . | cat > /dev/null', 'sh', dir]);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const linux = linuxCorpus();
  console.log(`linux: ${linux.path} ${(linux.bytes / 1e6).toFixed(1)} MB, ${linux.files} files, ${linux.entries} entries`);
  for (const v of [...new Set([...TS_MINOR, ...TS_PATCH])]) {
    const r = typescriptRelease(v);
    console.log(`typescript ${v}: ${(r.bytes / 1e6).toFixed(1)} MB, ${r.files} files`);
  }
}
