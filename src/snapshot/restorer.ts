/**
 * The restorer: recreates a snapshot's tree under a target directory.
 *
 * Safety rules (docs/FORMAT.md §6, README "Restore"):
 * - every name comes from decodeTree, which refuses "", ".", "..", "/" and NUL, so a path is
 *   always target + "/" + safe components and cannot leave the target;
 * - nothing already inside the target is followed: files are created with O_EXCL|O_NOFOLLOW, an
 *   existing symlink or file where a directory must go is replaced (or, with --overwrite never,
 *   the subtree is skipped with an error), never descended into;
 * - every blob re-hashes to its id before its bytes are written (IndexedRepository.loadBlob);
 *   a damaged blob fails its file loudly, and the partial file is removed.
 * Metadata goes on after content, in the order the kernel needs: owner (root only), then xattrs
 * (chown would clear security.capability; a read-only mode would forbid user.* xattrs), then mode
 * (chown clears setuid/setgid), and times last; directories get theirs after their
 * children, so a read-only directory is still filled and its mtime is not disturbed.
 */
import { constants as fsConstants } from 'node:fs';
import { chmod, lchown, link, lstat, mkdir, open, rm, symlink, unlink, type FileHandle } from 'node:fs/promises';
import type { IndexedRepository } from '../repo/repository.js';
import { lutimesNs, mkfifo, mknod, setXattr } from '../fsx/index.js';
import type { PathMatcher } from './exclude.js';
import { type TreeNode, decodeTree } from './tree.js';
import { AbortedError } from './archiver.js';

export type OverwritePolicy = 'always' | 'if-changed' | 'never';

export interface RestoreOptions {
  target: string;
  /** When given, only entries matching (or inside a match) are restored. */
  include?: PathMatcher | undefined;
  exclude: PathMatcher;
  overwrite: OverwritePolicy;
  dryRun?: boolean;
  /** Re-read every restored file and check its chunks against their ids. */
  verify?: boolean;
  onProgress?: (progress: RestoreProgress) => void;
  onError?: (error: { path: string; message: string }) => void;
  signal?: AbortSignal;
}

export interface RestoreProgress {
  files: number;
  dirs: number;
  bytes: number;
  current: string;
}

export interface RestoreResult {
  files: number;
  dirs: number;
  links: number;
  special: number;
  bytes: number;
  skipped: number;
  verified: number;
  errors: { path: string; message: string }[];
}

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const SLASH = Buffer.from('/');
const IS_ROOT = process.getuid?.() === 0;

class VerifyError extends Error {}

export class Restorer {
  private readonly result: RestoreResult = { files: 0, dirs: 0, links: 0, special: 0, bytes: 0, skipped: 0, verified: 0, errors: [] };
  /** First restored path of each hardlinked inode (device:inode). */
  private readonly hardlinks = new Map<string, Buffer>();
  private lastProgress = 0;

  constructor(private readonly repo: IndexedRepository, private readonly options: RestoreOptions) {}

  async run(rootTree: Buffer): Promise<RestoreResult> {
    const target = Buffer.from(this.options.target);
    if (!this.options.dryRun) await mkdir(target, { recursive: true });
    await this.restoreDir(rootTree, target, '', this.options.include === undefined);
    this.report(true);
    return this.result;
  }

  /** Restores the entries of one tree into `dir` (which exists unless dry-running). */
  private async restoreDir(treeId: Buffer, dir: Buffer, snapshotPath: string, selected: boolean): Promise<void> {
    const nodes = decodeTree(await this.repo.loadBlob('tree', treeId), `tree ${treeId.toString('hex')}`);
    for (const node of nodes) {
      if (this.options.signal?.aborted) throw new AbortedError();
      const name = node.name.toString();
      const path = `${snapshotPath}/${name}`;
      if (this.options.exclude(path, name)) continue;
      const isSelected = selected || (this.options.include?.(path, name) ?? true);
      const dest = Buffer.concat([dir, SLASH, node.name]);
      try {
        if (node.type === 'dir') await this.restoreSubdir(node, dest, path, isSelected);
        else if (isSelected) await this.restoreLeaf(node, dest);
      } catch (error) {
        if (error instanceof AbortedError) throw error;
        this.reportError(dest, error);
      }
    }
  }

