/**
 * A read-only FUSE file system served by JavaScript handlers, on bh's own libfuse3 binding
 * (native/bhfuse.c, the separate addon bhfuse.node, so that commands other than `bh mount` load
 * without libfuse3).
 *
 * The kernel's requests are read by libfuse on a thread of its own and reach the handlers here,
 * on the main thread, as they come; each handler answers when its promise settles, so requests
 * overlap (concurrent readers, readahead) and the event loop never blocks. A handler that throws
 * an error with an errno `code` ('ENOENT', 'ENODATA', ...) answers with that errno; any other
 * error answers EIO.
 *
 * This is the inode-level API: the handlers own the numbering (1 is the root), and the kernel
 * tells, through forget(), when it no longer holds a number it was given by lookup().
 *
 * Never touch the mount synchronously from the process that serves it: a synchronous fs call
 * blocks the very thread that would answer it (a deadlock). Read it from another process.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/** What an inode looks like to stat(2). Times are nanoseconds since the epoch. */
export interface FuseAttributes {
  ino: number;
  /** File type and permission bits, as st_mode. */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export interface FuseDirectoryEntry {
  name: Buffer;
  /** What stat shows of it (attributes.ino is its number, attributes.mode its type). */
  attributes: FuseAttributes;
  /** Seconds the kernel may keep the entry and its attributes (readdirplus). */
  timeoutSeconds: number;
  /**
   * Called when the entry went to the kernel with its attributes (readdirplus): it now holds
   * one more reference to the number, as after a lookup. Not for "." and "..".
   */
  referenced(): void;
}

export interface FuseHandlers {
  /** The entry `name` of directory `parent`; its ino now has one more kernel reference. */
  lookup(parent: number, name: Buffer): Promise<{ attributes: FuseAttributes; timeoutSeconds: number }>;
  /** The kernel dropped `count` references to `ino`. */
  forget(ino: number, count: number): void;
  getattr(ino: number): Promise<{ attributes: FuseAttributes; timeoutSeconds: number }>;
  readlink(ino: number): Promise<Buffer>;
  /** Opens a file for reading; returns the handle later reads and release() get. */
  open(ino: number): Promise<{ handle: number; keepCache: boolean }>;
  read(ino: number, handle: number, offset: number, size: number): Promise<Buffer>;
  release(ino: number, handle: number): void;
  /** The directory's entries ("." and ".." first), all of them: the binding pages them. */
  readdir(ino: number): Promise<readonly FuseDirectoryEntry[]>;
  getxattr(ino: number, name: string): Promise<Buffer>;
  listxattr(ino: number): Promise<readonly string[]>;
}

export interface FuseMountOptions {
  /** Let other users than the one mounting see the files (needs user_allow_other in /etc/fuse.conf for non-root). */
  allowOther?: boolean;
  /** Mount over a directory that is not empty. */
  allowNonEmpty?: boolean;
  /** Largest read the kernel asks for at once, and its readahead (bytes). */
  maxRead?: number;
  /** The file system's name in /proc/mounts. */
  fsName?: string;
}

/** The raw addon (native/bhfuse.c). */
interface BhfuseAddon {
  mount(mountpoint: string, options: string, maxRead: number, handler: (op: number, req: Request | undefined, ino: number, a: number, b: number, c: number, bytes: Buffer | undefined) => void): MountHandle;
  destroy(handle: MountHandle): void;
  replyErr(req: Request, errno: number): void;
  replyEntry(req: Request, attributes: Float64Array, entryTimeout: number, attrTimeout: number): void;
  replyAttr(req: Request, attributes: Float64Array, timeout: number): void;
  replyOpen(req: Request, handle: number, keepCache: boolean): void;
  replyBuffer(req: Request, bytes: Buffer): void;
  replyReadlink(req: Request, target: Buffer): void;
  replyXattrSize(req: Request, size: number): void;
  replyDirectory(req: Request, size: number, firstOffset: number, inos: Float64Array, modes: Uint32Array, names: Buffer[]): void;
  replyDirectoryPlus(req: Request, size: number, firstOffset: number, attributes: Float64Array, names: Buffer[], timeouts: Float64Array): number;
}

declare const requestBrand: unique symbol;
/** A kernel request waiting for its one answer (opaque). */
type Request = { readonly [requestBrand]: true };
declare const handleBrand: unique symbol;
type MountHandle = { readonly [handleBrand]: true };

/** Operation codes of native/bhfuse.c. */
const Op = { exited: 0, lookup: 1, forget: 2, getattr: 3, readlink: 4, open: 5, read: 6, release: 7, readdir: 8, getxattr: 9, listxattr: 10, readdirplus: 11 } as const;

/** Field order of the attribute arrays native/bhfuse.c reads. */
const ATTRIBUTE_FIELDS = 14;

export const FUSE_ADDON_PATH: string = fileURLToPath(new URL('../../native/build/Release/bhfuse.node', import.meta.url));

let loaded: BhfuseAddon | undefined;

function addon(): BhfuseAddon {
  if (loaded) return loaded;
  if (!existsSync(FUSE_ADDON_PATH)) {
    throw new Error(`bh's FUSE addon is not built (${FUSE_ADDON_PATH}): install Debian's libfuse3-dev and fuse3, then run \`npm install\` (or \`npm run install\`)`);
  }
  try {
    loaded = createRequire(import.meta.url)(FUSE_ADDON_PATH) as BhfuseAddon;
  } catch (error) {
    throw new Error(`bh's FUSE addon at ${FUSE_ADDON_PATH} does not load (${(error as Error).message}): install Debian's fuse3 (libfuse3) and rebuild it with \`npm run install\``, { cause: error });
  }
  return loaded;
}

const ERRNO = osConstants.errno as Record<string, number>;

/** The errno a handler's error answers with. */
function errnoOf(error: unknown): number {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return (code !== undefined && ERRNO[code]) || ERRNO['EIO']!;
}

const NS_PER_SECOND = 1_000_000_000n;

function isDotOrDotDot(name: Buffer): boolean {
  return name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e));
}

