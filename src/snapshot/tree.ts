/**
 * Trees and nodes (docs/FORMAT.md §6): a tree blob is the canonical JSON of one directory's
 * entries. Canonical means one byte sequence per content (fixed key order, entries sorted by
 * name bytes, absent fields omitted), so an unchanged directory encodes to the same bytes, gets
 * the same blob id and is stored once.
 *
 * Names and link targets are bytes on Linux. Valid UTF-8 is written as a JSON string; anything
 * else as base64 under `name_bytes` / `linktarget_bytes`, so every name round-trips exactly.
 * Decoding refuses names that could escape a restore target: empty, ".", "..", or containing
 * "/" or NUL.
 */
import { FormatError } from '../repo/errors.js';

export type NodeType = 'file' | 'dir' | 'symlink' | 'fifo' | 'chardev' | 'blockdev' | 'socket';

export interface Xattr {
  name: string;
  value: Buffer;
}

export interface TreeNode {
  name: Buffer;
  type: NodeType;
  /** Permission bits including setuid, setgid and sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  inode: bigint;
  device: bigint;
  links: number;
  /** Bytes of a regular file (0 for others). */
  size: number;
  /** Blob ids of a regular file's chunks, in order. */
  content?: Buffer[];
  /** Tree blob id of a directory. */
  subtree?: Buffer;
  linkTarget?: Buffer;
  /** Device number of a character or block device. */
  rdev?: bigint;
  xattrs?: Xattr[];
}

const NODE_TYPES: ReadonlySet<string> = new Set(['file', 'dir', 'symlink', 'fifo', 'chardev', 'blockdev', 'socket']);

export function compareNames(a: Buffer, b: Buffer): number {
  return Buffer.compare(a, b);
}

/** A name a restore may create inside a directory: one path component, nothing more. */
export function isSafeName(name: Buffer): boolean {
  if (name.length === 0 || name.length > 255) return false;
  if (name.length === 1 && name[0] === 0x2e) return false;
  if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return false;
  return !name.includes(0x2f) && !name.includes(0x00);
}

function isUtf8(bytes: Buffer): boolean {
  return Buffer.from(bytes.toString('utf8'), 'utf8').equals(bytes);
}

function putBytes(out: Record<string, unknown>, key: string, bytes: Buffer): void {
  if (isUtf8(bytes)) out[key] = bytes.toString('utf8');
  else out[`${key}_bytes`] = bytes.toString('base64');
}

function encodeNode(node: TreeNode): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  putBytes(out, 'name', node.name);
  out['type'] = node.type;
  out['mode'] = node.mode;
  out['uid'] = node.uid;
  out['gid'] = node.gid;
  out['mtime'] = node.mtimeNs.toString();
  out['ctime'] = node.ctimeNs.toString();
  out['inode'] = node.inode.toString();
  out['device'] = node.device.toString();
  out['links'] = node.links;
  out['size'] = node.size;
  if (node.content) out['content'] = node.content.map((id) => id.toString('hex'));
  if (node.subtree) out['subtree'] = node.subtree.toString('hex');
  if (node.linkTarget) putBytes(out, 'linktarget', node.linkTarget);
  if (node.rdev !== undefined) out['rdev'] = node.rdev.toString();
  if (node.xattrs && node.xattrs.length > 0) {
    out['xattrs'] = [...node.xattrs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((x) => ({ name: x.name, value: x.value.toString('base64') }));
  }
  return out;
}

/**
 * Whether two nodes encode to the same bytes (every field encodeNode writes, xattrs in any
 * order): a directory whose entries all equal the parent's keeps the parent's tree id without
 * encoding and hashing it again.
 */
export function sameNode(a: TreeNode, b: TreeNode): boolean {
  return (
    a.name.equals(b.name) &&
    a.type === b.type &&
    a.mode === b.mode &&
    a.uid === b.uid &&
    a.gid === b.gid &&
    a.mtimeNs === b.mtimeNs &&
    a.ctimeNs === b.ctimeNs &&
    a.inode === b.inode &&
    a.device === b.device &&
    a.links === b.links &&
    a.size === b.size &&
    a.rdev === b.rdev &&
    sameBytes(a.subtree, b.subtree) &&
    sameBytes(a.linkTarget, b.linkTarget) &&
    (a.content === b.content || (a.content !== undefined && b.content !== undefined && a.content.length === b.content.length && a.content.every((id, i) => id.equals(b.content![i]!)))) &&
    sameXattrs(a.xattrs, b.xattrs)
  );
}

function sameBytes(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.equals(b));
}