  private async restoreSubdir(node: TreeNode, dest: Buffer, path: string, selected: boolean): Promise<void> {
    if (!selected) {
      // Not selected itself, but a descendant may be: descend, creating this directory only if needed.
      if (!this.options.dryRun) {
        if (!(await this.isDirectory(dest)) && !(await this.wouldSelectAny(node.subtree!, path))) return;
        await this.makeDir(dest);
      }
      await this.restoreDir(node.subtree!, dest, path, false);
      if (!this.options.dryRun) await this.applyMetadata(node, dest);
      return;
    }
    if (!this.options.dryRun) await this.makeDir(dest);
    await this.restoreDir(node.subtree!, dest, path, true);
    this.result.dirs++;
    if (!this.options.dryRun) await this.applyMetadata(node, dest);
  }

  /** Whether anything below `treeId` matches the include patterns (decides if a directory is needed). */
  private async wouldSelectAny(treeId: Buffer, snapshotPath: string): Promise<boolean> {
    const nodes = decodeTree(await this.repo.loadBlob('tree', treeId), `tree ${treeId.toString('hex')}`);
    for (const node of nodes) {
      const name = node.name.toString();
      const path = `${snapshotPath}/${name}`;
      if (this.options.exclude(path, name)) continue;
      if (this.options.include?.(path, name)) return true;
      if (node.type === 'dir' && (await this.wouldSelectAny(node.subtree!, path))) return true;
    }
    return false;
  }

  private async isDirectory(path: Buffer): Promise<boolean> {
    const st = await lstat(path).catch(() => undefined);
    return st?.isDirectory() ?? false;
  }

  /** A real directory at `path` (never a symlink to one): existing, or made; writable while it is filled. */
  private async makeDir(path: Buffer): Promise<void> {
    const st = await lstat(path).catch(() => undefined);
    if (st?.isDirectory()) {
      // A read-only directory (say, left by an earlier restore of a 0o555 one) cannot be filled
      // without overriding permissions: open it up; its recorded mode goes back on afterwards,
      // with the rest of its metadata. Not ours to chmod: left as it is.
      if ((st.mode & 0o300) !== 0o300) await chmod(path, (st.mode & 0o7777) | 0o700).catch(() => undefined);
      return;
    }
    if (st) {
      if (this.options.overwrite === 'never') throw new Error('exists and is not a directory (--overwrite never)');
      await unlink(path);
    }
    await mkdir(path, { mode: 0o700 });
  }

  private async restoreLeaf(node: TreeNode, dest: Buffer): Promise<void> {
    if (this.options.dryRun) {
      this.count(node);
      return;
    }
    const linkKey = node.type !== 'dir' && node.links > 1 ? `${node.device}:${node.inode}` : undefined;
    const existing = await lstat(dest, { bigint: true }).catch(() => undefined);
    if (existing) {
      const unchanged = node.type === 'file' && existing.isFile() && Number(existing.size) === node.size && existing.mtimeNs === node.mtimeNs;
      if (this.options.overwrite === 'never' || (this.options.overwrite === 'if-changed' && unchanged)) {
        // Kept. When it is the snapshot's file, its other hardlinked names are linked to it
        // rather than restored as separate copies.
        if (unchanged && linkKey && !this.hardlinks.has(linkKey)) this.hardlinks.set(linkKey, dest);
        this.result.skipped++;
        return;
      }
      if (existing.isDirectory()) await rm(dest, { recursive: true });
      else await unlink(dest);
    }

    const first = linkKey ? this.hardlinks.get(linkKey) : undefined;
    if (first) {
      await link(first, dest);
      this.result.links++;
      return;
    }

    switch (node.type) {
      case 'file':
        await this.writeFile(node, dest);
        break;
      case 'symlink':
        await symlink(node.linkTarget!, dest);
        break;
      case 'fifo':
        mkfifo(dest, 0o600);
        break;
      case 'chardev':
      case 'blockdev':
        mknod(dest, (node.type === 'chardev' ? S_IFCHR : S_IFBLK) | 0o600, node.rdev ?? 0n);
        break;
      case 'socket':
        // A socket is a live endpoint of a process that is gone; there is nothing to restore.
        this.result.skipped++;
        return;
      default:
        throw new Error(`cannot restore entry of type ${node.type}`);
    }
    await this.applyMetadata(node, dest);
    if (linkKey) this.hardlinks.set(linkKey, dest);
    this.count(node);
  }