function fillAttributes(into: Float64Array, a: FuseAttributes): Float64Array {
  const mtime = splitTime(a.mtimeNs);
  const ctime = splitTime(a.ctimeNs);
  into[0] = a.ino;
  into[1] = a.mode;
  into[2] = a.nlink;
  into[3] = a.uid;
  into[4] = a.gid;
  into[5] = a.rdev;
  into[6] = a.size;
  into[7] = Math.ceil(a.size / 512);
  into[8] = mtime[0]; // atime: the snapshot keeps none, and mtime is what restic shows too
  into[9] = mtime[1];
  into[10] = mtime[0];
  into[11] = mtime[1];
  into[12] = ctime[0];
  into[13] = ctime[1];
  return into;
}

function splitTime(ns: bigint): [number, number] {
  let seconds = ns / NS_PER_SECOND;
  let fraction = ns % NS_PER_SECOND;
  if (fraction < 0n) {
    fraction += NS_PER_SECOND;
    seconds -= 1n;
  }
  return [Number(seconds), Number(fraction)];
}

const run = promisify(execFile);

const DEFAULT_MAX_READ = 1024 * 1024;

/**
 * Lets the kernel read ahead `bytes` at a time on this mount instead of its default 128 KiB:
 * eight times fewer requests for a sequential reader, each a round trip to JavaScript. Only
 * root may (the knob is /sys/class/bdi/MAJOR:MINOR/read_ahead_kb); anyone else keeps the
 * default. The stat is asynchronous: this process is the one that answers it.
 */
async function raiseReadahead(mountpoint: string, bytes: number): Promise<void> {
  try {
    const dev = (await stat(mountpoint, { bigint: true })).dev;
    const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
    const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
    await writeFile(`/sys/class/bdi/${major}:${minor}/read_ahead_kb`, String(Math.floor(bytes / 1024)));
  } catch {
    // Not root, or no sysfs: the kernel's default stays.
  }
}

