#!/usr/bin/env node
/**
 * The binding under `bh mount`, measured alone: the same synthetic read-only file system (a
 * directory of 50 000 files of 1 KiB, and one 1 GiB file) served from JavaScript by bh's own
 * libfuse3 binding (native/bhfuse.c through dist/fsx/fuse.js) and by @cocalc/fuse-native (the
 * maintained Node binding, libfuse 2, high-level API). No repository, no decryption: what is
 * left is what the binding costs per request. This is how the binding was chosen (README
 * "Browse restores", bench/README.md).
 *
 *   npm run build
 *   apt-get install libfuse-dev && (cd /tmp/fn && npm install @cocalc/fuse-native)   # not a dependency of bh
 *   node bench/fuse-bindings.mjs --fuse-native-dir /tmp/fn [--reps 3]
 *
 * Each repetition mounts afresh and times, in child processes: `find MNT -type f | wc -l`,
 * `tar cf - MNT/many/. | wc -c` (stat and read every small file) and `dd if=MNT/big bs=1M`.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const argv = process.argv.slice(2);
const value = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const FILES = 50_000;
const SMALL = 1024;
const BIG = 1024 * 1024 * 1024;
const ZEROS = Buffer.alloc(4 * 1024 * 1024);
const NOW = new Date('2024-01-01T00:00:00Z');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const fileName = (i) => `f${String(i).padStart(5, '0')}`;

/** The file system, served by bh's binding (inode API). */
async function serveBh(mnt) {
  const { FuseMount } = await import(pathToFileURL(join(ROOT, 'dist/fsx/fuse.js')).href);
  const DIR = 0o040555;
  const FILE = 0o100444;
  const attributes = (ino) => {
    const mode = ino === 1 || ino === 2 ? DIR : FILE;
    const size = ino === 3 ? BIG : ino >= 10 ? SMALL : 0;
    return { ino, mode, nlink: 1, uid: 0, gid: 0, rdev: 0, size, mtimeNs: 1_704_067_200_000_000_000n, ctimeNs: 1_704_067_200_000_000_000n };
  };
  const fail = (code) => Promise.reject(Object.assign(new Error(code), { code }));
  const entry = (ino, name) => ({ name: Buffer.from(name), attributes: attributes(ino), timeoutSeconds: 3600, referenced: () => {} });
  const names = Array.from({ length: FILES }, (_, i) => entry(10 + i, fileName(i)));
  const manyListing = [entry(2, '.'), entry(1, '..'), ...names];
  const rootListing = [entry(1, '.'), entry(1, '..'), entry(2, 'many'), entry(3, 'big')];
  const mount = FuseMount.mount(mnt, {
    lookup: async (parent, name) => {
      const text = name.toString();
      let ino;
      if (parent === 1) ino = text === 'many' ? 2 : text === 'big' ? 3 : undefined;
      else if (parent === 2 && /^f\d{5}$/.test(text) && Number(text.slice(1)) < FILES) ino = 10 + Number(text.slice(1));
      if (ino === undefined) return fail('ENOENT');
      return { attributes: attributes(ino), timeoutSeconds: 3600 };
    },
    forget: () => {},
    getattr: async (ino) => ({ attributes: attributes(ino), timeoutSeconds: 3600 }),
    readlink: () => fail('EINVAL'),
    open: async () => ({ handle: 1, keepCache: true }),
    read: async (ino, _handle, offset, size) => {
      const total = ino === 3 ? BIG : SMALL;
      return ZEROS.subarray(0, Math.max(0, Math.min(size, total - offset)));
    },
    release: () => {},
    readdir: async (ino) => (ino === 1 ? rootListing : manyListing),
    getxattr: () => fail('ENODATA'),
    listxattr: async () => [],
  });
  process.once('SIGINT', () => void mount.unmount());
  await mount.closed;
}

