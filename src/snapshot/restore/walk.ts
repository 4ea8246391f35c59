/**
 * The walk of a restore: the snapshot's trees in order, on the calling thread, creating
 * directories and entries as it goes, optimistically (create first; look at what is there only
 * when the name is taken, src/snapshot/restore/fs-ops.ts). A regular file is created and handed
 * to the content pipeline (src/snapshot/restore/content.ts), and the walk goes on while it is
 * written. Entries in flight are bounded (MAX_ACTIVE: each open file holds a descriptor; the
 * pipeline bounds the bytes). A directory's metadata goes on once all its entries are finished,
 * so a read-only directory is still filled and its mtime is not disturbed; a further name of a
 * hardlinked inode is linked once its first name is finished.
 *
 * Every name comes from decodeTree, which refuses "", ".", "..", "/" and NUL, so a path is
 * always target + "/" + safe components and cannot leave the target.
 */
import { linkSync } from 'node:fs';
import { AbortedError } from '../archiver.js';
import { type TreeNode, decodeTree } from '../tree.js';
import type { ContentPipeline } from './content.js';
import { applyMetadata, clearExisting, createFile, createSpecial, errorCode, isDirectory, makeDir } from './fs-ops.js';
import type { Pending, RestoreState } from './state.js';

const SLASH = Buffer.from('/');
/** Entries being restored at once (a regular file holds a descriptor until it is finished). */
const MAX_ACTIVE = 512;
/** Entries walked between two chances for other work (finished reads, signals) to run. */
const YIELD_EVERY = 32;

export class RestoreWalk {
  /** First restored path of each hardlinked inode (device:inode), once it is finished; undefined if it failed. */
  private readonly hardlinks = new Map<string, Promise<Buffer | undefined>>();
  /** Entries walked since the walk last let other work run. */
  private sinceYield = 0;
  /** Entries started and not finished. */
  private active = 0;

  constructor(
    private readonly state: RestoreState,
    private readonly content: ContentPipeline,
  ) {}

