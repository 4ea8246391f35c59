/**
 * Compares two directory trees on the FILE SYSTEM (lstat, bytes, xattrs), never through bh's own
 * records: round-trip tests use it to prove that what was restored equals what was backed up.
 *
 * Names are handled as raw bytes (readdir with encoding 'buffer'), so non-UTF-8 names compare
 * exactly; symlinks are never followed (lstat, readlink, l*xattr).
 */
import { createReadStream, type BigIntStats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { getXattr, listXattrs } from '../../src/fsx/index.js';

export interface CompareOptions {
  /** Do not compare the mtime of the two roots themselves (everything below is still compared). */
  ignoreRootMtime?: boolean;
  /** Xattr namespace prefix to compare; default 'user.'. */
  xattrPrefix?: string;
  /**
   * Which entries of `source` (by path relative to it, as bytes) the restored tree must have;
   * default all. An entry left out leaves out all below it.
   */
  include?: (relative: Buffer) => boolean;
}

interface Side {
  root: Buffer;
  /** device:inode → relative paths (display form) of every non-directory sharing that inode. */
  inodes: Map<string, string[]>;
  /** relative path (display form) → device:inode, for non-directories. */
  inodeOf: Map<string, string>;
}

const SLASH = Buffer.from('/');

/** A printable form of a path: valid UTF-8 as is, other bytes as \xNN. */
export function showPath(bytes: Buffer): string {
  if (Buffer.from(bytes.toString('utf8'), 'utf8').equals(bytes)) return JSON.stringify(bytes.toString('utf8'));
  let out = '';
  for (const b of bytes) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return `"${out}"`;
}

function typeOf(st: BigIntStats): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  if (st.isSocket()) return 'socket';
  return 'unknown';
}

async function hashFile(path: Buffer): Promise<string> {
  const hash = createHash('sha256');
  for await (const piece of createReadStream(path)) hash.update(piece as Buffer);
  return hash.digest('hex');
}

function xattrsOf(path: Buffer, prefix: string): Map<string, Buffer> | string {
  try {
    const out = new Map<string, Buffer>();
    for (const name of listXattrs(path).filter((n) => n.startsWith(prefix)).sort()) out.set(name, getXattr(path, name));
    return out;
  } catch (error) {
    return `cannot read xattrs: ${(error as Error).message}`;
  }
}

function join(dir: Buffer, name: Buffer): Buffer {
  return dir.length === 0 ? name : Buffer.concat([dir, SLASH, name]);
}

function abs(side: Side, rel: Buffer): Buffer {
  return rel.length === 0 ? side.root : Buffer.concat([side.root, SLASH, rel]);
}

/**
 * Differences between `source` and `restored`, one human-readable line each; empty when the trees
 * are equal in: the set of names (bytes), type, mode & 0o7777, uid, gid, size (regular files),
 * mtime (exact ns), content (SHA-256 of the bytes), symlink target (bytes), rdev (devices),
 * xattrs under `xattrPrefix` (names and values), and hardlink structure (entries sharing an inode
 * on one side share one on the other, and only those).
 */
