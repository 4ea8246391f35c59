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
 *
 * Both directions work on the bytes of the canonical text (CanonicalTreeWriter,
 * CanonicalTreeReader) rather than through JSON.stringify / JSON.parse and an object per node,
 * which were most of the main thread's time for trees (bench/tree-codec.mjs). Bytes in any other
 * form that JSON allows are decoded by decodeAnyTree, which is also what decides and words
 * every refusal.
 */
import { isUtf8 } from 'node:buffer';

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
  /**
   * Plain SHA-256 of a regular file's content (32 bytes), as `sha256sum` prints it; absent in
   * snapshots made before bh recorded it (FORMAT.md §6.1, format 1 addition 1).
   */
  sha256?: Buffer;
  /** Tree blob id of a directory. */
  subtree?: Buffer;
  linkTarget?: Buffer;
  /** Device number of a character or block device. */
  rdev?: bigint;
  xattrs?: Xattr[];
}

const NODE_TYPE_LIST: readonly NodeType[] = ['file', 'dir', 'symlink', 'fifo', 'chardev', 'blockdev', 'socket'];
const NODE_TYPES: ReadonlySet<string> = new Set(NODE_TYPE_LIST);

/** Unsigned bytewise order, a proper prefix first (as Buffer.compare; a loop is cheaper for names this short). */
export function compareNames(a: Buffer, b: Buffer): number {
  const common = Math.min(a.length, b.length);
  for (let i = 0; i < common; i++) {
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

const SLASH = 0x2f;
const NUL = 0x00;
const DOT = 0x2e;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** A name a restore may create inside a directory: one path component, nothing more. */
export function isSafeName(name: Buffer): boolean {
  const length = name.length;
  if (length === 0 || length > 255) return false;
  if (name[0] === DOT && (length === 1 || (length === 2 && name[1] === DOT))) return false;
  for (let i = 0; i < length; i++) {
    const byte = name[i];
    if (byte === SLASH || byte === NUL) return false;
  }
  return true;
}

/**
 * Whether two nodes encode to the same bytes (every field encodeTree writes, xattrs in any
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
    sameBytes(a.sha256, b.sha256) &&
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

// ---- the canonical text (§6.1), written by CanonicalTreeWriter and read by CanonicalTreeReader ----

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');
const TREE_START = latin1('{"nodes":[');
const TREE_END = latin1(']}');
const NAME = latin1('{"name":');
const NAME_BYTES = latin1('{"name_bytes":');
/** `,"type":"<type>","mode":` for each type, the common ones first (the reader tries them in this order). */
const TYPE_MEMBERS: readonly (readonly [NodeType, Buffer])[] = NODE_TYPE_LIST.map((type) => [type, latin1(`,"type":"${type}","mode":`)]);
const TYPE_MEMBER: ReadonlyMap<string, Buffer> = new Map(TYPE_MEMBERS);
const UID = latin1(',"uid":');
const GID = latin1(',"gid":');
const MTIME = latin1(',"mtime":');
const CTIME = latin1(',"ctime":');
const INODE = latin1(',"inode":');
const DEVICE = latin1(',"device":');
const LINKS = latin1(',"links":');
const SIZE = latin1(',"size":');
const CONTENT = latin1(',"content":[');
const SHA256 = latin1(',"sha256":');
const SUBTREE = latin1(',"subtree":');
const LINKTARGET = latin1(',"linktarget":');
const LINKTARGET_BYTES = latin1(',"linktarget_bytes":');
const RDEV = latin1(',"rdev":');
const XATTRS = latin1(',"xattrs":[');
const XATTR_VALUE = latin1(',"value":');

const COMMA = 0x2c;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/** Hex digits by value. */
const HEX_DIGITS = latin1('0123456789abcdef');

/**
 * The decimal string of the last value asked for, kept: the entries of a directory share their
 * device, and often their times (files written together), and bigint's toString is costly.
 */
class LastDecimal {
  private value: bigint | undefined;
  private text = '';

  of(value: bigint): string {
    if (value !== this.value) {
      this.value = value;
      this.text = value.toString();
    }
    return this.text;
  }
}

/** The writer's buffer, kept between trees unless a huge directory made it big. */
let writerScratch = Buffer.allocUnsafeSlow(64 * 1024);
const SCRATCH_KEPT = 1024 * 1024;

/**
 * Writes a tree's canonical JSON straight into bytes: exactly the bytes of JSON.stringify of one
 * object per node (the encoder before bench/tree-codec.mjs; tests/tree-codec.test.ts compares
 * the two), without building those objects and the strings in them, which cost most of a first
 * backup's encoding time.
 */
class CanonicalTreeWriter {
  private out = writerScratch;
  private pos = 0;
  private readonly mtime = new LastDecimal();
  private readonly ctime = new LastDecimal();
  private readonly device = new LastDecimal();

  /** `nodes` sorted by name, without duplicates. */
  tree(nodes: TreeNode[]): Buffer {
    this.literal(TREE_START);
    for (let i = 0; i < nodes.length; i++) {
      if (i > 0) this.byte(COMMA);
      this.node(nodes[i]!);
    }
    this.literal(TREE_END);
    const bytes = Buffer.from(this.out.subarray(0, this.pos));
    if (this.out.length <= SCRATCH_KEPT) writerScratch = this.out;
    return bytes;
  }

  private node(node: TreeNode): void {
    this.bytesMember(NAME, NAME_BYTES, node.name);
    const typeMember = TYPE_MEMBER.get(node.type);
    if (typeMember === undefined) throw new Error(`entry '${node.name.toString()}' has the unknown type ${String(node.type)}`);
    this.literal(typeMember);
    this.integer(node.mode);
    this.literal(UID);
    this.integer(node.uid);
    this.literal(GID);
    this.integer(node.gid);
    this.literal(MTIME);
    this.quotedAscii(this.mtime.of(node.mtimeNs));
    this.literal(CTIME);
    this.quotedAscii(this.ctime.of(node.ctimeNs));
    this.literal(INODE);
    this.quotedAscii(node.inode.toString());
    this.literal(DEVICE);
    this.quotedAscii(this.device.of(node.device));
    this.literal(LINKS);
    this.integer(node.links);
    this.literal(SIZE);
    this.integer(node.size);
    if (node.content) {
      this.literal(CONTENT);
      for (let i = 0; i < node.content.length; i++) {
        if (i > 0) this.byte(COMMA);
        this.blobId(node.content[i]!);
      }
      this.byte(CLOSE_BRACKET);
      if (node.sha256) {
        this.literal(SHA256);
        this.blobId(node.sha256);
      }
    }
    if (node.subtree) {
      this.literal(SUBTREE);
      this.blobId(node.subtree);
    }
    if (node.linkTarget) this.bytesMember(LINKTARGET, LINKTARGET_BYTES, node.linkTarget);
    if (node.rdev !== undefined) {
      this.literal(RDEV);
      this.quotedAscii(node.rdev.toString());
    }
    if (node.xattrs && node.xattrs.length > 0) {
      this.literal(XATTRS);
      const sorted = [...node.xattrs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (let i = 0; i < sorted.length; i++) {
        if (i > 0) this.byte(COMMA);
        this.literal(NAME);
        this.utf8Text(JSON.stringify(sorted[i]!.name));
        this.literal(XATTR_VALUE);
        this.quotedAscii(sorted[i]!.value.toString('base64'));
        this.byte(CLOSE_BRACE);
      }
      this.byte(CLOSE_BRACKET);
    }
    this.byte(CLOSE_BRACE);
  }

  /**
   * Name or link target: `key` and a JSON string when the bytes are well-formed UTF-8, else
   * `bytesKey` and their base64. A string with nothing to escape (no control character, `"` or
   * `\`) is its bytes as they are; most names are that, and ASCII, which needs no UTF-8 check.
   */
  private bytesMember(key: Buffer, bytesKey: Buffer, bytes: Buffer): void {
    let escapes = false;
    let ascii = true;
    for (let i = 0; i < bytes.length; i++) {
      const byte = bytes[i]!;
      if (byte < 0x20 || byte === QUOTE || byte === BACKSLASH) {
        escapes = true;
        break;
      }
      if (byte >= 0x80) ascii = false;
    }
    if (!escapes && ascii) {
      this.literal(key);
      this.quotedBytes(bytes);
    } else if (!isUtf8(bytes)) {
      this.literal(bytesKey);
      this.quotedAscii(bytes.toString('base64'));
    } else if (!escapes) {
      this.literal(key);
      this.quotedBytes(bytes);
    } else {
      this.literal(key);
      this.utf8Text(JSON.stringify(bytes.toString('utf8')));
    }
  }

  private room(bytes: number): void {
    if (this.pos + bytes <= this.out.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(2 * this.out.length, this.pos + bytes));
    this.out.copy(bigger, 0, 0, this.pos);
    this.out = bigger;
  }

  private byte(byte: number): void {
    this.room(1);
    this.out[this.pos++] = byte;
  }

  private literal(bytes: Buffer): void {
    this.room(bytes.length);
    const { out, pos } = this;
    for (let i = 0; i < bytes.length; i++) out[pos + i] = bytes[i]!;
    this.pos = pos + bytes.length;
  }

  private quotedBytes(bytes: Buffer): void {
    this.byte(QUOTE);
    this.literal(bytes);
    this.byte(QUOTE);
  }

  /** Text of ASCII characters only (digits, base64). */
  private ascii(text: string): void {
    this.room(text.length);
    const { out, pos } = this;
    for (let i = 0; i < text.length; i++) out[pos + i] = text.charCodeAt(i);
    this.pos = pos + text.length;
  }

  private quotedAscii(text: string): void {
    this.byte(QUOTE);
    this.ascii(text);
    this.byte(QUOTE);
  }

  private utf8Text(text: string): void {
    this.room(3 * text.length);
    this.pos += this.out.write(text, this.pos, 'utf8');
  }

  /** A number as JSON.stringify writes it: the digits of a non-negative safe integer written here, anything else as String() gives it. */
  private integer(n: number): void {
    if (!(Number.isSafeInteger(n) && n >= 0)) {
      this.ascii(Number.isFinite(n) ? String(n) : 'null');
      return;
    }
    let digits = 1;
    for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    this.room(digits);
    let at = this.pos + digits;
    this.pos = at;
    let rest = n;
    do {
      this.out[--at] = 0x30 + (rest % 10);
      rest = Math.floor(rest / 10);
    } while (rest > 0);
  }

  private blobId(id: Buffer): void {
    this.room(66);
    const { out } = this;
    let at = this.pos;
    out[at++] = QUOTE;
    for (let i = 0; i < id.length; i++) {
      out[at++] = HEX_DIGITS[id[i]! >> 4]!;
      out[at++] = HEX_DIGITS[id[i]! & 15]!;
    }
    out[at++] = QUOTE;
    this.pos = at;
  }
}

/** Canonical bytes of a tree; `nodes` are sorted here, and duplicate names are refused. */
export function encodeTree(nodes: TreeNode[]): Buffer {
  for (const node of nodes) {
    // What decodeTree would refuse must never be written: such a tree could not be restored.
    if (!isSafeName(node.name)) throw new Error(`cannot store entry name ${JSON.stringify(node.name.toString())}`);
    if ((node.type === 'file') !== (node.content !== undefined) || (node.type === 'dir') !== (node.subtree !== undefined)) {
      throw new Error(`entry '${node.name.toString()}' of type ${node.type} has the wrong content fields`);
    }
    if (node.sha256 !== undefined && (node.type !== 'file' || node.sha256.length !== 32)) throw new Error(`entry '${node.name.toString()}' has a misplaced or malformed sha256`);
  }
  return new CanonicalTreeWriter().tree(sortedByName(nodes));
}

/** `nodes` by name bytes (the archiver passes them sorted already: then they are only checked); duplicate names are refused. */
function sortedByName(nodes: TreeNode[]): TreeNode[] {
  let ascending = true;
  for (let i = 1; i < nodes.length && ascending; i++) ascending = compareNames(nodes[i - 1]!.name, nodes[i]!.name) < 0;
  if (ascending) return nodes;
  const sorted = [...nodes].sort((a, b) => compareNames(a.name, b.name));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i - 1]!.name.equals(sorted[i]!.name)) throw new Error(`two entries named '${sorted[i]!.name.toString()}' in one directory`);
  }
  return sorted;
}