/** The same file system, served by @cocalc/fuse-native (path API). */
async function serveFuseNative(mnt, dir) {
  const Fuse = createRequire(join(dir, 'package.json'))('@cocalc/fuse-native');
  const stat = (mode, size) => ({ mtime: NOW, atime: NOW, ctime: NOW, nlink: 1, size, mode, uid: 0, gid: 0 });
  const names = Array.from({ length: FILES }, (_, i) => fileName(i));
  const ops = {
    readdir: (path, cb) => (path === '/' ? cb(0, ['many', 'big']) : path === '/many' ? cb(0, names) : cb(Fuse.ENOENT)),
    getattr: (path, cb) => {
      if (path === '/' || path === '/many') return cb(0, stat(0o040555, 0));
      if (path === '/big') return cb(0, stat(0o100444, BIG));
      if (/^\/many\/f\d{5}$/.test(path) && Number(path.slice(7)) < FILES) return cb(0, stat(0o100444, SMALL));
      return cb(Fuse.ENOENT);
    },
    open: (_path, _flags, cb) => cb(0, 1),
    release: (_path, _fd, cb) => cb(0),
    read: (path, _fd, buf, len, pos, cb) => {
      const total = path === '/big' ? BIG : SMALL;
      const n = Math.max(0, Math.min(len, total - pos));
      buf.fill(0, 0, n);
      cb(n);
    },
  };
  const fuse = new Fuse(mnt, ops, { kernelCache: true, entryTimeout: 3600, attrTimeout: 3600 });
  await new Promise((resolve, reject) => fuse.mount((error) => (error ? reject(error) : resolve())));
  await new Promise((resolve) => process.once('SIGINT', () => fuse.unmount(() => resolve())));
}

function timed(script) {
  const start = process.hrtime.bigint();
  const out = execFileSync('bash', ['-o', 'pipefail', '-c', script], { maxBuffer: 1 << 26 }).toString().trim();
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, out };
}

async function drive() {
  const fuseNativeDir = value('--fuse-native-dir');
  if (!fuseNativeDir) throw new Error('pass --fuse-native-dir DIR (a folder where @cocalc/fuse-native is installed)');
  const reps = Math.max(1, Number(value('--reps') ?? 3));
  const work = `/tmp/bh-bench-fuse-${process.pid}`;
  const results = { bh: { find: [], tar: [], dd: [] }, 'fuse-native': { find: [], tar: [], dd: [] } };
  for (let rep = 0; rep < reps; rep++) {
    for (const binding of rep % 2 === 0 ? ['bh', 'fuse-native'] : ['fuse-native', 'bh']) {
      const mnt = join(work, binding);
      mkdirSync(mnt, { recursive: true });
      const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve', binding, mnt, '--fuse-native-dir', fuseNativeDir], { stdio: 'inherit' });
      while (spawnSync('ls', [join(mnt, 'many', fileName(0))], { stdio: 'ignore' }).status !== 0) await sleep(50);
      try {
        const find = timed(`find ${mnt}/ -type f | wc -l`);
        const tar = timed(`tar cf - ${mnt}/many/. 2>/dev/null | wc -c`);
        const dd = timed(`dd if=${mnt}/big of=/dev/null bs=1M 2>&1 | tail -1`);
        if (Number(find.out) !== FILES + 1) throw new Error(`${binding}: find saw ${find.out} files`);
        results[binding].find.push(find.seconds);
        results[binding].tar.push(tar.seconds);
        results[binding].dd.push(1024 / dd.seconds);
        process.stderr.write(`rep ${rep + 1} ${binding}: find ${find.seconds.toFixed(2)} s, tar ${tar.seconds.toFixed(2)} s, dd ${(1024 / dd.seconds).toFixed(0)} MiB/s\n`);
      } finally {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGINT');
        await Promise.race([exited, sleep(10_000)]);
        if (readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} `)) spawnSync('fusermount3', ['-u', '-z', mnt]);
      }
    }
  }
  rmSync(work, { recursive: true, force: true });
  console.log(`FUSE bindings, synthetic file system (${FILES} files of 1 KiB, one 1 GiB file), ${reps} repetitions, medians\n`);
  console.log('| measurement | bh (libfuse3, own binding) | @cocalc/fuse-native 2.4 (libfuse 2) |');
  console.log('| --- | --- | --- |');
  const row = (label, key, unit, digits) => console.log(`| ${label.replaceAll('|', '\\|')} | ${median(results.bh[key]).toFixed(digits)} ${unit} | ${median(results['fuse-native'][key]).toFixed(digits)} ${unit} |`);
  row('find MNT -type f | wc -l', 'find', 's', 2);
  row('tar cf - MNT/many/. | wc -c', 'tar', 's', 2);
  row('dd if=MNT/big bs=1M', 'dd', 'MiB/s', 0);
}

if (argv[0] === '--serve') {
  const [, binding, mnt] = argv;
  await (binding === 'bh' ? serveBh(mnt) : serveFuseNative(mnt, value('--fuse-native-dir')));
} else {
  await drive();
}