/** Absent and empty are alike (neither is written); order does not matter (they are sorted when written). */
function sameXattrs(a: Xattr[] | undefined, b: Xattr[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  if (x === y) return true;
  if (x.length !== y.length) return false;
  const byName = new Map(y.map((v) => [v.name, v.value]));
  return x.every((v) => byName.get(v.name)?.equals(v.value) === true);
}

/** Canonical bytes of a tree; `nodes` are sorted here, and duplicate names are refused. */
export function encodeTree(nodes: TreeNode[]): Buffer {
  for (const node of nodes) {
    // What decodeTree would refuse must never be written: such a tree could not be restored.
    if (!isSafeName(node.name)) throw new Error(`cannot store entry name ${JSON.stringify(node.name.toString())}`);
    if ((node.type === 'file') !== (node.content !== undefined) || (node.type === 'dir') !== (node.subtree !== undefined)) {
      throw new Error(`entry '${node.name.toString()}' of type ${node.type} has the wrong content fields`);
    }
  }
  const sorted = [...nodes].sort((a, b) => compareNames(a.name, b.name));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i - 1]!.name.equals(sorted[i]!.name)) throw new Error(`two entries named '${sorted[i]!.name.toString()}' in one directory`);
  }
  return Buffer.from(JSON.stringify({ nodes: sorted.map(encodeNode) }));
}

const HEX64 = /^[0-9a-f]{64}$/;
const DECIMAL = /^-?[0-9]{1,20}$/;

export function decodeTree(bytes: Buffer, what: string): TreeNode[] {
  const fail = (why: string): never => {
    throw new FormatError(`${what}: ${why}`);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    fail('tree is not valid JSON');
  }
  const list = (doc as { nodes?: unknown })?.nodes;
  if (!Array.isArray(list)) return fail('tree has no node list');
  const nodes: TreeNode[] = [];
  for (const raw of list as Record<string, unknown>[]) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('tree entry is not an object');
    const bytesField = (key: string): Buffer | undefined => {
      if (raw[key] !== undefined && raw[`${key}_bytes`] !== undefined) fail(`node has both '${key}' and '${key}_bytes'`);
      if (typeof raw[key] === 'string') return Buffer.from(raw[key] as string, 'utf8');
      if (typeof raw[`${key}_bytes`] === 'string') return Buffer.from(raw[`${key}_bytes`] as string, 'base64');
      return undefined;
    };
    const int = (key: string): number => {
      const v = raw[key];
      return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : fail(`node field '${key}' is not a non-negative integer`);
    };
    const big = (key: string): bigint => {
      const v = raw[key];
      return typeof v === 'string' && DECIMAL.test(v) ? BigInt(v) : fail(`node field '${key}' is not a decimal integer`);
    };
    const id = (v: unknown): Buffer => (typeof v === 'string' && HEX64.test(v) ? Buffer.from(v, 'hex') : fail('node names a malformed blob id'));
    const name = bytesField('name') ?? fail('node has no name');
    if (!isSafeName(name)) fail(`refusing unsafe entry name ${JSON.stringify(name.toString('utf8'))} (empty, '.', '..', longer than 255 bytes, or contains '/' or NUL)`);
    const type = raw['type'];
    if (typeof type !== 'string' || !NODE_TYPES.has(type)) fail(`node '${name.toString()}' has unknown type ${String(type)}`);
    const node: TreeNode = {
      name,
      type: type as NodeType,
      mode: int('mode') & 0o7777,
      uid: int('uid'),
      gid: int('gid'),
      mtimeNs: big('mtime'),
      ctimeNs: big('ctime'),
      inode: big('inode'),
      device: big('device'),
      links: int('links'),
      size: int('size'),
    };
    if (node.type === 'file') {
      const content = raw['content'];
      if (!Array.isArray(content)) fail(`file '${name.toString()}' has no content list`);
      node.content = (content as unknown[]).map(id);
    }
    if (node.type === 'dir') node.subtree = id(raw['subtree']);
    if (node.type === 'symlink') node.linkTarget = bytesField('linktarget') ?? fail(`symlink '${name.toString()}' has no target`);
    if (node.type === 'chardev' || node.type === 'blockdev') node.rdev = big('rdev');
    if (raw['xattrs'] !== undefined) {
      if (!Array.isArray(raw['xattrs'])) fail('xattrs is not a list');
      node.xattrs = (raw['xattrs'] as ({ name?: unknown; value?: unknown } | null)[]).map((x) =>
        typeof x === 'object' && x !== null && typeof x.name === 'string' && typeof x.value === 'string' ? { name: x.name, value: Buffer.from(x.value, 'base64') } : fail('malformed xattr'),
      );
    }
    nodes.push(node);
  }
  for (let i = 1; i < nodes.length; i++) {
    if (compareNames(nodes[i - 1]!.name, nodes[i]!.name) >= 0) fail('tree entries are not strictly sorted by name (duplicate or reordered names)');
  }
  return nodes;
}