/**
 * decodeTree: the bytes read as the canonical form by CanonicalTreeReader when they are in it
 * (every tree bh writes is), else by decodeAnyTree, which accepts any JSON that means a tree
 * and says what is wrong with the rest.
 */
export function decodeTree(bytes: Buffer, what: string): TreeNode[] {
  return new CanonicalTreeReader(bytes).read() ?? decodeAnyTree(bytes, what);
}

/** Thrown inside CanonicalTreeReader when the bytes leave the canonical form (made once: throwing it is cheap). */
const NOT_CANONICAL = new Error('tree is not in the canonical form');

/** Value of a lowercase hex digit by character code; -1 for every other byte. */
const HEX_VALUE = new Int8Array(256).fill(-1);
for (let digit = 0; digit < 16; digit++) HEX_VALUE['0123456789abcdef'.charCodeAt(digit)] = digit;

const TEN_TO_15 = 10n ** 15n;

/** The decimal fields, each remembered by CanonicalTreeReader.decimalAfter. */
const enum DecimalField {
  Mtime,
  Ctime,
  Inode,
  Device,
  Rdev,
}

/**
 * Reads a tree in exactly the form encodeTree writes (§6.1: keys in order, no whitespace, no
 * escapes, type-specific keys only on their type) straight from its bytes, without JSON.parse
 * and the per-node validation of its objects, which were most of a no-change backup's
 * main-thread time (bench/tree-codec.mjs). At anything else (other key order, whitespace,
 * escapes, numbers in other spellings, invalid UTF-8, an unsafe name, names out of order, a
 * malformed value) read() gives up and returns undefined, and decodeTree decodes the bytes the
 * general way, which decides. So what this reader returns is what decodeAnyTree returns for the
 * same bytes, and it never refuses anything itself.
 */