  /** Restores the entries of one tree into `dir` (which exists unless dry-running); returns once all are started. */
  async restoreDir(treeId: Buffer, dir: Buffer, snapshotPath: string, selected: boolean): Promise<Pending> {
    const { options } = this.state;
    const nodes = decodeTree(await this.content.loadTree(treeId), `tree ${treeId.toString('hex')}`);
    const children: Promise<boolean>[] = [];
    for (const node of nodes) {
      // Most of the walk is synchronous: let finished reads, files and signals be handled now and then.
      if (++this.sinceYield >= YIELD_EVERY) {
        this.sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      if (this.state.aborted) throw new AbortedError();
      const name = node.name.toString();
      const path = `${snapshotPath}/${name}`;
      if (options.exclude(path, name)) continue;
      const isSelected = selected || (options.include?.(path, name) ?? true);
      const dest = Buffer.concat([dir, SLASH, node.name]);
      try {
        const pending = node.type === 'dir' ? await this.restoreSubdir(node, dest, path, isSelected) : isSelected ? await this.restoreLeaf(node, dest) : undefined;
        if (pending) children.push(pending.all);
      } catch (error) {
        if (error instanceof AbortedError) throw error;
        this.state.reportError(dest, error);
      }
    }
    return { all: Promise.all(children).then(() => true) };
  }

  private async restoreSubdir(node: TreeNode, dest: Buffer, path: string, selected: boolean): Promise<Pending | undefined> {
    const { dryRun, overwrite } = this.state.options;
    if (!selected) {
      // Not selected itself, but a descendant may be: descend, creating this directory only if needed.
      if (!dryRun) {
        if (!isDirectory(dest) && !(await this.wouldSelectAny(node.subtree!, path))) return undefined;
        makeDir(dest, overwrite);
      }
      return this.afterChildren(await this.restoreDir(node.subtree!, dest, path, false), node, dest, false);
    }
    if (!dryRun) makeDir(dest, overwrite);
    return this.afterChildren(await this.restoreDir(node.subtree!, dest, path, true), node, dest, true);
  }

  /** A directory's metadata goes on once everything inside it is finished. */
  private afterChildren(children: Pending, node: TreeNode, dest: Buffer, counted: boolean): Pending {
    const all = children.all.then(() => {
      if (this.state.stopping) return false;
      if (counted) this.state.result.dirs++;
      if (this.state.options.dryRun) return true;
      try {
        applyMetadata(node, dest);
        return true;
      } catch (error) {
        this.state.reportError(dest, error);
        return false;
      }
    });
    return { all };
  }

  /** Whether anything below `treeId` matches the include patterns (decides if a directory is needed). */
  private async wouldSelectAny(treeId: Buffer, snapshotPath: string): Promise<boolean> {
    const { options } = this.state;
    const nodes = decodeTree(await this.content.loadTree(treeId), `tree ${treeId.toString('hex')}`);
    for (const node of nodes) {
      const name = node.name.toString();
      const path = `${snapshotPath}/${name}`;
      if (options.exclude(path, name)) continue;
      if (options.include?.(path, name)) return true;
      if (node.type === 'dir' && (await this.wouldSelectAny(node.subtree!, path))) return true;
    }
    return false;
  }

  /** Starts restoring a non-directory entry: the walk goes on while it is created and written. */
  private async restoreLeaf(node: TreeNode, dest: Buffer): Promise<Pending | undefined> {
    if (this.state.options.dryRun) {
      this.state.count(node);
      return undefined;
    }
    await this.admit();
    const linkKey = node.links > 1 ? `${node.device}:${node.inode}` : undefined;
    const first = linkKey ? this.hardlinks.get(linkKey) : undefined;
    this.active++;
    const holder = this.leaf(node, dest, first).finally(() => {
      this.active--;
      this.state.wake();
    });
    // Later names of this inode wait for this one, and link to whatever holds its content.
    if (linkKey) this.hardlinks.set(linkKey, holder);
    this.state.track(holder);
    return { all: holder.then(() => true) };
  }

  /** Waits until another entry may be started (bounds open files, and the bytes in flight). */
  private async admit(): Promise<void> {
    const full = (): boolean => this.active >= MAX_ACTIVE || this.content.full;
    while (full()) {
      if (this.state.aborted) throw new AbortedError();
      this.content.dispatch();
      if (!full() || !this.state.busy) return;
      // Rather than wait for the workers, do some of their work.
      if (this.content.helpOnce()) await new Promise<void>((resolve) => setImmediate(resolve));
      else await this.state.nextWake();
    }
  }

  /**
   * Restores one entry (never rejects: failures are reported). Resolves to the path that now
   * holds the entry's inode (to link more names to), if any. `first` is set when another name of
   * the same inode came before: this one is then a hardlink to it, made once it is finished.
   */
  private async leaf(node: TreeNode, dest: Buffer, first: Promise<Buffer | undefined> | undefined): Promise<Buffer | undefined> {
    try {
      if (this.state.stopping) return undefined;
      if (node.type === 'socket') {
        // A socket is a live endpoint of a process that is gone: nothing to restore, nothing to replace.
        this.state.result.skipped++;
        return undefined;
      }
      if (first) {
        if (clearExisting(node, dest, this.state) !== 'cleared') return await first;
        const firstDest = await first;
        if (this.state.stopping) return undefined;
        if (firstDest) {
          linkSync(firstDest, dest);
          this.state.result.links++;
          return firstDest;
        }
        // The first name could not be restored: this one is restored on its own.
        return await this.create(node, dest);
      }
      // Create first; only when the name is taken, look at what is there (most targets are empty).
      try {
        return await this.create(node, dest);
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') throw error;
      }
      const existing = clearExisting(node, dest, this.state);
      if (existing !== 'cleared') return existing === 'unchanged' ? dest : undefined;
      return await this.create(node, dest);
    } catch (error) {
      if (error instanceof AbortedError) this.state.interrupted = true;
      else this.state.reportError(dest, error);
      return undefined;
    }
  }

  /**
   * Creates a new entry (EEXIST when the name is taken). A regular file is created here, then
   * written and finished by the content pipeline: resolves to `dest` once it is, or undefined
   * if it failed.
   */
  private async create(node: TreeNode, dest: Buffer): Promise<Buffer | undefined> {
    if (node.type === 'file') return this.content.writeFile(node, dest, createFile(dest));
    createSpecial(node, dest);
    this.state.count(node);
    return dest;
  }
}
