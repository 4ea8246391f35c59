/**
 * The file-system side of a restore: directories made and opened up, room made for an entry as
 * the overwrite policy says, entries created, metadata put on. Every call is synchronous (a
 * single fast syscall; a thread-pool round trip costs more), and nothing already inside the
 * target is followed: files are created with O_EXCL|O_NOFOLLOW, a symlink or file where a
 * directory must go is never descended into, an existing symlink is replaced.
 *
 * Metadata goes on in the order the kernel needs: owner (root only), then xattrs (chown would
 * clear security.capability; a read-only mode would forbid user.* xattrs), then mode (chown
 * clears setuid/setgid), and times last.
 */
import {
  constants as fsConstants,
  chmodSync,
  fchmodSync,
  fchownSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { lutimesNs, mkfifo, mknod, setXattr } from '../../fsx/index.js';
import type { TreeNode } from '../tree.js';
import type { OverwritePolicy, RestoreState } from './state.js';

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const IS_ROOT = process.getuid?.() === 0;
const CREATE_FLAGS = fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

export function isDirectory(path: Buffer): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
  } catch {
    return false;
  }
}

/** A real directory at `path` (never a symlink to one): existing, or made; writable while it is filled. */
export function makeDir(path: Buffer, overwrite: OverwritePolicy): void {
  try {
    mkdirSync(path, { mode: 0o700 });
    return;
  } catch (error) {
    if (errorCode(error) !== 'EEXIST') throw error;
  }
  let st;
  try {
    st = lstatSync(path, { throwIfNoEntry: false });
  } catch {
    st = undefined;
  }
  if (st?.isDirectory()) {
    // A read-only directory (say, left by an earlier restore of a 0o555 one) cannot be filled
    // without overriding permissions: open it up; its recorded mode goes back on afterwards,
    // with the rest of its metadata. Not ours to chmod: left as it is.
    if ((st.mode & 0o300) !== 0o300) {
      try {
        chmodSync(path, (st.mode & 0o7777) | 0o700);
      } catch {
        // Not ours to chmod: filling it will fail visibly if it must.
      }
    }
    return;
  }
  if (st) {
    if (overwrite === 'never') {
      throw new Error(`exists and is not a directory: kept (--overwrite never), so the snapshot's directory is not restored (move the entry away, or restore with --overwrite always)`);
    }
    unlinkSync(path);
  }
  mkdirSync(path, { mode: 0o700 });
}

/**
 * Makes room for the snapshot's non-directory `node` at `dest` per the overwrite policy:
 * 'cleared' (nothing there any more), or what is there is kept and counted as skipped:
 * 'unchanged' when it is the snapshot's file (so more names of its inode are linked to it
 * rather than restored as copies), else 'kept'. A directory there is kept with an error
 * unless it may go (README "What restore guarantees"): an empty one is removed, a full one only
 * with overwriteDirs.
 */
export function clearExisting(node: TreeNode, dest: Buffer, state: RestoreState): 'cleared' | 'kept' | 'unchanged' {
  const { overwrite, overwriteDirs } = state.options;
  let existing;
  try {
    existing = lstatSync(dest, { bigint: true, throwIfNoEntry: false });
  } catch {
    existing = undefined;
  }
  if (!existing) return 'cleared';
  const what = describeType(node);
  if (existing.isDirectory()) {
    if (overwrite === 'never') {
      throw new Error(`exists and is a directory: kept (--overwrite never), so the snapshot's ${what} is not restored (move the directory away, or restore with --overwrite always)`);
    }
    if (overwriteDirs) rmSync(dest, { recursive: true });
    else removeEmptyDir(dest, what);
    return 'cleared';
  }
  const unchanged = node.type === 'file' && existing.isFile() && Number(existing.size) === node.size && existing.mtimeNs === node.mtimeNs;
  if (overwrite === 'never' || (overwrite === 'if-changed' && unchanged)) {
    state.result.skipped++;
    return unchanged ? 'unchanged' : 'kept';
  }
  unlinkSync(dest);
  return 'cleared';
}

/** Removes the directory at `dest` if it is empty (rmdir checks, so nothing put in it meanwhile is lost). */
function removeEmptyDir(dest: Buffer, what: string): void {
  try {
    rmdirSync(dest);
  } catch (error) {
    const code = errorCode(error);
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
    throw new Error(`not replaced: directory is not empty, and the snapshot has a ${what} here (move the directory away, or restore with --overwrite-dirs to delete it with everything in it)`);
  }
}

/** Creates a new regular file, writable by us only until its metadata goes on; EEXIST when the name is taken. */
export function createFile(dest: Buffer): number {
  return openSync(dest, CREATE_FLAGS, 0o600);
}

/** Creates a symlink, FIFO or device node (EEXIST when the name is taken), with its metadata. */
export function createSpecial(node: TreeNode, dest: Buffer): void {
  switch (node.type) {
    case 'symlink':
      symlinkSync(node.linkTarget!, dest);
      break;
    case 'fifo':
      mkfifo(dest, 0o600);
      break;
    case 'chardev':
    case 'blockdev':
      mknod(dest, (node.type === 'chardev' ? S_IFCHR : S_IFBLK) | 0o600, node.rdev ?? 0n);
      break;
    default:
      throw new Error(`cannot restore entry of type ${node.type}`);
  }
  applyMetadata(node, dest);
}

/** Owner, xattrs, mode and times of anything but an open regular file. */
export function applyMetadata(node: TreeNode, dest: Buffer): void {
  if (IS_ROOT) lchownSync(dest, node.uid, node.gid);
  // Xattrs before the mode: setting a user.* xattr needs write permission, which a read-only
  // mode (0o444, 0o555, 0o000) takes away from anyone who cannot override permissions.
  setXattrs(node, dest);
  if (node.type !== 'symlink') chmodSync(dest, node.mode);
  lutimesNs(dest, node.mtimeNs, node.mtimeNs);
}

/** The metadata of a regular file whose content is written: through its descriptor, which `close` closes before the times go on. */
export function applyFileMetadata(node: TreeNode, dest: Buffer, fd: number, close: () => void): void {
  if (IS_ROOT) fchownSync(fd, node.uid, node.gid);
  setXattrs(node, dest);
  fchmodSync(fd, node.mode);
  close();
  lutimesNs(dest, node.mtimeNs, node.mtimeNs);
}

/** Closes and removes a file that could not be restored. */
export function discardFile(dest: Buffer, close: () => void): void {
  close();
  try {
    unlinkSync(dest);
  } catch {
    // Gone already.
  }
}

function setXattrs(node: TreeNode, dest: Buffer): void {
  for (const xattr of node.xattrs ?? []) {
    try {
      setXattr(dest, xattr.name, xattr.value);
    } catch (error) {
      // The kernel allows no user.* xattrs on symlinks; other refusals are worth reporting.
      if (node.type !== 'symlink') throw error;
    }
  }
}

/** How a message names the snapshot's entry of this type. */
function describeType(node: TreeNode): string {
  switch (node.type) {
    case 'fifo':
      return 'FIFO';
    case 'chardev':
    case 'blockdev':
      return 'device node';
    default:
      return node.type;
  }
}

export function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined;
}