class CanonicalTreeReader {
  private pos = 0;
  /** The last string read: bytes [stringStart, stringEnd), and whether all of them are ASCII. */
  private stringStart = 0;
  private stringEnd = 0;
  private stringAscii = true;
  /** Per DecimalField, where its last value's digits were in the bytes and the value: neighbours share the device and often the times. */
  private readonly lastStart = [0, 0, 0, 0, 0];
  private readonly lastEnd = [0, 0, 0, 0, 0];
  private readonly lastValue = [0n, 0n, 0n, 0n, 0n];

  constructor(private readonly bytes: Buffer) {}

  read(): TreeNode[] | undefined {
    try {
      return this.tree();
    } catch (error) {
      if (error === NOT_CANONICAL) return undefined;
      throw error;
    }
  }

  private tree(): TreeNode[] {
    const nodes: TreeNode[] = [];
    this.expect(TREE_START);
    if (this.bytes[this.pos] !== CLOSE_BRACKET) {
      for (;;) {
        const node = this.node();
        if (!isSafeName(node.name) || (nodes.length > 0 && compareNames(nodes[nodes.length - 1]!.name, node.name) >= 0)) throw NOT_CANONICAL;
        nodes.push(node);
        if (this.bytes[this.pos] !== COMMA) break;
        this.pos++;
      }
    }
    this.expect(TREE_END);
    if (this.pos !== this.bytes.length) throw NOT_CANONICAL;
    return nodes;
  }

