/**
 * Properties of the canonical tree encoding (docs/FORMAT.md §6) and the refusals of decodeTree.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { FormatError } from '../src/repo/errors.js';
import { compareNames, decodeTree, encodeTree, isSafeName, sameNode, type NodeType, type TreeNode, type Xattr } from '../src/snapshot/tree.js';

// ---- arbitraries -----------------------------------------------------------------------------

const SLASH = 0x2f;
const NUL = 0x00;

/** 1..255 arbitrary bytes other than '/' and NUL, never "." or "..": often invalid UTF-8. */
const byteName = fc
  .uint8Array({ minLength: 1, maxLength: 255 })
  .map((b) => Buffer.from(b.map((x) => (x === SLASH || x === NUL ? x + 1 : x))))
  .filter((b) => b.toString('latin1') !== '.' && b.toString('latin1') !== '..');

/** Valid UTF-8 names from arbitrary Unicode text (these encode as "name"). */
const textName = fc
  .string({ unit: 'grapheme', minLength: 1, maxLength: 60 })
  .map((s) => Buffer.from(s.replace(/[/\0]/g, '_'), 'utf8'))
  .filter((b) => b.length >= 1 && b.length <= 255 && b.toString() !== '.' && b.toString() !== '..');

/** Names made of few distinct bytes, so that shared prefixes and near-duplicates are common. */
const narrowName = fc.uint8Array({ minLength: 1, maxLength: 6 }).map((b) => Buffer.from(b.map((x) => [0x61, 0x62, 0xc3, 0xa9, 0xff, 0x2e][x % 6]!)))
  .filter((b) => b.toString('latin1') !== '.' && b.toString('latin1') !== '..');

/** ASCII names with what JSON must escape (quote, backslash, control characters) beside what it need not. */
const asciiName = fc
  .string({ unit: fc.constantFrom('a', 'Z', '0', '.', '-', ' ', '~', '"', '\\', '\n', '\t', '\b', '\x01', '\x1f', '\x7f'), minLength: 1, maxLength: 12 })
  .map((s) => Buffer.from(s, 'latin1'))
  .filter((b) => b.toString('latin1') !== '.' && b.toString('latin1') !== '..');

const nodeName = fc.oneof(byteName, textName, narrowName, asciiName);

const id32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b));
/**
 * Values around the 15-digit boundary (where doubles stop holding every integer) and the ends of
 * the range, often repeated between the entries of a tree (as a directory's times and device are).
 */
const time = fc.oneof(
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.constantFrom(0n, -1n, 999_999_999_999_999n, 1_000_000_000_000_000n, -1_000_000_000_000_000n, 1_700_000_000_123_456_789n, -(2n ** 63n), 2n ** 63n - 1n),
);
const u64 = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 2049n, 999_999_999_999_999n, 1_000_000_000_000_000n, 2n ** 64n - 1n));
const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });

const xattrs = fc.uniqueArray(
  fc.record({ name: fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }), value: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) }),
  { selector: (x) => x.name, maxLength: 5 },
);

const common = {
  mode: fc.integer({ min: 0, max: 0o7777 }),
  uid: u32,
  gid: u32,
  mtimeNs: time,
  ctimeNs: time,
  inode: u64,
  device: u64,
  links: u32,
};

function nodeOf(type: NodeType, extra: Record<string, fc.Arbitrary<unknown>>, size: fc.Arbitrary<number> = fc.constant(0)): fc.Arbitrary<Omit<TreeNode, 'name'>> {
  return fc.record(
    { type: fc.constant(type), ...common, size, ...extra, xattrs },
    { requiredKeys: ['type', 'mode', 'uid', 'gid', 'mtimeNs', 'ctimeNs', 'inode', 'device', 'links', 'size', ...Object.keys(extra)] as never },
  ) as fc.Arbitrary<Omit<TreeNode, 'name'>>;
}

const nodeBody = fc.oneof(
  nodeOf('file', { content: fc.array(id32, { maxLength: 5 }), sha256: fc.option(id32, { nil: undefined }) }, fc.maxSafeNat()),
  nodeOf('dir', { subtree: id32 }),
  nodeOf('symlink', { linkTarget: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) }),
  nodeOf('chardev', { rdev: u64 }),
  nodeOf('blockdev', { rdev: u64 }),
  nodeOf('fifo', {}),
  nodeOf('socket', {}),
);