  private count(node: TreeNode): void {
    if (node.type === 'file') {
      this.result.files++;
      this.result.bytes += node.size;
    } else this.result.special++;
    this.report(false);
  }

  private async writeFile(node: TreeNode, dest: Buffer): Promise<void> {
    const handle = await open(dest, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
    try {
      let offset = 0;
      const lengths: number[] = [];
      for (const id of node.content ?? []) {
        if (this.options.signal?.aborted) throw new AbortedError();
        const data = await this.repo.loadBlob('data', id);
        // All-zero chunks are left as holes: sparse files stay sparse.
        if (!isZero(data)) await writeAll(handle, data, offset);
        offset += data.length;
        lengths.push(data.length);
      }
      if (offset !== node.size) throw new Error(`content adds up to ${offset} bytes but the snapshot records ${node.size}`);
      await handle.truncate(offset);
      if (this.options.verify) await this.verifyFile(handle, node, lengths);
    } catch (error) {
      await handle.close();
      await unlink(dest).catch(() => undefined);
      throw error;
    }
    await handle.close();
  }

  private async verifyFile(handle: FileHandle, node: TreeNode, lengths: number[]): Promise<void> {
    let offset = 0;
    for (let i = 0; i < lengths.length; i++) {
      const buf = Buffer.allocUnsafe(lengths[i]!);
      const { bytesRead } = await handle.read(buf, 0, buf.length, offset);
      if (bytesRead !== buf.length || !this.repo.keys.blobId(buf).equals(node.content![i]!)) {
        throw new VerifyError(`verification failed: bytes at offset ${offset} do not match chunk ${node.content![i]!.toString('hex')}`);
      }
      offset += buf.length;
    }
    this.result.verified++;
  }

  private async applyMetadata(node: TreeNode, dest: Buffer): Promise<void> {
    if (IS_ROOT) await lchown(dest, node.uid, node.gid);
    // Xattrs before the mode: setting a user.* xattr needs write permission, which a read-only
    // mode (0o444, 0o555, 0o000) takes away from anyone who cannot override permissions.
    for (const xattr of node.xattrs ?? []) {
      try {
        setXattr(dest, xattr.name, xattr.value);
      } catch (error) {
        // The kernel allows no user.* xattrs on symlinks; other refusals are worth reporting.
        if (node.type !== 'symlink') throw error;
      }
    }
    if (node.type !== 'symlink') await chmod(dest, node.mode);
    lutimesNs(dest, node.mtimeNs, node.mtimeNs);
  }

  private reportError(path: Buffer, error: unknown): void {
    const entry = { path: path.toString(), message: (error as Error).message };
    this.result.errors.push(entry);
    this.options.onError?.(entry);
  }

  private report(force: boolean): void {
    const now = Date.now();
    if (!this.options.onProgress || (!force && now - this.lastProgress < 250)) return;
    this.lastProgress = now;
    this.options.onProgress({ files: this.result.files, dirs: this.result.dirs, bytes: this.result.bytes, current: '' });
  }
}

let zeros = Buffer.alloc(0);

function isZero(data: Buffer): boolean {
  if (data.length === 0 || data[0] !== 0) return false;
  if (zeros.length < data.length) zeros = Buffer.alloc(data.length);
  return data.equals(zeros.subarray(0, data.length));
}

async function writeAll(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}