  private node(): TreeNode {
    let name: Buffer;
    if (this.skip(NAME)) name = this.utf8Bytes();
    else {
      this.expect(NAME_BYTES);
      name = this.base64Bytes();
    }
    const type = this.type();
    const node: TreeNode = {
      name,
      type,
      mode: this.integer() & 0o7777,
      uid: this.integerAfter(UID),
      gid: this.integerAfter(GID),
      mtimeNs: this.decimalAfter(MTIME, DecimalField.Mtime),
      ctimeNs: this.decimalAfter(CTIME, DecimalField.Ctime),
      inode: this.decimalAfter(INODE, DecimalField.Inode),
      device: this.decimalAfter(DEVICE, DecimalField.Device),
      links: this.integerAfter(LINKS),
      size: this.integerAfter(SIZE),
    };
    switch (type) {
      case 'file':
        this.expect(CONTENT);
        node.content = [];
        if (this.bytes[this.pos] !== CLOSE_BRACKET) {
          for (;;) {
            node.content.push(this.blobId());
            if (this.bytes[this.pos] !== COMMA) break;
            this.pos++;
          }
        }
        this.expectByte(CLOSE_BRACKET);
        if (this.skip(SHA256)) node.sha256 = this.blobId();
        break;
      case 'dir':
        this.expect(SUBTREE);
        node.subtree = this.blobId();
        break;
      case 'symlink':
        if (this.skip(LINKTARGET)) node.linkTarget = this.utf8Bytes();
        else {
          this.expect(LINKTARGET_BYTES);
          node.linkTarget = this.base64Bytes();
        }
        break;
      case 'chardev':
      case 'blockdev':
        node.rdev = this.decimalAfter(RDEV, DecimalField.Rdev);
        break;
      default:
        break;
    }
    if (this.skip(XATTRS)) node.xattrs = this.xattrs();
    this.expectByte(CLOSE_BRACE);
    return node;
  }