const node: fc.Arbitrary<TreeNode> = fc.tuple(nodeName, nodeBody).map(([name, body]) => ({ name, ...body }) as TreeNode);

/** Entries of one directory: distinct names, in arbitrary order. */
const nodes = fc.uniqueArray(node, { selector: (n) => n.name.toString('hex'), maxLength: 12 });

// ---- helpers -----------------------------------------------------------------------------------

const byName = (a: TreeNode, b: TreeNode): number => Buffer.compare(a.name, b.name);
const byXattrName = (a: Xattr, b: Xattr): number => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name));

/** What decoding should give back: entries by name bytes; no empty xattr list; xattrs compared as a set. */
function normalized(list: TreeNode[]): TreeNode[] {
  return [...list].sort(byName).map((n) => {
    const out: TreeNode = { ...n };
    if (!n.xattrs || n.xattrs.length === 0) delete out.xattrs;
    else out.xattrs = [...n.xattrs].sort(byXattrName);
    return out;
  });
}

/** A minimal valid node of type fifo, as JSON, with `overrides` applied (undefined deletes a key). */
function rawNode(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = { name: 'x', type: 'fifo', mode: 420, uid: 0, gid: 0, mtime: '0', ctime: '0', inode: '0', device: '0', links: 1, size: 0 };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete base[key];
    else base[key] = value;
  }
  return base;
}

const treeJson = (...list: unknown[]): Buffer => Buffer.from(JSON.stringify({ nodes: list }));

function expectFormatError(bytes: Buffer, why: RegExp): void {
  let caught: unknown;
  try {
    decodeTree(bytes, 'tree 1234');
  } catch (error) {
    caught = error;
  }
  expect(caught, `decodeTree accepted ${bytes.toString()}`).toBeInstanceOf(FormatError);
  expect((caught as Error).message).toMatch(/^tree 1234: /);
  expect((caught as Error).message).toMatch(why);
}

/** A one-node tree's bytes, or undefined for a node encodeTree refuses (a field swap can make one). */
function encodeTreeOrUndefined(n: TreeNode): Buffer | undefined {
  try {
    return encodeTree([n]);
  } catch {
    return undefined;
  }
}

// ---- the encoder as it was (the reference) -----------------------------------------------------

// encodeTree was JSON.stringify of one object per node (below, unchanged but for names); the
// encoding is part of the repository format (tree ids are HMACs of these bytes), so today's
// encodeTree must write exactly what this one writes, for every input, and refuse what it refused.

function referenceIsSafeName(name: Buffer): boolean {
  if (name.length === 0 || name.length > 255) return false;
  if (name.length === 1 && name[0] === 0x2e) return false;
  if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return false;
  return !name.includes(0x2f) && !name.includes(0x00);
}

function referenceIsUtf8(bytes: Buffer): boolean {
  return Buffer.from(bytes.toString('utf8'), 'utf8').equals(bytes);
}

function referencePutBytes(out: Record<string, unknown>, key: string, bytes: Buffer): void {
  if (referenceIsUtf8(bytes)) out[key] = bytes.toString('utf8');
  else out[`${key}_bytes`] = bytes.toString('base64');
}

function referenceEncodeNode(node: TreeNode): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  referencePutBytes(out, 'name', node.name);
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
  if (node.sha256) out['sha256'] = node.sha256.toString('hex');
  if (node.subtree) out['subtree'] = node.subtree.toString('hex');
  if (node.linkTarget) referencePutBytes(out, 'linktarget', node.linkTarget);
  if (node.rdev !== undefined) out['rdev'] = node.rdev.toString();
  if (node.xattrs && node.xattrs.length > 0) {
    out['xattrs'] = [...node.xattrs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((x) => ({ name: x.name, value: x.value.toString('base64') }));
  }
  return out;
}

