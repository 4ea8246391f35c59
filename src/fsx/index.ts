/**
 * fsx: filesystem operations Node 20's `fs` cannot do, backed by the tiny
 * N-API addon in native/bhfs.c. A backup tool must restore these exactly:
 *
 * - nanosecond file times, on symlinks too (fs.utimes/lutimes take a double
 *   of seconds, which loses ~200 ns at today's epoch);
 * - extended attributes (Node has no xattr API at all);
 * - FIFOs and device nodes (Node cannot create them);
 * - a whole directory's entries with their lstat in one call (scanDir).
 *
 * Beside them, on plain `fs`: the one way a backup opens a file to read it
 * (openRegularFile), which never blocks on an entry swapped for a FIFO.
 *
 * All functions but scanDir are synchronous: each is a single fast syscall,
 * and an async thread-pool round trip would cost more than the syscall
 * itself. scanDir does a directory's worth of syscalls on the thread pool.
 *
 * Paths may be a string (encoded as UTF-8) or a Buffer (passed to the kernel
 * byte-exact). Use Buffers for names read back with `{ encoding: 'buffer' }`:
 * Linux file names are arbitrary bytes and need not be valid UTF-8.
 *
 * Failures throw an Error shaped like Node's own fs errors
 * (`NodeJS.ErrnoException`): `code` ('ENOENT', 'ENODATA', 'ENOTSUP', ...),
 * `errno` (negative, as Node reports it, e.g. -2), `syscall`, and `path`
 * (always a string; a non-UTF-8 Buffer path is decoded lossily). Invalid
 * arguments throw TypeError/RangeError with Node-style `ERR_*` codes.
 *
 * Linux only.
 */