  private xattrs(): Xattr[] {
    const xattrs: Xattr[] = [];
    if (this.bytes[this.pos] !== CLOSE_BRACKET) {
      for (;;) {
        this.expect(NAME);
        this.string();
        const name = this.bytes.toString('utf8', this.stringStart, this.stringEnd);
        this.expect(XATTR_VALUE);
        xattrs.push({ name, value: this.base64Bytes() });
        this.expectByte(CLOSE_BRACE);
        if (this.bytes[this.pos] !== COMMA) break;
        this.pos++;
      }
    }
    this.expectByte(CLOSE_BRACKET);
    return xattrs;
  }

  /** Whether `literal` comes next; if so, moves past it. */
  private skip(literal: Buffer): boolean {
    const { bytes, pos } = this;
    if (pos + literal.length > bytes.length) return false;
    for (let i = 0; i < literal.length; i++) {
      if (bytes[pos + i] !== literal[i]) return false;
    }
    this.pos = pos + literal.length;
    return true;
  }

  private expect(literal: Buffer): void {
    if (!this.skip(literal)) throw NOT_CANONICAL;
  }

  private expectByte(byte: number): void {
    if (this.bytes[this.pos] !== byte) throw NOT_CANONICAL;
    this.pos++;
  }

  private type(): NodeType {
    for (const [type, member] of TYPE_MEMBERS) {
      if (this.skip(member)) return type;
    }
    throw NOT_CANONICAL;
  }

  /** A JSON number in its plain spelling (0, or digits without a leading zero) that is a safe integer. */
  private integer(): number {
    const bytes = this.bytes;
    const start = this.pos;
    let pos = start;
    let value = 0;
    let byte = bytes[pos];
    if (byte === 0x30 /* 0 */) pos++;
    else {
      while (byte !== undefined && byte >= 0x30 && byte <= 0x39) {
        value = value * 10 + (byte - 0x30);
        byte = bytes[++pos];
      }
      // Past 2^53 the sum may round, but never below 2^53, which is not safe.
      if (pos === start || pos - start > 16 || !Number.isSafeInteger(value)) throw NOT_CANONICAL;
    }
    // A fraction, an exponent or a digit after a leading 0 cannot match the literal that must come next.
    this.pos = pos;
    return value;
  }

  private integerAfter(literal: Buffer): number {
    this.expect(literal);
    return this.integer();
  }

  /** A JSON string `-?[0-9]{1,20}`, as decodeAnyTree reads it (BigInt of the digits). */
  private decimalAfter(literal: Buffer, field: DecimalField): bigint {
    this.expect(literal);
    const bytes = this.bytes;
    if (bytes[this.pos] !== QUOTE) throw NOT_CANONICAL;
    const start = this.pos + 1;
    const negative = bytes[start] === 0x2d; /* - */
    const digitsStart = negative ? start + 1 : start;
    let end = digitsStart;
    for (let byte = bytes[end]; byte !== undefined && byte >= 0x30 && byte <= 0x39; byte = bytes[++end]);
    if (end === digitsStart || end - digitsStart > 20 || bytes[end] !== QUOTE) throw NOT_CANONICAL;
    this.pos = end + 1;
    if (this.sameAsLast(field, start, end)) return this.lastValue[field]!;
    let value: bigint;
    // Doubles hold 15 digits exactly; longer ones (nanosecond times) in two parts.
    const split = Math.max(digitsStart, end - 15);
    let high = 0;
    let low = 0;
    for (let i = digitsStart; i < split; i++) high = high * 10 + (bytes[i]! - 0x30);
    for (let i = split; i < end; i++) low = low * 10 + (bytes[i]! - 0x30);
    value = split > digitsStart ? BigInt(high) * TEN_TO_15 + BigInt(low) : BigInt(low);
    if (negative) value = -value;
    this.lastStart[field] = start;
    this.lastEnd[field] = end;
    this.lastValue[field] = value;
    return value;
  }