function referenceEncodeTree(nodes: TreeNode[]): Buffer {
  for (const node of nodes) {
    if (!referenceIsSafeName(node.name)) throw new Error(`cannot store entry name ${JSON.stringify(node.name.toString())}`);
    if ((node.type === 'file') !== (node.content !== undefined) || (node.type === 'dir') !== (node.subtree !== undefined)) {
      throw new Error(`entry '${node.name.toString()}' of type ${node.type} has the wrong content fields`);
    }
  }
  const sorted = [...nodes].sort((a, b) => Buffer.compare(a.name, b.name));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i - 1]!.name.equals(sorted[i]!.name)) throw new Error(`two entries named '${sorted[i]!.name.toString()}' in one directory`);
  }
  return Buffer.from(JSON.stringify({ nodes: sorted.map(referenceEncodeNode) }));
}

/** The bytes `encode` gives for `list`, or the message it refuses it with. */
function encodeOutcome(encode: (list: TreeNode[]) => Buffer, list: TreeNode[]): { bytes: string } | { refused: string } {
  try {
    return { bytes: encode(list).toString('latin1') };
  } catch (error) {
    return { refused: (error as Error).message };
  }
}

/** What decodeTree gives for `bytes`: the nodes, or the FormatError's message. */
function decodeOutcome(bytes: Buffer): { nodes: TreeNode[] } | { refused: string } {
  try {
    return { nodes: decodeTree(bytes, 'tree 1234') };
  } catch (error) {
    expect(error).toBeInstanceOf(FormatError);
    return { refused: (error as Error).message };
  }
}

/**
 * What decodeTree's general reader (JSON.parse, then the checks of FORMAT.md §6.2) gives for
 * `bytes`: with a space after them the bytes mean the same JSON but are not in the canonical
 * form, so the canonical reader gives way to the general one.
 */
function generalDecodeOutcome(bytes: Buffer): { nodes: TreeNode[] } | { refused: string } {
  return decodeOutcome(Buffer.concat([bytes, Buffer.from(' ')]));
}

/** Bytes that matter to the canonical reader: JSON syntax, digits, hex digits and their near misses, UTF-8 lead and continuation bytes. */
const telling = fc.oneof(
  fc.constantFrom(...'0123456789abcdefABFg-",:{}[] .e/\\'.split('').map((c) => c.charCodeAt(0)), 0x00, 0x1f, 0x7f, 0x80, 0xbf, 0xc3, 0xe2, 0xed, 0xf0, 0xff),
  fc.integer({ min: 0, max: 255 }),
);

type Mutation = { kind: 'set' | 'insert'; at: number; byte: number } | { kind: 'delete' | 'truncate'; at: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: telling }) },
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: telling }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

function mutate(bytes: Buffer, m: Mutation): Buffer {
  const at = m.at % (bytes.length + 1);
  switch (m.kind) {
    case 'set': {
      const out = Buffer.from(bytes);
      if (at < out.length) out[at] = m.byte;
      return out;
    }
    case 'insert':
      return Buffer.concat([bytes.subarray(0, at), Buffer.of(m.byte), bytes.subarray(at)]);
    case 'delete':
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
    case 'truncate':
      return bytes.subarray(0, at);
  }
}

// ---- properties --------------------------------------------------------------------------------