export async function compareTrees(source: string | Buffer, restored: string | Buffer, opts: CompareOptions = {}): Promise<string[]> {
  const prefix = opts.xattrPrefix ?? 'user.';
  const a: Side = { root: Buffer.from(source), inodes: new Map(), inodeOf: new Map() };
  const b: Side = { root: Buffer.from(restored), inodes: new Map(), inodeOf: new Map() };
  const diffs: string[] = [];

  const note = (side: Side, rel: string, st: BigIntStats): void => {
    if (st.isDirectory()) return;
    const key = `${st.dev}:${st.ino}`;
    side.inodeOf.set(rel, key);
    const list = side.inodes.get(key) ?? [];
    list.push(rel);
    side.inodes.set(key, list);
  };

  const visit = async (rel: Buffer): Promise<void> => {
    const shown = rel.length === 0 ? '"." (root)' : showPath(rel);
    const pa = abs(a, rel);
    const pb = abs(b, rel);
    const [sa, sb] = await Promise.all([lstat(pa, { bigint: true }), lstat(pb, { bigint: true })]);
    note(a, shown, sa);
    note(b, shown, sb);
    const ta = typeOf(sa);
    const tb = typeOf(sb);
    if (ta !== tb) {
      diffs.push(`${shown}: type ${ta} != ${tb}`);
      return;
    }
    const differ = (what: string, x: unknown, y: unknown): void => {
      if (x !== y) diffs.push(`${shown}: ${what} ${String(x)} != ${String(y)}`);
    };
    differ('mode', '0' + (Number(sa.mode) & 0o7777).toString(8), '0' + (Number(sb.mode) & 0o7777).toString(8));
    differ('uid', sa.uid, sb.uid);
    differ('gid', sa.gid, sb.gid);
    if (!(rel.length === 0 && opts.ignoreRootMtime)) differ('mtimeNs', sa.mtimeNs, sb.mtimeNs);

    const xa = xattrsOf(pa, prefix);
    const xb = xattrsOf(pb, prefix);
    if (typeof xa === 'string' || typeof xb === 'string') {
      if (xa !== xb) diffs.push(`${shown}: xattrs: ${typeof xa === 'string' ? xa : 'readable'} / ${typeof xb === 'string' ? xb : 'readable'}`);
    } else {
      differ('xattr names', [...xa.keys()].join(','), [...xb.keys()].join(','));
      for (const [name, value] of xa) {
        const other = xb.get(name);
        if (other && !other.equals(value)) diffs.push(`${shown}: xattr ${name} value ${value.toString('hex')} != ${other.toString('hex')}`);
      }
    }

    switch (ta) {
      case 'file':
        differ('size', sa.size, sb.size);
        if (sa.size === sb.size) {
          const [ha, hb] = await Promise.all([hashFile(pa), hashFile(pb)]);
          if (ha !== hb) diffs.push(`${shown}: content differs (sha256 ${ha.slice(0, 16)}… != ${hb.slice(0, 16)}…)`);
        }
        break;
      case 'symlink': {
        const [la, lb] = await Promise.all([readlink(pa, { encoding: 'buffer' }), readlink(pb, { encoding: 'buffer' })]);
        if (!la.equals(lb)) diffs.push(`${shown}: symlink target ${showPath(la)} != ${showPath(lb)}`);
        break;
      }
      case 'chardev':
      case 'blockdev':
        differ('rdev', sa.rdev, sb.rdev);
        break;
      case 'dir': {
        const [all, nb] = await Promise.all([readdir(pa, { encoding: 'buffer' }), readdir(pb, { encoding: 'buffer' })]);
        const na = opts.include ? all.filter((n) => opts.include!(join(rel, n))) : all;
        const setB = new Set(nb.map((n) => n.toString('hex')));
        const setA = new Set(na.map((n) => n.toString('hex')));
        for (const n of na) if (!setB.has(n.toString('hex'))) diffs.push(`${showPath(join(rel, n))}: missing in restored tree`);
        for (const n of nb) if (!setA.has(n.toString('hex'))) diffs.push(`${showPath(join(rel, n))}: extra in restored tree`);
        for (const n of na.sort(Buffer.compare)) if (setB.has(n.toString('hex'))) await visit(join(rel, n));
        break;
      }
      default:
        break;
    }
  };

  for (const side of [a, b]) {
    const st = await lstat(side.root).catch((error: Error) => error);
    if (st instanceof Error) return [`${showPath(side.root)}: ${st.message}`];
  }
  await visit(Buffer.alloc(0));

  // Hardlink structure: for every entry seen on both sides, the names sharing its inode must match.
  for (const [rel, keyA] of a.inodeOf) {
    const keyB = b.inodeOf.get(rel);
    if (keyB === undefined) continue;
    const groupA = a.inodes.get(keyA)!.filter((r) => b.inodeOf.has(r)).sort();
    const groupB = b.inodes.get(keyB)!.filter((r) => a.inodeOf.has(r)).sort();
    if (groupA.join('\n') !== groupB.join('\n')) {
      diffs.push(`${rel}: hardlinks differ: shares an inode with [${groupA.join(', ')}] in source but [${groupB.join(', ')}] in restored tree`);
    }
  }
  return diffs;
}

/** Every entry below `root` (root itself excluded), as lstat results keyed by display path. */
export async function walkTree(root: string | Buffer): Promise<Map<string, BigIntStats>> {
  const out = new Map<string, BigIntStats>();
  const base = Buffer.from(root);
  const visit = async (rel: Buffer): Promise<void> => {
    const dir = rel.length === 0 ? base : Buffer.concat([base, SLASH, rel]);
    for (const name of (await readdir(dir, { encoding: 'buffer' })).sort(Buffer.compare)) {
      const childRel = join(rel, name);
      const st = await lstat(Buffer.concat([base, SLASH, childRel]), { bigint: true });
      out.set(showPath(childRel), st);
      if (st.isDirectory()) await visit(childRel);
    }
  };
  await visit(Buffer.alloc(0));
  return out;
}
