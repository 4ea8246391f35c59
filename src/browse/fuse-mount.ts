/**
 * The snapshot view (src/browse/view.ts) mounted with FUSE (src/fsx/fuse.ts): inode numbers,
 * kernel references, open files, and the attributes the kernel caches.
 *
 * Inode numbers are derived, not counted: a hash of the parent's number and the entry's name
 * (52 bits, so that a JS number holds them exactly), or, for a file with several hard links,
 * of its snapshot, device and inode, so that every name of it shows one inode as on the disk it
 * came from. The same entry therefore has the same number in a directory listing and in stat,
 * however often the kernel forgets and finds it again, and the table holds only the inodes the
 * kernel holds references to. Two identities that hash alike (rare) are told apart by probing.
 *
 * What a snapshot holds never changes, so the kernel may cache its entries and attributes for
 * long, and file pages across opens; the view's own directories change when the snapshot list
 * does, so their entries are trusted for a second only.
 */
import { createHash } from 'node:crypto';
import { type FuseAttributes, type FuseDirectoryEntry, FuseMount, type FuseMountOptions } from '../fsx/fuse.js';
import type { NodeType } from '../snapshot/tree.js';
import { type BrowseNode, type FileReader, type SnapshotView, isDirectory, nameOf } from './view.js';

const ROOT_INO = 1;
/** Seconds the kernel may trust what a snapshot holds, and the view's own directories. */
const SNAPSHOT_TIMEOUT = 3600;
const LAYOUT_TIMEOUT = 1;
/** Directory listings kept ready for the kernel's paged readdir calls. */
const LISTINGS_KEPT = 32;

const TYPE_BITS: Record<NodeType, number> = { file: 0o100000, dir: 0o040000, symlink: 0o120000, fifo: 0o010000, chardev: 0o020000, blockdev: 0o060000, socket: 0o140000 };

interface Inode {
  node: BrowseNode;
  /** What the number stands for: the same identity gets the same number. */
  identity: string;
  parent: number;
  /** Kernel references (lookups not yet forgotten). */
  references: number;
}

export interface SnapshotMountOptions extends FuseMountOptions {
  /** A file that could not be read (it answers EIO; other files still read). */
  onReadError?: (message: string) => void;
}