  /** Whether bytes [start, end) are those of the field's last value (compared here: Buffer.compare's call costs more). */
  private sameAsLast(field: DecimalField, start: number, end: number): boolean {
    const lastStart = this.lastStart[field]!;
    if (end - start !== this.lastEnd[field]! - lastStart) return false;
    const bytes = this.bytes;
    for (let i = 0; i < end - start; i++) {
      if (bytes[start + i] !== bytes[lastStart + i]) return false;
    }
    return true;
  }

  /** A blob id (or another SHA-256 value): a JSON string of 64 lowercase hex digits. */
  private blobId(): Buffer {
    const bytes = this.bytes;
    const pos = this.pos;
    if (bytes[pos] !== QUOTE || bytes[pos + 65] !== QUOTE) throw NOT_CANONICAL;
    const id = Buffer.allocUnsafe(32);
    for (let i = 0; i < 32; i++) {
      const high = HEX_VALUE[bytes[pos + 1 + 2 * i]!]!;
      const low = HEX_VALUE[bytes[pos + 2 + 2 * i]!]!;
      if ((high | low) < 0) throw NOT_CANONICAL;
      id[i] = (high << 4) | low;
    }
    this.pos = pos + 66;
    return id;
  }

  /**
   * A JSON string without escapes or control characters, whose bytes are well-formed UTF-8:
   * those bytes are exactly the UTF-8 of the string JSON.parse would give.
   */
  private string(): void {
    const bytes = this.bytes;
    if (bytes[this.pos] !== QUOTE) throw NOT_CANONICAL;
    const start = this.pos + 1;
    let ascii = true;
    let pos = start;
    for (;;) {
      const byte = bytes[pos];
      if (byte === QUOTE) break;
      if (byte === undefined || byte < 0x20 || byte === BACKSLASH) throw NOT_CANONICAL;
      if (byte >= 0x80) ascii = false;
      pos++;
    }
    if (!ascii && !isUtf8(bytes.subarray(start, pos))) throw NOT_CANONICAL;
    this.stringStart = start;
    this.stringEnd = pos;
    this.stringAscii = ascii;
    this.pos = pos + 1;
  }

  /** A string's UTF-8 bytes, copied (a name must not keep the whole tree's buffer alive). */
  private utf8Bytes(): Buffer {
    this.string();
    const { bytes, stringStart, stringEnd } = this;
    const copy = Buffer.allocUnsafe(stringEnd - stringStart);
    for (let i = stringStart; i < stringEnd; i++) copy[i - stringStart] = bytes[i]!;
    return copy;
  }

  /** A string's base64, decoded as decodeAnyTree does (Buffer.from). */
  private base64Bytes(): Buffer {
    this.string();
    if (!this.stringAscii) throw NOT_CANONICAL;
    return Buffer.from(this.bytes.toString('latin1', this.stringStart, this.stringEnd), 'base64');
  }
}

const HEX64 = /^[0-9a-f]{64}$/;
const DECIMAL = /^-?[0-9]{1,20}$/;

/** Any JSON that means a tree (the old reader, kept as it was: it decides what is refused and why, §6.2). */
function decodeAnyTree(bytes: Buffer, what: string): TreeNode[] {
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
      if (raw['sha256'] !== undefined) node.sha256 = typeof raw['sha256'] === 'string' && HEX64.test(raw['sha256']) ? Buffer.from(raw['sha256'], 'hex') : fail(`file '${name.toString()}' has a malformed sha256`);
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