import { type BigIntStats, closeSync, constants, existsSync, fstatSync, lstatSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { getSystemErrorMap } from 'node:util';

/** A path as the kernel sees it: text (UTF-8 encoded) or raw bytes. */
export type FsxPath = string | Buffer;

/** Shape of the errors thrown for failed syscalls. */
export type FsxError = NodeJS.ErrnoException & {
  code: string;
  errno: number;
  syscall: string;
};

/** The raw addon surface (see native/bhfs.c). Kept private: the wrapper
 * functions below are the typed, validated public API. */
interface BhfsAddon {
  lutimesNs(path: FsxPath, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void;
  llistxattr(path: FsxPath): string[];
  lgetxattr(path: FsxPath, name: string): Buffer;
  lsetxattr(path: FsxPath, name: string, value: Uint8Array): void;
  lremovexattr(path: FsxPath, name: string): void;
  mkfifo(path: FsxPath, mode: number): void;
  mknod(path: FsxPath, mode: number, dev: number | bigint): void;
  scanDir(path: FsxPath): Promise<Buffer>;
}

/**
 * Where the compiled addon lives. The same relative URL is right from
 * src/fsx/ (vitest runs the TypeScript directly) and from dist/fsx/ (after
 * tsc), because both are two levels below the package root.
 */
export const ADDON_PATH: string = fileURLToPath(new URL('../../native/build/Release/bhfs.node', import.meta.url));

/**
 * How to get native modules built, for the errors about missing ones: npm 11 runs a
 * dependency's install script only when `--allow-scripts` names it (README "Installing").
 */
export const NATIVE_BUILD_HINT: string = (() => {
  // The dependencies whose install scripts bh needs are those package.json allows for `npm ci`.
  const manifest = createRequire(import.meta.url)('../../package.json') as { allowScripts?: Record<string, boolean> };
  const names = ['bh', ...Object.keys(manifest.allowScripts ?? {})].join(',');
  return (
    'Its build script did not run: npm 11 runs install scripts only when allowed. Reinstall with ' +
    `\`npm install -g --allow-scripts=${names} bh\` (from a .tgz file, name the file's absolute path ` +
    'instead of `bh` in --allow-scripts), or in a clone run `npm ci`.'
  );
})();

let loaded: BhfsAddon | undefined;

/** Load lazily, so merely importing this module (e.g. from a command that
 * never restores special files) does not fail when the addon is unbuilt. */
function addon(): BhfsAddon {
  if (loaded !== undefined) return loaded;
  if (!existsSync(ADDON_PATH)) {
    throw new Error(`bh's native addon is not built (${ADDON_PATH} is missing). ${NATIVE_BUILD_HINT}`);
  }
  const require = createRequire(import.meta.url);
  try {
    loaded = require(ADDON_PATH) as BhfsAddon;
  } catch (err) {
    // Typically a stale build for another Node ABI/arch: say how to fix it.
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(
      `bh native addon at ${ADDON_PATH} failed to load (${reason}). ` +
        'Rebuild it: `npm rebuild bh` (`npm rebuild` in a clone).',
      { cause: err },
    );
  }
  return loaded;
}

/** Loads the addon now (`bh version` reports on it); throws what to do when it cannot. */
export function loadNativeAddon(): void {
  addon();
}

const NS_PER_SEC = 1_000_000_000n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Split nanoseconds since the epoch into (seconds, nanoseconds) the way
 * `struct timespec` wants them: seconds rounded toward -infinity and
 * nanoseconds always in 0..999_999_999. BigInt `/` and `%` truncate toward
 * zero, so pre-1970 times need a fix-up (-1 ns is -1 s + 999_999_999 ns).
 */
export function splitNs(ns: bigint): [sec: number, nsec: number] {
  if (typeof ns !== 'bigint') {
    throw new TypeError(`expected a bigint of nanoseconds, got ${typeof ns}`);
  }
  let sec = ns / NS_PER_SEC;
  let nsec = ns % NS_PER_SEC;
  if (nsec < 0n) {
    nsec += NS_PER_SEC;
    sec -= 1n;
  }
  // Seconds cross into C as a JS number; refuse values it cannot hold exactly
  // (±285 million years) rather than restore a rounded time.
  if (sec > MAX_SAFE || sec < -MAX_SAFE) {
    throw new RangeError(`time ${ns} ns is out of range`);
  }
  return [Number(sec), Number(nsec)];
}

/**
 * Set access and modification times with full nanosecond precision, without
 * following a final symlink (so it sets a symlink's own times). Takes the
 * same values `fs.lstatSync(p, { bigint: true })` reports as atimeNs/mtimeNs.
 */
export function lutimesNs(path: FsxPath, atimeNs: bigint, mtimeNs: bigint): void {
  const [aSec, aNsec] = splitNs(atimeNs);
  const [mSec, mNsec] = splitNs(mtimeNs);
  addon().lutimesNs(path, aSec, aNsec, mSec, mNsec);
}

/** Names of the extended attributes of `path` itself (symlinks not
 * followed), e.g. ['user.foo', 'security.selinux']. Only the namespaces the
 * caller may read are listed (trusted.* needs CAP_SYS_ADMIN). */
export function listXattrs(path: FsxPath): string[] {
  return addon().llistxattr(path);
}

/** Value of one extended attribute (symlinks not followed). Throws with
 * code 'ENODATA' if the attribute does not exist. */
export function getXattr(path: FsxPath, name: string): Buffer {
  return addon().lgetxattr(path, name);
}

/** Create or replace one extended attribute (symlinks not followed). An
 * empty value is legal and distinct from "absent". Throws 'ENOTSUP' where
 * the filesystem or namespace does not support it (e.g. user.* on symlinks). */
export function setXattr(path: FsxPath, name: string, value: Buffer): void {
  addon().lsetxattr(path, name, value);
}

/** Remove one extended attribute (symlinks not followed). Throws 'ENODATA'
 * if it does not exist. */
export function removeXattr(path: FsxPath, name: string): void {
  addon().lremovexattr(path, name);
}

const S_IFMT = 0o170000;
const S_IFIFO = 0o010000;

/**
 * Create a FIFO. `mode` is the permission bits; a full `lstat().mode` of a
 * FIFO is accepted too (its S_IFIFO type bits are dropped) so restore code
 * can pass the recorded mode straight through. As with mkfifo(3) the process
 * umask applies, so chmod afterwards when exact permissions matter.
 */
export function mkfifo(path: FsxPath, mode: number): void {
  // Only strip *FIFO* type bits: any other type here is a caller bug, and the
  // addon rejects it with a RangeError instead of silently making a FIFO.
  const perm = (mode & S_IFMT) === S_IFIFO ? mode & ~S_IFMT : mode;
  addon().mkfifo(path, perm);
}

/**
 * Create a filesystem node (character/block device, FIFO, socket or regular
 * file). `mode` must include the type bits (S_IFCHR, S_IFBLK, ...), exactly
 * like `lstat().mode`; `rdev` is the kernel-encoded device number, exactly
 * like `lstat().rdev` (number or bigint), or build it with {@link makedev}.
 * The umask applies to the permission bits. Device nodes need CAP_MKNOD.
 */
export function mknod(path: FsxPath, mode: number, rdev: number | bigint): void {
  addon().mknod(path, mode, rdev);
}

/**
 * Encode (major, minor) into a dev_t the way glibc's makedev(3) does on
 * Linux, for callers that only have the two numbers (e.g. from a tar-style
 * archive). Values from `lstat().rdev` are already encoded: don't re-encode.
 */
export function makedev(major: number, minor: number): bigint {
  if (!Number.isInteger(major) || major < 0 || major > 0xffffffff) {
    throw new RangeError(`invalid device major ${major}`);
  }
  if (!Number.isInteger(minor) || minor < 0 || minor > 0xffffffff) {
    throw new RangeError(`invalid device minor ${minor}`);
  }
  const maj = BigInt(major);
  const min = BigInt(minor);
  return (
    ((maj & 0x00000fffn) << 8n) |
    ((maj & 0xfffff000n) << 32n) |
    (min & 0x000000ffn) |
    ((min & 0xffffff00n) << 12n)
  );
}

/** What lstat says of one entry: the fields a backup records. */
export interface EntryStat {
  /** st_mode, type bits included. */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  ino: bigint;
  dev: bigint;
  rdev: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  /** Whether the entry has extended attributes; undefined when the probe failed (ask listXattrs). */
  hasXattrs?: boolean | undefined;
}

/** The kind of an entry, from the type bits of its mode. */
export type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'chardev' | 'blockdev' | 'socket';

const ENTRY_TYPES_BY_MODE = new Map<number, EntryType>([
  [constants.S_IFREG, 'file'],
  [constants.S_IFDIR, 'dir'],
  [constants.S_IFLNK, 'symlink'],
  [constants.S_IFIFO, 'fifo'],
  [constants.S_IFCHR, 'chardev'],
  [constants.S_IFBLK, 'blockdev'],
]);

export function entryType(mode: number): EntryType {
  return ENTRY_TYPES_BY_MODE.get(mode & constants.S_IFMT) ?? 'socket';
}

/** The fields of an lstat, stat or fstat (taken with `{ bigint: true }`) that a backup records; xattrs not probed. */
export function entryStatOf(st: BigIntStats): EntryStat {
  return { mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), nlink: Number(st.nlink), size: Number(st.size), ino: st.ino, dev: st.dev, rdev: st.rdev, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
}

export interface ScannedEntry {
  name: Buffer;
  /** The entry's lstat, or why it failed (an fs-style error, syscall 'lstat'). */
  stat: EntryStat | FsxError;
}

// Record layout of the addon's scanDir buffer (native/bhfs.c, "scanDir").
const SCAN_HEADER = 8;
const SCAN_RECORD = 112;
const SCAN_TIMES_FIT = 1;
const NS_PER_SEC_N = 1_000_000_000n;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

/**
 * The entries of a directory (without "." and ".."), sorted by name bytes, each with its lstat,
 * read on the thread pool. The directory is opened with O_NOFOLLOW: a directory swapped for a
 * symlink fails (ELOOP or ENOTDIR) instead of being followed. Fails like fs.readdir (syscall
 * 'scandir') when the directory cannot be read; an entry whose lstat fails carries its error.
 */
export async function scanDir(path: Buffer): Promise<ScannedEntry[]> {
  const buf = await addon().scanDir(path);
  // DataView's 64-bit reads are builtins; Buffer's readBigInt64LE composes BigInts in JS.
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const count = view.getUint32(0, true);
  const names = SCAN_HEADER + count * SCAN_RECORD;
  const entries = new Array<ScannedEntry>(count);
  for (let i = 0; i < count; i++) {
    const r = SCAN_HEADER + i * SCAN_RECORD;
    const from = names + view.getUint32(r, true);
    // A copy, so a retained name does not keep the whole directory's buffer alive.
    const name = Buffer.from(buf.subarray(from, from + view.getUint32(r + 4, true)));
    const errno = view.getInt32(r + 8, true);
    if (errno !== 0) {
      entries[i] = { name, stat: lstatError(errno, Buffer.concat(path.at(-1) === 0x2f ? [path, name] : [path, Buffer.from('/'), name])) };
      continue;
    }
    const mode = view.getUint32(r + 12, true);
    const type = mode & S_IFMT;
    const timesFit = (view.getUint32(r + 108, true) & SCAN_TIMES_FIT) !== 0;
    const xattrs = view.getInt32(r + 104, true);
    entries[i] = {
      name,
      stat: {
        mode,
        uid: view.getUint32(r + 16, true),
        gid: view.getUint32(r + 20, true),
        nlink: view.getFloat64(r + 24, true),
        size: view.getFloat64(r + 32, true),
        ino: view.getBigUint64(r + 40, true),
        dev: view.getBigUint64(r + 48, true),
        rdev: type === S_IFCHR || type === S_IFBLK ? view.getBigUint64(r + 56, true) : 0n,
        mtimeNs: timesFit ? view.getBigInt64(r + 64, true) : view.getBigInt64(r + 80, true) * NS_PER_SEC_N + BigInt(view.getUint32(r + 96, true)),
        ctimeNs: timesFit ? view.getBigInt64(r + 72, true) : view.getBigInt64(r + 88, true) * NS_PER_SEC_N + BigInt(view.getUint32(r + 100, true)),
        hasXattrs: xattrs < 0 ? undefined : xattrs === 1,
      },
    };
  }
  return entries;
}

/** The error fs.lstatSync would throw for `errno` (positive) on `path`. */
function lstatError(errno: number, path: Buffer): FsxError {
  const [code, description] = getSystemErrorMap().get(-errno) ?? [`E${errno}`, 'unknown error'];
  const shown = path.toString();
  const error = new Error(`${code}: ${description}, lstat '${shown}'`) as FsxError;
  return Object.assign(error, { code, errno: -errno, syscall: 'lstat', path: shown });
}

/** What a file that is no longer a regular file is now, in words. */
const TYPE_WORDS: Record<EntryType, string> = { file: 'regular file', dir: 'directory', symlink: 'symlink', fifo: 'FIFO', chardev: 'character device', blockdev: 'block device', socket: 'socket' };

/** A path that was a regular file when it was scanned and is something else when it is opened. */
export class ChangedTypeError extends Error {
  constructor(now: EntryType) {
    super(`changed type during the backup: it is now a ${TYPE_WORDS[now]}, not a regular file, and is left out`);
    this.name = 'ChangedTypeError';
  }
}

/** A regular file open for reading, and the fstat of what was opened. */
export interface OpenedFile {
  fd: number;
  stat: EntryStat;
}

/**
 * How long an open refused because another process holds a lease on the file is retried:
 * longer than the kernel waits before it breaks the lease itself (/proc/sys/fs/lease-break-time,
 * 45 s by default).
 */
const LEASE_WAIT_MS = 60_000;
const LEASE_POLL_MS = 50;

/**
 * Opens `path` for reading if it is a regular file, and never waits on anything else:
 *
 * - O_NOFOLLOW: a symlink is not followed (refused as ChangedTypeError('symlink'));
 * - O_NONBLOCK: opening a FIFO does not wait for a writer (nor a serial device for its carrier);
 * - fstat of the descriptor: anything but a regular file is closed and refused
 *   (ChangedTypeError), so a path swapped since it was scanned is never read as something else;
 * - O_NOATIME when asked, and without it where the kernel refuses it (EPERM: not our file).
 *
 * O_NONBLOCK stays set: reads of regular files ignore it (Linux passes only O_APPEND, O_DIRECT
 * and the sync flags of the open file on to reads, see iocb_flags(); waiting is skipped only
 * for RWF_NOWAIT and io_uring). Its one effect on a regular file is at open: where another
 * process holds a lease (Samba oplocks, NFS delegations) the open fails EAGAIN instead of
 * waiting for the lease to be broken; it is retried for as long as the kernel takes to break it.
 */
export function openRegularFile(path: Buffer, options: { noAtime: boolean }): OpenedFile {
  const flags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  const deadline = Date.now() + LEASE_WAIT_MS;
  let noAtime = options.noAtime;
  for (;;) {
    let fd: number;
    try {
      fd = openSync(path, noAtime ? flags | constants.O_NOATIME : flags);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EPERM' && noAtime) {
        noAtime = false;
        continue;
      }
      if (code === 'EAGAIN' && Date.now() < deadline) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, LEASE_POLL_MS);
        continue;
      }
      // O_NOFOLLOW refuses a symlink with ELOOP, which would read as a loop of links.
      if (code === 'ELOOP' && isSymlink(path)) throw new ChangedTypeError('symlink');
      throw error;
    }
    try {
      const stat = entryStatOf(fstatSync(fd, { bigint: true }));
      const type = entryType(stat.mode);
      if (type !== 'file') throw new ChangedTypeError(type);
      return { fd, stat };
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }
}

function isSymlink(path: Buffer): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