/**
 * Unmounts a FUSE mount, ours or a stale one a killed process left: `fusermount3 -u` (which
 * also works for root). `lazy` detaches it even while files in it are open.
 */
export async function unmountFuse(mountpoint: string, lazy = false): Promise<void> {
  try {
    await run('fusermount3', ['-u', ...(lazy ? ['-z'] : []), mountpoint]);
  } catch (error) {
    const failure = error as NodeJS.ErrnoException & { stderr?: string };
    if (failure.code === 'ENOENT') throw new Error(`fusermount3 is not installed (Debian package fuse3)`);
    throw new Error((failure.stderr ?? failure.message).trim() || `fusermount3 -u ${mountpoint} failed`);
  }
}

/** A mounted file system, served until unmount() or an unmount from outside. */
export class FuseMount {
  private readonly attributes = new Float64Array(ATTRIBUTE_FIELDS);
  private unmounting: Promise<void> | undefined;
  /** Resolves when the kernel connection is gone (unmounted by us or from outside). */
  readonly closed: Promise<void>;

  private constructor(
    private readonly fuse: BhfuseAddon,
    readonly mountpoint: string,
    private readonly handlers: FuseHandlers,
    options: FuseMountOptions,
  ) {
    const mountOptions = ['ro', 'default_permissions', `fsname=${(options.fsName ?? 'bh').replace(/[,\\]/g, '_')}`, 'subtype=bh'];
    if (options.allowOther) mountOptions.push('allow_other');
    let closed!: () => void;
    this.closed = new Promise((resolve) => (closed = resolve));
    let handle: MountHandle | undefined;
    const dispatch = (op: number, req: Request | undefined, ino: number, a: number, b: number, c: number, bytes: Buffer | undefined): void => {
      if (op === Op.exited) {
        // The loop thread has ended (or is about to): join it and free the session.
        if (handle) fuse.destroy(handle);
        closed();
        return;
      }
      this.dispatch(op, req, ino, a, b, c, bytes);
    };
    // libfuse refuses a non-empty mountpoint itself only in libfuse 2; libfuse 3 allows it, so the caller checks.
    handle = fuse.mount(mountpoint, mountOptions.join(','), options.maxRead ?? DEFAULT_MAX_READ, dispatch);
  }

  static mount(mountpoint: string, handlers: FuseHandlers, options: FuseMountOptions = {}): FuseMount {
    const mount = new FuseMount(addon(), mountpoint, handlers, options);
    void raiseReadahead(mountpoint, options.maxRead ?? DEFAULT_MAX_READ);
    return mount;
  }

  /**
   * Unmounts and waits until the session has ended. When files in the mount are still in use,
   * the mount is detached (lazily unmounted) instead, and `closed` resolves once the last user
   * let go of it.
   */
  unmount(): Promise<void> {
    this.unmounting ??= (async () => {
      try {
        await unmountFuse(this.mountpoint);
      } catch {
        await unmountFuse(this.mountpoint, true);
      }
    })();
    return this.unmounting;
  }