describe('encodeTree / decodeTree', () => {
  it('round-trips any entries exactly (byte names, invalid UTF-8, negative times, arbitrary link targets)', () => {
    fc.assert(
      fc.property(nodes, (list) => {
        const encoded = encodeTree(list);
        const decoded = decodeTree(encoded, 'tree');
        const expected = normalized(list);
        expect(decoded.map((n) => n.name.toString('hex'))).toEqual(expected.map((n) => n.name.toString('hex')));
        expect(normalized(decoded)).toEqual(expected);
        // Re-encoding what was decoded gives the same bytes (one encoding per content).
        expect(encodeTree(decoded).equals(encoded)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('sameNode holds exactly when two nodes encode to the same bytes (one field changed, or none)', () => {
    // b is a copy of a (xattrs reversed) with at most one field replaced by another arbitrary node's.
    const fields = ['name', 'type', 'mode', 'uid', 'gid', 'mtimeNs', 'ctimeNs', 'inode', 'device', 'links', 'size', 'content', 'subtree', 'linkTarget', 'rdev', 'xattrs'] as const;
    fc.assert(
      fc.property(node, node, fc.integer({ min: 0, max: fields.length }), (a, other, which) => {
        const b: TreeNode = { ...a, xattrs: a.xattrs && [...a.xattrs].reverse() };
        const field = fields[which];
        if (field !== undefined) (b as unknown as Record<string, unknown>)[field] = other[field];
        const bytesAlike = encodeTreeOrUndefined(a)?.equals(encodeTreeOrUndefined(b) ?? Buffer.alloc(0)) ?? false;
        expect(sameNode(a, b)).toBe(bytesAlike);
      }),
      { numRuns: 2000 },
    );
  });

  it('is canonical: input order and xattr order do not change the bytes', () => {
    fc.assert(
      fc.property(
        nodes.chain((list) => fc.tuple(fc.constant(list), fc.shuffledSubarray(list, { minLength: list.length, maxLength: list.length }))),
        ([list, shuffled]) => {
          const encoded = encodeTree(list);
          expect(encodeTree(shuffled).equals(encoded)).toBe(true);
          const xattrsReversed = list.map((n) => (n.xattrs ? { ...n, xattrs: [...n.xattrs].reverse() } : n));
          expect(encodeTree(xattrsReversed).equals(encoded)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('writes valid UTF-8 names as "name" and anything else as base64 "name_bytes"', () => {
    fc.assert(
      fc.property(node, (n) => {
        const doc = JSON.parse(encodeTree([n]).toString('utf8')) as { nodes: Record<string, unknown>[] };
        const entry = doc.nodes[0]!;
        const text = n.name.toString('utf8');
        if (Buffer.from(text, 'utf8').equals(n.name)) {
          expect(entry['name']).toBe(text);
          expect(entry).not.toHaveProperty('name_bytes');
        } else {
          expect(entry['name_bytes']).toBe(n.name.toString('base64'));
          expect(entry).not.toHaveProperty('name');
        }
        expect(Object.keys(entry)[0]).toMatch(/^name(_bytes)?$/);
        expect(entry['mtime']).toBe(n.mtimeNs.toString());
      }),
      { numRuns: 300 },
    );
  });

  it('sorts entries by name bytes, not by JavaScript string order', () => {
    // U+FF5E ("～", EF BD 9E) sorts before U+1F600 ("😀", F0 9F 98 80) by bytes, after it by UTF-16 units.
    const mk = (name: string): TreeNode => ({ name: Buffer.from(name), type: 'fifo', mode: 0, uid: 0, gid: 0, mtimeNs: 0n, ctimeNs: 0n, inode: 0n, device: 0n, links: 1, size: 0 });
    const doc = JSON.parse(encodeTree([mk('😀'), mk('～'), mk('a'), mk('B')]).toString()) as { nodes: { name: string }[] };
    expect(doc.nodes.map((n) => n.name)).toEqual(['B', 'a', '～', '😀']);
  });

  it('refuses to encode two entries with one name', () => {
    const mk = (): TreeNode => ({ name: Buffer.from('same'), type: 'fifo', mode: 0, uid: 0, gid: 0, mtimeNs: 0n, ctimeNs: 0n, inode: 0n, device: 0n, links: 1, size: 0 });
    expect(() => encodeTree([mk(), mk()])).toThrow(/two entries named 'same'/);
  });
});

describe('the codec against its reference', () => {
  const unsafeName = fc.constantFrom(Buffer.from('.'), Buffer.from('..'), Buffer.alloc(0), Buffer.from('a/b'), Buffer.from('x\0'), Buffer.alloc(256, 0x61));
  /** Entries as the archiver gives them (sorted, distinct) or not: any order, duplicate names, now and then an unsafe one. */
  const anyList = fc.tuple(
    fc.array(fc.tuple(node, fc.option(unsafeName, { freq: 30 })).map(([n, unsafe]) => (unsafe ? { ...n, name: unsafe } : n)), { maxLength: 12 }),
    fc.boolean(),
  ).map(([list, sorted]) => (sorted ? [...list].sort(byName) : list));

  it('encodeTree writes exactly the reference bytes, or refuses with the reference message', () => {
    fc.assert(
      fc.property(anyList, (list) => {
        expect(encodeOutcome(encodeTree, list)).toEqual(encodeOutcome(referenceEncodeTree, list));
      }),
      { numRuns: 1500 },
    );
  });

  // Names and xattr names JSON writes without escapes: trees of them are what the canonical reader reads itself.
  const unescaped = (text: string): string => text.replace(/[\x00-\x1f"\\]/g, '_');
  const unescapedBytes = (bytes: Buffer): Buffer => Buffer.from(bytes.map((byte) => (byte < 0x20 || byte === 0x22 || byte === 0x5c ? 0x5f : byte)));
  const plainNode = node.map((n) => ({
    ...n,
    name: unescapedBytes(n.name),
    ...(n.linkTarget && { linkTarget: unescapedBytes(n.linkTarget) }),
    ...(n.xattrs && { xattrs: n.xattrs.map((x) => ({ ...x, name: unescaped(x.name) })) }),
  }));
  const plainNodes = fc.uniqueArray(plainNode, { selector: (n) => n.name.toString('hex'), maxLength: 12 });

  it('encodeTree writes the reference bytes for large directories too (its buffer grows, and is kept only when small)', () => {
    const entries = fc.sample(node, { numRuns: 6000, seed: 42 });
    for (const count of [300, 6000, 10]) {
      const list = entries.slice(0, count).map((n, i) => ({ ...n, name: Buffer.concat([Buffer.from(`${i}-`), n.name.subarray(0, 200)]) }));
      const bytes = encodeTree(list);
      expect(bytes.equals(referenceEncodeTree(list))).toBe(true);
      expect(decodeTree(bytes, 'tree')).toHaveLength(count);
    }
  });

  it('decodeTree reads canonical trees, and any bytes near them, as its general reader does', () => {
    fc.assert(
      fc.property(plainNodes, fc.array(mutation, { maxLength: 2 }), (list, mutations) => {
        const bytes = mutations.reduce(mutate, encodeTree(list));
        expect(decodeOutcome(bytes)).toEqual(generalDecodeOutcome(bytes));
      }),
      { numRuns: 3000 },
    );
  });

  it('decodeTree reads the edges of the canonical form as its general reader does', () => {
    const withBytes = (json: Buffer, text: string, bytes: Buffer): Buffer => {
      const at = json.indexOf(text);
      return Buffer.concat([json.subarray(0, at), bytes, json.subarray(at + text.length)]);
    };
    const fifo = treeJson(rawNode({ name: 'x\u0001' }));
    const cases: [Buffer, { nodes: Partial<TreeNode>[] } | RegExp][] = [
      [treeJson(rawNode({ size: Number.MAX_SAFE_INTEGER })), { nodes: [{ size: Number.MAX_SAFE_INTEGER }] }],
      [treeJson(rawNode({ size: Number.MAX_SAFE_INTEGER + 1 })), /'size' is not a non-negative integer/],
      [treeJson(rawNode({ links: 12345678901234567 })), /'links' is not a non-negative integer/],
      [treeJson(rawNode({ mode: 0 })), { nodes: [{ mode: 0 }] }],
      [treeJson(rawNode({ mode: 0o177777 })), { nodes: [{ mode: 0o7777 }] }],
      [treeJson(rawNode({ mtime: '-0', ctime: '007' })), { nodes: [{ mtimeNs: 0n, ctimeNs: 7n }] }],
      [treeJson(rawNode({ mtime: '999999999999999', ctime: '1000000000000000' })), { nodes: [{ mtimeNs: 999999999999999n, ctimeNs: 1000000000000000n }] }],
      [treeJson(rawNode({ inode: '99999999999999999999', device: '-99999999999999999999' })), { nodes: [{ inode: 10n ** 20n - 1n, device: -(10n ** 20n) + 1n }] }],
      [treeJson(rawNode({ inode: '999999999999999999999' })), /'inode' is not a decimal integer/],
      [treeJson(rawNode({ device: '-' })), /'device' is not a decimal integer/],
      // Invalid UTF-8 inside a string: JSON.parse reads it as U+FFFD.
      [withBytes(treeJson(rawNode({ name: 'a_' })), 'a_', Buffer.from([0x61, 0x80])), { nodes: [{ name: Buffer.from('a\ufffd') }] }],
      [withBytes(treeJson(rawNode({ name: undefined, name_bytes: 'YQ_=' })), 'YQ_=', Buffer.from('YQé=')), { nodes: [{ name: Buffer.from('a') }] }],
      [withBytes(fifo, '\\u0001', Buffer.from([0x01])), /not valid JSON/],
      [Buffer.concat([treeJson(rawNode()), Buffer.from('x')]), /not valid JSON/],
      [Buffer.concat([treeJson(rawNode()), Buffer.from('\n')]), { nodes: [{ name: Buffer.from('x') }] }],
      [treeJson(rawNode({ content: ['11'.repeat(32)], rdev: 'x' })), { nodes: [{ type: 'fifo' }] }],
      [treeJson(rawNode({ xattrs: [] })), { nodes: [{ xattrs: [] }] }],
      [treeJson(rawNode({ type: 'symlink', linktarget: '' })), { nodes: [{ linkTarget: Buffer.alloc(0) }] }],
    ];
    for (const [bytes, expected] of cases) {
      const outcome = decodeOutcome(bytes);
      expect(outcome, bytes.toString()).toEqual(generalDecodeOutcome(bytes));
      if (expected instanceof RegExp) expect(outcome).toMatchObject({ refused: expect.stringMatching(expected) });
      else expect(outcome).toMatchObject(expected);
    }
  });

  it('isSafeName and compareNames answer as before (includes, Buffer.compare)', () => {
    const dotty = fc.oneof(
      fc.uint8Array({ maxLength: 4 }).map((b) => Buffer.from(b.map((x) => [0x2e, 0x2f, 0x00, 0x61][x % 4]!))),
      fc.integer({ min: 253, max: 257 }).chain((length) => fc.uint8Array({ minLength: length, maxLength: length }).map((b) => Buffer.from(b))),
      nodeName,
    );
    fc.assert(
      fc.property(dotty, dotty, (a, b) => {
        expect(isSafeName(a)).toBe(referenceIsSafeName(a));
        expect(compareNames(a, b)).toBe(Buffer.compare(a, b));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('decodeTree refuses', () => {
  const unsafe: [string, Buffer][] = [
    ["'..'", Buffer.from('..')],
    ["'.'", Buffer.from('.')],
    ['an empty name', Buffer.alloc(0)],
    ["'a/b'", Buffer.from('a/b')],
    ["'/abs'", Buffer.from('/abs')],
    ["'x\\0y'", Buffer.from('x\0y')],
    ["'/'", Buffer.from('/')],
    ["'../etc'", Buffer.from('../etc')],
    ['a 256-byte name', Buffer.alloc(256, 0x61)],
  ];

  for (const [label, name] of unsafe) {
    it(`the name ${label} as "name" and as "name_bytes"`, () => {
      expectFormatError(treeJson(rawNode({ name: name.toString('utf8') })), /refusing unsafe entry name/);
      expectFormatError(treeJson(rawNode({ name: undefined, name_bytes: name.toString('base64') })), /refusing unsafe entry name/);
    });
  }

  it('the unsafe names among other, valid entries', () => {
    expectFormatError(treeJson(rawNode({ name: 'a' }), rawNode({ name: '..' }), rawNode({ name: 'z' })), /refusing unsafe entry name "\.\."/);
  });

  it('unsafe names found by fast-check', () => {
    const bad = fc.oneof(
      fc.constantFrom('.', '..', ''),
      fc.tuple(fc.string({ maxLength: 10 }), fc.constantFrom('/', '\0'), fc.string({ maxLength: 10 })).map(([a, sep, b]) => a + sep + b),
    );
    fc.assert(
      fc.property(bad, fc.boolean(), (name, asBytes) => {
        const raw = asBytes ? rawNode({ name: undefined, name_bytes: Buffer.from(name).toString('base64') }) : rawNode({ name });
        expectFormatError(treeJson(raw), /refusing unsafe entry name/);
      }),
    );
  });

  it('a node without any name', () => {
    expectFormatError(treeJson(rawNode({ name: undefined })), /node has no name/);
  });

  it('entries out of order', () => {
    expectFormatError(treeJson(rawNode({ name: 'b' }), rawNode({ name: 'a' })), /not strictly sorted/);
    // Bytes order, not UTF-16 order: "😀" (F0…) must come after "～" (EF…).
    expectFormatError(treeJson(rawNode({ name: '😀' }), rawNode({ name: '～' })), /not strictly sorted/);
  });

  it('duplicate entries, also when one is spelled with name_bytes', () => {
    expectFormatError(treeJson(rawNode({ name: 'a' }), rawNode({ name: 'a' })), /not strictly sorted.*duplicate/);
    expectFormatError(treeJson(rawNode({ name: 'a' }), rawNode({ name: undefined, name_bytes: Buffer.from('a').toString('base64') })), /duplicate/);
  });

  it('unsorted or duplicated entries found by fast-check', () => {
    fc.assert(
      fc.property(nodes.filter((l) => l.length >= 2), fc.nat(), (list, pick) => {
        const doc = JSON.parse(encodeTree(list).toString()) as { nodes: unknown[] };
        const i = pick % (doc.nodes.length - 1);
        const swapped = [...doc.nodes];
        [swapped[i], swapped[i + 1]] = [swapped[i + 1], swapped[i]];
        expectFormatError(treeJson(...swapped), /not strictly sorted/);
        const duplicated = [...doc.nodes.slice(0, i + 1), doc.nodes[i], ...doc.nodes.slice(i + 1)];
        expectFormatError(treeJson(...duplicated), /not strictly sorted/);
      }),
      { numRuns: 100 },
    );
  });

  const malformedIds = ['', 'xyz', '00'.repeat(31), '00'.repeat(33), 'AB'.repeat(32), 'g'.repeat(64), ` ${'00'.repeat(32)}`];

  for (const bad of malformedIds) {
    it(`the malformed blob id ${JSON.stringify(bad.length > 12 ? bad.slice(0, 12) + '…' : bad)} in content and subtree`, () => {
      expectFormatError(treeJson(rawNode({ type: 'file', content: ['11'.repeat(32), bad] })), /malformed blob id/);
      expectFormatError(treeJson(rawNode({ type: 'dir', subtree: bad })), /malformed blob id/);
    });
  }

  it('blob ids that are not strings, and missing ones', () => {
    expectFormatError(treeJson(rawNode({ type: 'dir', subtree: 12 })), /malformed blob id/);
    expectFormatError(treeJson(rawNode({ type: 'dir' })), /malformed blob id/);
    expectFormatError(treeJson(rawNode({ type: 'file', content: [null] })), /malformed blob id/);
    expectFormatError(treeJson(rawNode({ type: 'file' })), /has no content list/);
    expectFormatError(treeJson(rawNode({ type: 'file', content: '00'.repeat(32) })), /has no content list/);
  });

  it('a null node, a null xattr, or both name and name_bytes, with a FormatError', () => {
    expectFormatError(Buffer.from('{"nodes":[null]}'), /not an object/);
    expectFormatError(treeJson(rawNode({ xattrs: [null] })), /malformed xattr/);
    expectFormatError(treeJson(rawNode({ name_bytes: 'YQ==' })), /both 'name' and 'name_bytes'/);
  });

  it('other malformed nodes, each with its reason', () => {
    expectFormatError(Buffer.from('{"nodes":['), /not valid JSON/);
    expectFormatError(Buffer.from('{"entries":[]}'), /no node list/);
    expectFormatError(Buffer.from('null'), /no node list/);
    expectFormatError(treeJson(rawNode({ type: 'door' })), /unknown type door/);
    expectFormatError(treeJson(rawNode({ mode: -1 })), /'mode' is not a non-negative integer/);
    expectFormatError(treeJson(rawNode({ uid: 1.5 })), /'uid' is not a non-negative integer/);
    expectFormatError(treeJson(rawNode({ size: '5' })), /'size' is not a non-negative integer/);
    expectFormatError(treeJson(rawNode({ mtime: 5 })), /'mtime' is not a decimal integer/);
    expectFormatError(treeJson(rawNode({ ctime: '1e9' })), /'ctime' is not a decimal integer/);
    expectFormatError(treeJson(rawNode({ inode: '0x10' })), /'inode' is not a decimal integer/);
    expectFormatError(treeJson(rawNode({ device: '' })), /'device' is not a decimal integer/);
    expectFormatError(treeJson(rawNode({ type: 'symlink' })), /symlink 'x' has no target/);
    expectFormatError(treeJson(rawNode({ type: 'chardev' })), /'rdev' is not a decimal integer/);
    expectFormatError(treeJson(rawNode({ xattrs: {} })), /xattrs is not a list/);
    expectFormatError(treeJson(rawNode({ xattrs: [{ name: 'user.a' }] })), /malformed xattr/);
  });
});