function errno(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export class SnapshotMount {
  private readonly inodes = new Map<number, Inode>();
  private readonly files = new Map<number, { reader: FileReader; failed: boolean }>();
  private nextHandle = 1;
  private readonly listings = new Map<number, { list: readonly BrowseNode[]; entries: FuseDirectoryEntry[] }>();
  private fuse: FuseMount | undefined;

  private constructor(
    readonly view: SnapshotView,
    private readonly options: SnapshotMountOptions,
  ) {}

  /** Mounts `view` at `mountpoint` (an existing directory); serves it until unmount(). */
  static async mount(view: SnapshotView, mountpoint: string, options: SnapshotMountOptions = {}): Promise<SnapshotMount> {
    const mount = new SnapshotMount(view, options);
    const root = await view.root();
    mount.inodes.set(ROOT_INO, { node: root, identity: '', parent: ROOT_INO, references: 1 });
    mount.fuse = FuseMount.mount(mountpoint, mount.handlers(), options);
    return mount;
  }

  /** Resolves once the file system is unmounted (by unmount() or from outside). */
  get closed(): Promise<void> {
    return this.fuse!.closed;
  }

  async unmount(): Promise<void> {
    await this.fuse!.unmount();
    await this.fuse!.closed;
  }

  private handlers() {
    return {
      lookup: async (parent: number, name: Buffer) => {
        const directory = this.directory(parent);
        const node = await this.view.lookup(directory, name);
        if (!node) throw errno('ENOENT', 'no such entry');
        const ino = this.register(parent, node);
        return { attributes: this.attributes(ino, node), timeoutSeconds: this.timeout(node) };
      },
      forget: (ino: number, count: number) => {
        const inode = this.inodes.get(ino);
        if (!inode || ino === ROOT_INO) return;
        inode.references -= count;
        if (inode.references <= 0) this.inodes.delete(ino);
      },
      getattr: async (ino: number) => {
        const node = this.node(ino);
        if (node.kind === 'virtual' && ino === ROOT_INO) this.inode(ino).node = await this.view.root();
        return { attributes: this.attributes(ino, this.node(ino)), timeoutSeconds: this.timeout(node) };
      },
      readlink: async (ino: number) => {
        const target = this.view.linkTarget(this.node(ino));
        if (!target) throw errno('EINVAL', 'not a symbolic link');
        return target;
      },
      open: async (ino: number) => {
        const reader = await this.view.openFile(this.node(ino));
        const handle = this.nextHandle++;
        this.files.set(handle, { reader, failed: false });
        return { handle, keepCache: true };
      },
      read: async (_ino: number, handle: number, offset: number, size: number) => {
        const file = this.files.get(handle);
        if (!file) throw errno('EBADF', 'not open');
        try {
          return await file.reader.read(offset, size);
        } catch (error) {
          if (!file.failed) {
            file.failed = true;
            this.options.onReadError?.(`cannot read ${file.reader.node.name.toString()}: ${(error as Error).message}`);
          }
          throw errno('EIO', (error as Error).message);
        }
      },
      release: (_ino: number, handle: number) => {
        this.files.delete(handle);
      },
      readdir: async (ino: number) => this.readdir(ino),
      getxattr: async (ino: number, name: string) => {
        const xattr = this.view.xattrs(this.node(ino)).find((x) => x.name === name);
        if (!xattr) throw errno('ENODATA', 'no such attribute');
        return xattr.value;
      },
      listxattr: async (ino: number) => this.view.xattrs(this.node(ino)).map((x) => x.name),
    };
  }

  private async readdir(ino: number): Promise<FuseDirectoryEntry[]> {
    const inode = this.inode(ino);
    const directory = this.directory(ino);
    const list = await this.view.list(directory);
    const kept = this.listings.get(ino);
    if (kept && kept.list === list) return kept.entries;
    const unreferenced = (): void => {};
    const parent = this.inodes.get(inode.parent) ?? inode;
    const entries: FuseDirectoryEntry[] = [
      { name: Buffer.from('.'), attributes: this.attributes(ino, inode.node), timeoutSeconds: this.timeout(inode.node), referenced: unreferenced },
      { name: Buffer.from('..'), attributes: this.attributes(inode.parent, parent.node), timeoutSeconds: this.timeout(parent.node), referenced: unreferenced },
    ];
    for (const node of list) {
      entries.push({ name: nameOf(node), attributes: this.attributes(this.numberOf(ino, node), node), timeoutSeconds: this.timeout(node), referenced: () => void this.register(ino, node) });
    }
    this.listings.delete(ino);
    this.listings.set(ino, { list, entries });
    if (this.listings.size > LISTINGS_KEPT) this.listings.delete(this.listings.keys().next().value!);
    return entries;
  }

  private inode(ino: number): Inode {
    const inode = this.inodes.get(ino);
    if (!inode) throw errno('ESTALE', `inode ${ino} is not known`);
    return inode;
  }

  private node(ino: number): BrowseNode {
    return this.inode(ino).node;
  }

  private directory(ino: number) {
    const node = this.node(ino);
    if (!isDirectory(node)) throw errno('ENOTDIR', 'not a directory');
    return node;
  }

  /** The inode number of `node` in directory `parent`, and one more kernel reference to it. */
  private register(parent: number, node: BrowseNode): number {
    const identity = identityOf(parent, node);
    let ino = inodeNumber(identity);
    for (let existing = this.inodes.get(ino); existing && existing.identity !== identity; existing = this.inodes.get(ino)) ino = ino + 2 > 2 ** 52 ? 2 : ino + 1;
    const inode = this.inodes.get(ino);
    if (inode) {
      inode.node = node;
      inode.references++;
    } else {
      this.inodes.set(ino, { node, identity, parent, references: 1 });
    }
    return ino;
  }

  /** The number `node` has, or will have once looked up (readdir's d_ino). */
  private numberOf(parent: number, node: BrowseNode): number {
    const identity = identityOf(parent, node);
    let ino = inodeNumber(identity);
    for (let existing = this.inodes.get(ino); existing && existing.identity !== identity; existing = this.inodes.get(ino)) ino = ino + 2 > 2 ** 52 ? 2 : ino + 1;
    return ino;
  }

  private attributes(ino: number, node: BrowseNode): FuseAttributes {
    const stat = this.view.stat(node);
    return { ino, mode: TYPE_BITS[stat.type] | stat.mode, nlink: stat.links, uid: stat.uid, gid: stat.gid, rdev: Number(stat.rdev), size: stat.size, mtimeNs: stat.mtimeNs, ctimeNs: stat.ctimeNs };
  }

  private timeout(node: BrowseNode): number {
    return node.kind === 'entry' ? SNAPSHOT_TIMEOUT : LAYOUT_TIMEOUT;
  }
}

/** Hard-linked files share one identity per snapshot; everything else is its name in its parent. */
function identityOf(parent: number, node: BrowseNode): string {
  if (node.kind === 'entry' && node.node.type !== 'dir' && node.node.links > 1) return `link:${node.snapshot.id}:${node.node.device}:${node.node.inode}`;
  return `${parent}/${nameOf(node).toString('hex')}`;
}

/** 52 bits of the identity's hash, never 0 or the root's 1. */
function inodeNumber(identity: string): number {
  const hash = createHash('sha1').update(identity).digest();
  const ino = hash.readUIntBE(0, 6) * 16 + (hash[6]! >> 4);
  return ino < 2 ? ino + 2 : ino;
}