  private dispatch(op: number, req: Request | undefined, ino: number, a: number, b: number, c: number, bytes: Buffer | undefined): void {
    const fuse = this.fuse;
    const h = this.handlers;
    switch (op) {
      case Op.forget: {
        const pairs = new Float64Array(bytes!.buffer, bytes!.byteOffset, bytes!.length / 8);
        for (let i = 0; i < pairs.length; i += 2) h.forget(pairs[i]!, pairs[i + 1]!);
        return;
      }
      case Op.release:
        h.release(ino, a);
        return;
    }
    if (!req) return;
    const answer = <T>(work: Promise<T>, reply: (value: T) => void): void => {
      work.then(reply, (error: unknown) => fuse.replyErr(req, errnoOf(error)));
    };
    switch (op) {
      case Op.lookup:
        answer(h.lookup(ino, bytes!), (entry) => fuse.replyEntry(req, fillAttributes(this.attributes, entry.attributes), entry.timeoutSeconds, entry.timeoutSeconds));
        return;
      case Op.getattr:
        answer(h.getattr(ino), (entry) => fuse.replyAttr(req, fillAttributes(this.attributes, entry.attributes), entry.timeoutSeconds));
        return;
      case Op.readlink:
        answer(h.readlink(ino), (target) => fuse.replyReadlink(req, target));
        return;
      case Op.open:
        answer(h.open(ino), (opened) => fuse.replyOpen(req, opened.handle, opened.keepCache));
        return;
      case Op.read:
        answer(h.read(ino, c, b, a), (data) => fuse.replyBuffer(req, data));
        return;
      case Op.readdir:
        answer(h.readdir(ino), (entries) => this.replyDirectory(req, entries, a, b));
        return;
      case Op.readdirplus:
        answer(h.readdir(ino), (entries) => this.replyDirectoryPlus(req, entries, a, b));
        return;
      case Op.getxattr:
        answer(h.getxattr(ino, bytes!.toString('utf8')), (value) => this.replyXattr(req, value, a));
        return;
      case Op.listxattr:
        answer(h.listxattr(ino), (names) => this.replyXattr(req, Buffer.from(names.map((name) => `${name}\0`).join(''), 'utf8'), a));
        return;
      default:
        fuse.replyErr(req, ERRNO['ENOSYS']!);
    }
  }

  /** Entries from `offset` on, as many as fit in `size` bytes (the binding counts). */
  private replyDirectory(req: Request, entries: readonly FuseDirectoryEntry[], size: number, offset: number): void {
    // A directory entry takes at least 32 bytes: no more than size / 32 of them can fit.
    const end = Math.min(entries.length, offset + Math.ceil(size / 32));
    const count = Math.max(0, end - offset);
    const inos = new Float64Array(count);
    const modes = new Uint32Array(count);
    const names: Buffer[] = new Array<Buffer>(count);
    for (let i = 0; i < count; i++) {
      const entry = entries[offset + i]!;
      inos[i] = entry.attributes.ino;
      modes[i] = entry.attributes.mode;
      names[i] = entry.name;
    }
    this.fuse.replyDirectory(req, size, offset, inos, modes, names);
  }

  /** readdirplus: as replyDirectory, with attributes; the entries the kernel took are told so. */
  private replyDirectoryPlus(req: Request, entries: readonly FuseDirectoryEntry[], size: number, offset: number): void {
    // An entry with attributes takes at least 128 bytes.
    const end = Math.min(entries.length, offset + Math.ceil(size / 128));
    const count = Math.max(0, end - offset);
    const attributes = new Float64Array(count * ATTRIBUTE_FIELDS);
    const timeouts = new Float64Array(count);
    const names: Buffer[] = new Array<Buffer>(count);
    for (let i = 0; i < count; i++) {
      const entry = entries[offset + i]!;
      fillAttributes(attributes.subarray(i * ATTRIBUTE_FIELDS, (i + 1) * ATTRIBUTE_FIELDS), entry.attributes);
      timeouts[i] = entry.timeoutSeconds;
      names[i] = entry.name;
    }
    const added = this.fuse.replyDirectoryPlus(req, size, offset, attributes, names, timeouts);
    for (let i = 0; i < added; i++) {
      const entry = entries[offset + i]!;
      if (!isDotOrDotDot(entry.name)) entry.referenced();
    }
  }

  /** getxattr/listxattr: the size alone for a probe (size 0), ERANGE when the caller's buffer is too small. */
  private replyXattr(req: Request, value: Buffer, size: number): void {
    if (size === 0) this.fuse.replyXattrSize(req, value.length);
    else if (value.length > size) this.fuse.replyErr(req, ERRNO['ERANGE']!);
    else this.fuse.replyBuffer(req, value);
  }
}
