/**
 * Test vectors for the repository format (docs/FORMAT.md), recomputed independently.
 *
 * Every expected value here is computed with @noble/hashes and @noble/ciphers (pure JS, no code
 * shared with bh, which uses node:crypto), or parsed by hand from the bytes bh wrote, following
 * docs/FORMAT.md only. The hex constants in VECTORS are repeated in docs/FORMAT.md ("Test
 * vectors") so that a second implementation can check itself against them.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gcm } from '@noble/ciphers/aes.js';
import { hmac } from '@noble/hashes/hmac.js';
import { scrypt } from '@noble/hashes/scrypt.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { afterAll, describe, expect, it } from 'vitest';
import { Decompressor } from 'zstd-napi';

import { LocalBackend } from '../src/backends/local.js';
import { chunkBuffer, gearTable } from '../src/chunker/index.js';
import { PayloadCodec } from '../src/repo/compression.js';
import { MasterKeys, seal } from '../src/repo/crypto.js';
import { openBlob, sealBlob } from '../src/repo/blob-codec.js';
import { openFile, sealFile } from '../src/repo/envelope.js';
import { decodeIndexFile, encodeIndexFile } from '../src/repo/index-file.js';
import { createKeyFile, decodeKeyFile, deriveKey, unsealKeyFile } from '../src/repo/keyfile.js';
import { PackBuilder, parsePackTail } from '../src/repo/pack.js';
import { newLockRecord } from '../src/repo/lock.js';
import { Repository } from '../src/repo/repository.js';
import { validateSnapshot } from '../src/snapshot/snapshot.js';
import { decodeTree, encodeTree, type TreeNode } from '../src/snapshot/tree.js';

// ---- helpers (independent of src/) ----------------------------------------------------------

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
const cat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
/** n bytes start, start+1, … (mod 256). */
const seq = (n: number, start = 0): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
const u32le = (b: Uint8Array, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
const mac = (key: Uint8Array, ...parts: Uint8Array[]): Uint8Array => hmac(sha256, key, cat(...parts));

const TYPE = { data: 0, tree: 1 } as const;
const KIND = { index: 1, snapshot: 2, lock: 3, packHeader: 4 } as const;

/** The three working keys, derived with noble from a master secret (FORMAT.md §2). */
function nobleKeys(master: Uint8Array) {
  return {
    idKey: mac(master, ascii('bh/v1/blob-id')),
    encryptionKey: mac(master, ascii('bh/v1/encryption')),
    chunkerSeed: mac(master, ascii('bh/v1/chunker-seed')),
  };
}
type NobleKeys = ReturnType<typeof nobleKeys>;

/** Opens nonce(12) ‖ ct ‖ tag(16) with noble's AES-256-GCM. */
function nobleOpen(key: Uint8Array, envelope: Uint8Array, aad: Uint8Array): Uint8Array {
  return gcm(key, envelope.subarray(0, 12), aad).decrypt(envelope.subarray(12));
}

function nobleOpenBlob(k: NobleKeys, type: keyof typeof TYPE, id: Uint8Array, envelope: Uint8Array): Uint8Array {
  const subkey = mac(k.encryptionKey, ascii('blob'), Uint8Array.of(TYPE[type]), id);
  return nobleOpen(subkey, envelope, cat(Uint8Array.of(TYPE[type]), id));
}

/** Opens salt(16) ‖ nonce(12) ‖ ct ‖ tag(16) (FORMAT.md §3, file envelope). */
function nobleOpenFile(k: NobleKeys, kind: keyof typeof KIND, bytes: Uint8Array): Uint8Array {
  const salt = bytes.subarray(0, 16);
  const subkey = mac(k.encryptionKey, ascii('file'), Uint8Array.of(KIND[kind]), salt);
  return nobleOpen(subkey, bytes.subarray(16), Uint8Array.of(KIND[kind]));
}

/** Undoes the payload flag byte (FORMAT.md §3): 0 raw, 1 one zstd frame. */
const zstd = new Decompressor();
function unflag(payload: Uint8Array): Uint8Array {
  if (payload[0] === 0) return payload.subarray(1);
  if (payload[0] === 1) return zstd.decompress(Buffer.from(payload.subarray(1)));
  throw new Error(`unknown payload flag ${payload[0]}`);
}

interface HandPackEntry {
  type: number;
  length: number;
  rawLength: number;
  id: string;
  offset: number;
}

/** Parses a whole pack by hand (FORMAT.md §4). */
function parsePackByHand(k: NobleKeys, pack: Uint8Array): HandPackEntry[] {
  const headerLength = u32le(pack, pack.length - 4);
  const sealed = pack.subarray(pack.length - 4 - headerLength, pack.length - 4);
  const header = nobleOpenFile(k, 'packHeader', sealed);
  expect(header[0]).toBe(0); // payload flag: raw, always
  expect(Buffer.from(header.subarray(1, 5)).toString('ascii')).toBe('BHP1');
  expect((header.length - 5) % 41).toBe(0);
  const entries: HandPackEntry[] = [];
  let offset = 0;
  for (let at = 5; at < header.length; at += 41) {
    const length = u32le(header, at + 1);
    entries.push({ type: header[at]!, length, rawLength: u32le(header, at + 5), id: hex(header.subarray(at + 9, at + 41)), offset });
    offset += length;
  }
  expect(offset + headerLength + 4).toBe(pack.length);
  return entries;
}

/**
 * Reads the structure of one zstd frame by hand (RFC 8878 §3.1.1): magic, frame header (no
 * dictionary), its content size, and blocks up to the last one, ending exactly at the frame's end
 * (with the checksum, if the header announces one). Decoding the blocks is left to zstd.
 */
function parseZstdFrameByHand(frame: Uint8Array): { contentSize: number; blocks: number; checksum: boolean } {
  expect(hex(frame.subarray(0, 4))).toBe('28b52ffd');
  const descriptor = frame[4]!;
  const sizeFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const checksum = (descriptor >> 2) & 1;
  expect((descriptor >> 3) & 1).toBe(0); // reserved bit
  expect(descriptor & 3).toBe(0); // no dictionary id
  let at = singleSegment ? 5 : 6; // a window descriptor byte unless single-segment
  const sizeBytes = [singleSegment, 2, 4, 8][sizeFlag]!;
  expect(sizeBytes).toBeGreaterThan(0); // bh's frames state their content size
  let contentSize = 0;
  for (let i = 0; i < sizeBytes; i++) contentSize += frame[at + i]! * 2 ** (8 * i);
  if (sizeBytes === 2) contentSize += 256;
  at += sizeBytes;
  let blocks = 0;
  for (let last = false; !last; blocks++) {
    const blockHeader = frame[at]! | (frame[at + 1]! << 8) | (frame[at + 2]! << 16);
    last = (blockHeader & 1) === 1;
    const type = (blockHeader >> 1) & 3; // 0 raw, 1 RLE (one byte), 2 compressed, 3 reserved
    expect(type).not.toBe(3);
    at += 3 + (type === 1 ? 1 : blockHeader >> 3);
  }
  if (checksum) at += 4;
  expect(at).toBe(frame.length);
  return { contentSize, blocks, checksum: checksum === 1 };
}

interface HandIndex {
  supersedes: string[];
  packs: { packId: string; blobs: { type: number; offset: number; length: number; rawLength: number; id: string }[] }[];
}

/** Parses an index body by hand (FORMAT.md §5). */
function parseIndexByHand(body: Uint8Array): HandIndex {
  expect(Buffer.from(body.subarray(0, 4)).toString('ascii')).toBe('BHX1');
  let at = 4;
  const supersededCount = u32le(body, at);
  at += 4;
  const supersedes: string[] = [];
  for (let i = 0; i < supersededCount; i++, at += 32) supersedes.push(hex(body.subarray(at, at + 32)));
  const packCount = u32le(body, at);
  at += 4;
  const packs: HandIndex['packs'] = [];
  for (let p = 0; p < packCount; p++) {
    const packId = hex(body.subarray(at, at + 32));
    const blobCount = u32le(body, at + 32);
    at += 36;
    const blobs: HandIndex['packs'][number]['blobs'] = [];
    for (let b = 0; b < blobCount; b++, at += 45) {
      blobs.push({ type: body[at]!, offset: u32le(body, at + 1), length: u32le(body, at + 5), rawLength: u32le(body, at + 9), id: hex(body.subarray(at + 13, at + 45)) });
    }
    packs.push({ packId, blobs });
  }
  expect(at).toBe(body.length);
  return { supersedes, packs };
}

// ---- the vectors (also in docs/FORMAT.md) ---------------------------------------------------

const MASTER = seq(32); // 00 01 02 … 1f

const VECTORS = {
  idKey: '23f7da8d141011fd645a55120711d27b51b927b7765cd4953b58c868af692e55',
  encryptionKey: 'fe207f30f8aa4c76ab24c30446ed437f2930f90f58f8d819fea3ad8c5ff5ec55',
  chunkerSeed: '198859b33ae55849735f0f146d10af55bde36ace51da2d2613915664708da8ff',
  /** HMAC-SHA-256(idKey, "hello"). */
  blobIdHello: 'f1826e5585f5fbfc141e77d4955896f60382ad92c68fe287112d1edb30c3f4ac',
  /** Subkey of data blob blobIdHello. */
  blobSubkeyHello: '3954f6abf7cb082f4e9712c988202d9b79b068ea15c51407c41b672ab64f9660',
  /** Data blob "hello": payload 00 ‖ "hello", nonce a0 a1 … ab. */
  blobEnvelopeHello: 'a0a1a2a3a4a5a6a7a8a9aaab5fd4f7f8ea41cdef630dfa049321927fd088eb1eac7a',
  /** File subkey, kind snapshot (2), salt 40 41 … 4f. */
  fileSubkeySnapshot: '657d4c2193d4c3351be51b35643c7a7ed5ffefd56a988106dd8302514daf52fd',
  /** Snapshot file envelope: salt 40…4f, nonce 60…6b, payload 00 ‖ "{}". */
  fileEnvelopeSnapshot: '404142434445464748494a4b4c4d4e4f606162636465666768696a6b281dbeda4a78a4791282fda2a800c05346c3ed',
  /** scrypt("correct horse battery staple", salt 80 81 … 9f, N=1024, r=8, p=1, dkLen=32). */
  scryptKey: '307452854bc1a6e7145e94e85ef52fccc60ee4e00d6146187f0a66664978cf7c',
  keySaltBase64: 'gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp8=',
  /** Key file "data": the master sealed under scryptKey with nonce 20 21 … 2b, AAD "bh/v1/key". */
  keyDataBase64: 'ICEiIyQlJicoKSordEvLHMbML6suUwv/o3acb5yUhq1y8OyrmaUYuDy3HfOup88ZsavNCtoSpbVvFhdE',
  /** Raw key file variant: HMAC-SHA-256(raw key c0 c1 … df, salt 80 … 9f). */
  rawKdfKey: '7437adf3ce20b6a152972442c6905b32ee6510ebeb74817f307a8938e0d085f9',
  /** gear[0..3] for the chunker seed above. */
  gearHead: [0x42dab697, 0xa3892823, 0xe615ced2, 0x81672b32],
  /** Chunk lengths of CHUNK_INPUT with min 64, avg 256, max 1024 and the seed above. */
  chunkLengths: [
    287, 71, 317, 294, 208, 247, 483, 407, 319, 284, 260, 274, 241, 431, 258, 304, 351, 345, 395, 482, 78, 304, 332, 265, 293, 277, 300, 290,
    292, 333, 310, 279, 105, 264, 278, 260, 380, 296, 207, 262, 89, 130, 257, 359, 365, 292, 371, 143, 261, 467, 622, 274, 289, 310, 272, 220,
  ],
} as const;

/** The vectors of whole stored files and their parts (FORMAT.md §11, wrapped there). */
const FILE_VECTORS = {
  /** ZSTD_CONTENT as bh stores it at level 3: flag 01 ‖ one zstd frame (zstd-napi, libzstd 1.5.7). */
  zstdPayload: '0128b52ffd20ac9d0100b402616c6c20776f726b20616e64206e6f20706c6179206d616b6573206a61636b20612064756c6c20626f790a0100f32e5565',
  /** HMAC-SHA-256(idKey, ZSTD_CONTENT). */
  zstdBlobId: '78ad97a4c4226c5875cdb540bb7b0b81b0e025d9ed3d5a0becfe76c94b68dd0e',
  /** Data blob ZSTD_CONTENT: payload zstdPayload, nonce b0 b1 … bb. */
  zstdBlobEnvelope:
    'b0b1b2b3b4b5b6b7b8b9babb42bcbc01b716a6ede7592d84b930de3563c4af569622b4d2e849a7886e42d69b16ab96bec87d888f27d2d5d0455fff941ea3a7ded4df78108f0d412a9970c7b0254547ae3545c615bbe33d3808',
  /** Payload of the header of the pack vector: 00 ‖ "BHP1" ‖ entry("hello") ‖ entry(ZSTD_CONTENT). */
  packHeaderPayload:
    '0042485031002200000005000000f1826e5585f5fbfc141e77d4955896f60382ad92c68fe287112d1edb30c3f4ac0059000000ac00000078ad97a4c4226c5875cdb540bb7b0b81b0e025d9ed3d5a0becfe76c94b68dd0e',
  /** A pack of the two data blobs above, its header sealed with salt 10 11 … 1f and nonce 30 31 … 3b. */
  pack:
    'a0a1a2a3a4a5a6a7a8a9aaab5fd4f7f8ea41cdef630dfa049321927fd088eb1eac7ab0b1b2b3b4b5b6b7b8b9babb42bcbc01b716a6ede7592d84b930de3563c4af569622b4d2e849a7886e42d69b16ab96bec87d888f27d2d5d0455fff941ea3a7ded4df78108f0d412a9970c7b0254547ae3545c615bbe33d3808101112131415161718191a1b1c1d1e1f303132333435363738393a3b2e38d02ae5ce8533fd5b77f6f6b3ab6c3da0f7d04dbc394ffb050ad4937dda07c32fc5fa31a131748ff69c2bac87931591318cb7f943c7bbc2479a875830d884191e40d5a593c62b9a565ed8bece2e3d6d2549c9e26b18cfb46c0d72d38882606f0bed47ab5b2f83000000',
  /** SHA-256 of the pack: its name. */
  packId: 'b37de6b9f64217ff19c4fd25d9f4a1053db4d2789e8ce3d47244fd17ece4b14b',
  /** An index body listing that pack and its two blobs (nothing superseded). */
  indexBody:
    '424858310000000001000000b37de6b9f64217ff19c4fd25d9f4a1053db4d2789e8ce3d47244fd17ece4b14b0200000000000000002200000005000000f1826e5585f5fbfc141e77d4955896f60382ad92c68fe287112d1edb30c3f4ac002200000059000000ac00000078ad97a4c4226c5875cdb540bb7b0b81b0e025d9ed3d5a0becfe76c94b68dd0e',
  /** SNAPSHOT_JSON as bh stores it at level 3: flag 01 ‖ one zstd frame. */
  snapshotPayload:
    '0128b52ffd6013005d0600b28d2a1f50475507848e509798e5c85e4e4aa6ce6b67a6acbfa9e56e0d33f8a8aa0a6b075f42117b828569d250e7c9d0073465413fcd0931f195693a27843cbe8f66a14d951d255c93a78d3f1466683fd0d37b3a0b17f4e3ebd31c9e0c8fe803f081f8e750d979ba7c051fcb2185c6503de50ed59819cc5a1bfcdc16d832e6a2c1d59c84ccedaec70c285f43a0345e174debd305769788bb016a096a096ded7a7c2f4a7d52f14ca33cb4a31b040b0003abfcaa11ceb88984412334b7e25173d7b56cad183945c59c972303',
  /** The snapshot file: salt 90 91 … 9f, nonce e0 e1 … eb, payload snapshotPayload. */
  snapshotFile:
    '909192939495969798999a9b9c9d9e9fe0e1e2e3e4e5e6e7e8e9eaeb75112898b56a2c358f54cf8e65a0e56f698f0c05fbe5aab86802f2ff461ef2d9fc9ffbb9dc0f22dfd3e5e345f4e7460e22eebd7ebe3e4385ab660ef08bf753417b62be8ee8155287a3716d173385d836e5d55bb3c0d8d02c75da9f35abc8aae7031cdef15dc605795aaab64a17bb38eac3ac5f1cb74309e89c10b9e9387432cf607f2913a29c95d75e07d402a6c219c48a13563582e941de2e6533f003b754fc89334aeb5d458f832bddb4f90ff1bf5633f76e46f61049f63dc9301a57a868e04550bd73f49e7749abcc3fc32d9d8f5bc328bedcb59a271ab8a7e0dc8f69affe46782c1fb8f7',
  /** SHA-256 of the snapshot file: the snapshot id. */
  snapshotId: '25aad11ca4ea36ea1c9f00609eaae79fbdc20df8a69210832c2ba451e7c32c93',
  /** LOCK_JSON as bh stores it at level 3: flag 01 ‖ one zstd frame. */
  lockPayload:
    '0128b52ffd20a47d0300a2c7171980b73accec2db598f1c37f46e201c398c697a45c44cc51d44707f5e7d25ba3d55d2ad66ad556c1f86589a0beb2366183e546a7e6be89f1a083d46a21469f21465a6ef5dba3305a909900cd0c98244c12e8e4b1fac67a46a36ec75a77c5860400c403972bac8a7065b68e0c',
  /** The lock file: salt d0 d1 … df, nonce f0 f1 … fb, payload lockPayload. */
  lockFile:
    'd0d1d2d3d4d5d6d7d8d9dadbdcdddedff0f1f2f3f4f5f6f7f8f9fafbb6d20f69b9fc2a0bf87ee36d40d4805eedb41197e480659bb24e377f42a067d86c2c2ef9e9f15f13ecd1bd27a0543faf05faa8ff725b0f5b9e8641febc4cd9daa2ede340b4068117801b93db21f9837025b6bbba1cf4c44ef80a03248fb010b94a1250a605ae421e1f306a21d3f6560b575267d17f8a5e3c6963e87b86716d23dc8068bf6cb588ab14',
  /** SHA-256 of the lock file: its name. */
  lockId: '9881d0217154e191bda2b524ac23af1f8e185885d109217ed8fd4645ca61790b',
} as const;

/** The canonical encoding of the tree built in the §6 test. */
const TREE_VECTOR =
  '{"nodes":[' +
  `{"name":"a","type":"dir","mode":493,"uid":0,"gid":0,"mtime":"-1","ctime":"0","inode":"2","device":"2049","links":2,"size":0,"subtree":"${'11'.repeat(32)}"},` +
  `{"name":"b.txt","type":"file","mode":420,"uid":1000,"gid":1000,"mtime":"1700000000123456789","ctime":"1700000000123456790","inode":"1234","device":"2049","links":1,"size":5,"content":["${VECTORS.blobIdHello}"],"xattrs":[{"name":"user.a","value":"MQ=="},{"name":"user.z","value":"Mg=="}]},` +
  '{"name":"null","type":"chardev","mode":438,"uid":0,"gid":0,"mtime":"0","ctime":"0","inode":"5","device":"5","links":1,"size":0,"rdev":"259"},' +
  '{"name_bytes":"/2Y=","type":"symlink","mode":511,"uid":0,"gid":0,"mtime":"0","ctime":"0","inode":"7","device":"2049","links":1,"size":0,"linktarget":"target"}' +
  ']}';

/** The canonical encoding of the tree of the §6.1 addition 1 test: a file with its SHA-256. */
const TREE_SHA256_VECTOR =
  '{"nodes":[' +
  `{"name":"hello.txt","type":"file","mode":420,"uid":1000,"gid":1000,"mtime":"1700000000000000000","ctime":"1700000000000000000","inode":"42","device":"2049","links":1,"size":5,"content":["${VECTORS.blobIdHello}"],"sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}` +
  ']}';
/** Its tree blob id, HMAC(idKey, TREE_SHA256_VECTOR), as FORMAT.md §11 gives it. */
const TREE_SHA256_ID = '8b835fbd81c764543469b5db4cf552e09b5ec478d8a38658e4d3c1b2fb1e8b3f';

/** The content of the zstd vectors: 172 bytes. */
const ZSTD_CONTENT = 'all work and no play makes jack a dull boy\n'.repeat(4);
/** The record of the snapshot vector, as bh writes it: compact JSON, fields in FORMAT.md §7's order. */
const SNAPSHOT_JSON =
  '{"version":1,"time":"2024-01-01T00:00:00.000Z","tree":"8e7bc9f47c9b37200639c642948aa3035067abe43ab3a41d61719a45f62da87c","paths":["/srv"],' +
  '"host":"example","username":"user","uid":0,"gid":0,"tags":["vector"],"mode":"full","parent":null,"excludes":[],"program_version":"0.1.0"}';
/** The record of the lock vector, as bh writes it (FORMAT.md §8). */
const LOCK_JSON = '{"version":1,"time":"2024-01-01T00:00:00.000Z","host":"example","pid":4242,"username":"user","exclusive":false,"kind":"shared","started":"2024-01-01T00:00:00.000Z"}';

const PASSWORD = 'correct horse battery staple';
const SMALL_SCRYPT = { N: 1024, r: 8, p: 1 };

const keys = new MasterKeys(Buffer.from(MASTER));
const nk = nobleKeys(MASTER);

// ---- §2 keys -------------------------------------------------------------------------------

describe('§2 key derivation', () => {
  it('derives idKey, encryptionKey and chunkerSeed as HMAC-SHA-256(master, label)', () => {
    expect(hex(nk.idKey)).toBe(VECTORS.idKey);
    expect(hex(nk.encryptionKey)).toBe(VECTORS.encryptionKey);
    expect(hex(nk.chunkerSeed)).toBe(VECTORS.chunkerSeed);
    expect(keys.idKey.toString('hex')).toBe(VECTORS.idKey);
    expect(keys.encryptionKey.toString('hex')).toBe(VECTORS.encryptionKey);
    expect(keys.chunkerSeed.toString('hex')).toBe(VECTORS.chunkerSeed);
  });

  it('names blobs by HMAC-SHA-256(idKey, plaintext)', () => {
    expect(hex(mac(nk.idKey, ascii('hello')))).toBe(VECTORS.blobIdHello);
    expect(keys.blobId(Buffer.from('hello')).toString('hex')).toBe(VECTORS.blobIdHello);
    expect(keys.blobId(new Uint8Array(0)).toString('hex')).toBe(hex(mac(nk.idKey)));
  });

  it('derives blob and file subkeys from the encryption key', () => {
    const id = Buffer.from(VECTORS.blobIdHello, 'hex');
    expect(keys.blobSubkey('data', id).toString('hex')).toBe(VECTORS.blobSubkeyHello);
    expect(hex(mac(nk.encryptionKey, ascii('blob'), Uint8Array.of(0), id))).toBe(VECTORS.blobSubkeyHello);
    expect(keys.blobSubkey('tree', id).toString('hex')).toBe(hex(mac(nk.encryptionKey, ascii('blob'), Uint8Array.of(1), id)));
    const salt = seq(16, 0x40);
    expect(keys.fileSubkey('snapshot', salt).toString('hex')).toBe(VECTORS.fileSubkeySnapshot);
    expect(hex(mac(nk.encryptionKey, ascii('file'), Uint8Array.of(2), salt))).toBe(VECTORS.fileSubkeySnapshot);
    for (const [kind, code] of Object.entries(KIND)) {
      expect(keys.fileSubkey(kind as keyof typeof KIND, salt).toString('hex')).toBe(hex(mac(nk.encryptionKey, ascii('file'), Uint8Array.of(code), salt)));
    }
  });
});

describe('§2 key files', () => {
  it('matches the scrypt and raw-key vectors', async () => {
    const salt = seq(32, 0x80);
    expect(Buffer.from(salt).toString('base64')).toBe(VECTORS.keySaltBase64);
    expect(hex(scrypt(ascii(PASSWORD), salt, { ...SMALL_SCRYPT, dkLen: 32 }))).toBe(VECTORS.scryptKey);
    const viaBh = await deriveKey({ kind: 'password', password: Buffer.from(PASSWORD) }, { kdf: 'scrypt', salt: VECTORS.keySaltBase64, ...SMALL_SCRYPT });
    expect(viaBh!.toString('hex')).toBe(VECTORS.scryptKey);
    const rawKey = seq(32, 0xc0);
    expect(hex(hmac(sha256, rawKey, salt))).toBe(VECTORS.rawKdfKey);
    const viaBhRaw = await deriveKey({ kind: 'keyfile', key: Buffer.from(rawKey) }, { kdf: 'raw', salt: VECTORS.keySaltBase64 });
    expect(viaBhRaw!.toString('hex')).toBe(VECTORS.rawKdfKey);
    // A password never opens a raw key file and a raw key never opens a password key file.
    expect(await deriveKey({ kind: 'keyfile', key: Buffer.from(rawKey) }, { kdf: 'scrypt', salt: VECTORS.keySaltBase64, ...SMALL_SCRYPT })).toBeUndefined();
    expect(await deriveKey({ kind: 'password', password: Buffer.from(PASSWORD) }, { kdf: 'raw', salt: VECTORS.keySaltBase64 })).toBeUndefined();
  });

  it('seals the master key as the vector says, and bh opens the hand-made key file', async () => {
    const key = Buffer.from(VECTORS.scryptKey, 'hex');
    const nonce = seq(12, 0x20);
    const data = cat(nonce, gcm(key, nonce, ascii('bh/v1/key')).encrypt(MASTER));
    expect(Buffer.from(data).toString('base64')).toBe(VECTORS.keyDataBase64);
    expect(seal(key, MASTER, ascii('bh/v1/key'), nonce).toString('base64')).toBe(VECTORS.keyDataBase64);
    const handMade = {
      version: 1,
      created: '2024-01-01T00:00:00.000Z',
      host: 'example',
      username: 'user',
      salt: VECTORS.keySaltBase64,
      kdf: 'scrypt',
      ...SMALL_SCRYPT,
      data: VECTORS.keyDataBase64,
    };
    const file = decodeKeyFile(Buffer.from(JSON.stringify(handMade)), 'hand-made key');
    const master = await unsealKeyFile(file, { kind: 'password', password: Buffer.from(PASSWORD) }, 'hand-made key');
    expect(master && hex(master)).toBe(hex(MASTER));
    expect(await unsealKeyFile(file, { kind: 'password', password: Buffer.from('wrong') }, 'hand-made key')).toBeUndefined();
  });

  it('writes a scrypt key file that noble opens', async () => {
    const bytes = await createKeyFile(keys, { kind: 'password', password: Buffer.from(PASSWORD) }, SMALL_SCRYPT);
    const file = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    expect(Object.keys(file)).toEqual(['version', 'created', 'host', 'username', 'salt', 'kdf', 'N', 'r', 'p', 'data']);
    expect(file).toMatchObject({ version: 1, kdf: 'scrypt', N: 1024, r: 8, p: 1 });
    expect(Number.isNaN(Date.parse(file['created'] as string))).toBe(false);
    const salt = Buffer.from(file['salt'] as string, 'base64');
    expect(salt.length).toBe(32);
    const data = Buffer.from(file['data'] as string, 'base64');
    expect(data.length).toBe(12 + 32 + 16);
    const key = scrypt(ascii(PASSWORD), salt, { N: 1024, r: 8, p: 1, dkLen: 32 });
    expect(hex(nobleOpen(key, data, ascii('bh/v1/key')))).toBe(hex(MASTER));
  });

  it('writes a raw-key key file that noble opens', async () => {
    const raw = seq(32, 0xc0);
    const bytes = await createKeyFile(keys, { kind: 'keyfile', key: Buffer.from(raw) });
    const file = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    expect(Object.keys(file)).toEqual(['version', 'created', 'host', 'username', 'salt', 'kdf', 'data']);
    expect(file['kdf']).toBe('raw');
    const salt = Buffer.from(file['salt'] as string, 'base64');
    const key = hmac(sha256, raw, salt);
    expect(hex(nobleOpen(key, Buffer.from(file['data'] as string, 'base64'), ascii('bh/v1/key')))).toBe(hex(MASTER));
  });
  it('seals master ‖ idKey ‖ chunkerSeed (96 bytes) in a repository that shares its chunking keys; the encryption key still derives from the master', async () => {
    const chunking = { idKey: Buffer.from(seq(32, 0x50)), chunkerSeed: Buffer.from(seq(32, 0x70)) };
    const shared = new MasterKeys(Buffer.from(MASTER), chunking);
    const bytes = await createKeyFile(shared, { kind: 'password', password: Buffer.from(PASSWORD) }, SMALL_SCRYPT);
    const file = JSON.parse(bytes.toString('utf8')) as Record<string, string>;
    const key = scrypt(ascii(PASSWORD), Buffer.from(file['salt']!, 'base64'), { ...SMALL_SCRYPT, dkLen: 32 });
    const material = nobleOpen(key, Buffer.from(file['data']!, 'base64'), ascii('bh/v1/key'));
    expect(hex(material)).toBe(hex(cat(MASTER, seq(32, 0x50), seq(32, 0x70))));
    const reopened = MasterKeys.deserialize((await unsealKeyFile(decodeKeyFile(bytes, 'k'), { kind: 'password', password: Buffer.from(PASSWORD) }, 'k'))!);
    expect(reopened.idKey.toString('hex')).toBe(hex(seq(32, 0x50)));
    expect(reopened.chunkerSeed.toString('hex')).toBe(hex(seq(32, 0x70)));
    expect(reopened.encryptionKey.toString('hex')).toBe(VECTORS.encryptionKey);
    expect(reopened.blobId(Buffer.from('hello')).toString('hex')).toBe(hex(mac(seq(32, 0x50), ascii('hello'))));
    expect(reopened.sharesChunkingWith(keys)).toBe(false);
    expect(MasterKeys.deserialize(keys.serialize()).sharesChunkingWith(keys)).toBe(true);
  });
});

// ---- §3 envelopes ----------------------------------------------------------------------------

describe('§3 envelopes', () => {
  const id = Buffer.from(VECTORS.blobIdHello, 'hex');
  const payload = Buffer.concat([Buffer.of(0), Buffer.from('hello')]);

  it('seals a blob with a fixed nonce byte for byte as noble does', () => {
    const nonce = seq(12, 0xa0);
    const subkey = mac(nk.encryptionKey, ascii('blob'), Uint8Array.of(0), id);
    const aad = cat(Uint8Array.of(0), id);
    const nobleEnvelope = cat(nonce, gcm(subkey, nonce, aad).encrypt(payload));
    expect(hex(nobleEnvelope)).toBe(VECTORS.blobEnvelopeHello);
    expect(seal(keys.blobSubkey('data', id), payload, aad, nonce).toString('hex')).toBe(VECTORS.blobEnvelopeHello);
    // bh opens the vector, and refuses it as a tree blob.
    expect(openBlob(keys, 'data', id, Buffer.from(VECTORS.blobEnvelopeHello, 'hex'), 'vector').toString('hex')).toBe(payload.toString('hex'));
    expect(() => openBlob(keys, 'tree', id, Buffer.from(VECTORS.blobEnvelopeHello, 'hex'), 'vector')).toThrow(/authentication failed/);
  });

  it('noble opens what sealBlob sealed (random nonce), for both types', () => {
    for (const type of ['data', 'tree'] as const) {
      const plaintext = Buffer.from(`some ${type} payload`);
      const envelope = sealBlob(keys, type, id, plaintext);
      expect(envelope.length).toBe(12 + plaintext.length + 16);
      expect(hex(nobleOpenBlob(nk, type, id, envelope))).toBe(plaintext.toString('hex'));
      expect(openBlob(keys, type, id, envelope, 'x').equals(plaintext)).toBe(true);
    }
  });

  it('noble opens what sealFile sealed, for every kind; bh opens the file vector', () => {
    for (const kind of Object.keys(KIND) as (keyof typeof KIND)[]) {
      const body = Buffer.from(`payload of a ${kind} file`);
      const bytes = sealFile(keys, kind, body);
      expect(bytes.length).toBe(16 + 12 + body.length + 16);
      expect(hex(nobleOpenFile(nk, kind, bytes))).toBe(body.toString('hex'));
    }
    const salt = seq(16, 0x40);
    const nonce = seq(12, 0x60);
    const subkey = mac(nk.encryptionKey, ascii('file'), Uint8Array.of(KIND.snapshot), salt);
    const handMade = cat(salt, nonce, gcm(subkey, nonce, Uint8Array.of(KIND.snapshot)).encrypt(cat(Uint8Array.of(0), ascii('{}'))));
    expect(hex(handMade)).toBe(VECTORS.fileEnvelopeSnapshot);
    const opened = openFile(keys, 'snapshot', Buffer.from(VECTORS.fileEnvelopeSnapshot, 'hex'), 'vector');
    expect(opened.toString('hex')).toBe('007b7d');
    expect(() => openFile(keys, 'index', Buffer.from(VECTORS.fileEnvelopeSnapshot, 'hex'), 'vector')).toThrow(/authentication failed/);
  });

  it('puts a payload flag byte first: 0 raw, 1 zstd frame', () => {
    const codec = new PayloadCodec({ algorithm: 'zstd', level: 3 });
    expect(codec.encode(Buffer.from('hello')).toString('hex')).toBe('0068656c6c6f');
    const text = Buffer.from('all work and no play makes jack a dull boy\n'.repeat(100));
    const packed = codec.encode(text);
    expect(packed[0]).toBe(1);
    expect(packed.subarray(1, 5).toString('hex')).toBe('28b52ffd'); // zstd frame magic
    expect(Buffer.from(zstd.decompress(packed.subarray(1))).equals(text)).toBe(true);
    const none = new PayloadCodec({ algorithm: 'none', level: 0 });
    expect(none.encode(text)[0]).toBe(0);
    expect(none.encode(text).subarray(1).equals(text)).toBe(true);
    // Any reader decodes both flags whatever its own settings.
    expect(none.decode(packed, 'x').equals(text)).toBe(true);
  });
});

// ---- §4 packs, §5 index ------------------------------------------------------------------

describe('§4 packs', () => {
  it('lays out blobs, sealed header and trailer as documented', () => {
    const codec = new PayloadCodec({ algorithm: 'zstd', level: 3 });
    const plaintexts: { type: 'data' | 'tree'; data: Buffer }[] = [
      { type: 'data', data: Buffer.from('hello') },
      { type: 'data', data: Buffer.from('abcdefgh'.repeat(1000)) },
      { type: 'tree', data: Buffer.from('{"nodes":[]}') },
    ];
    const builder = new PackBuilder();
    for (const { type, data } of plaintexts) builder.add(type, keys.blobId(data), sealBlob(keys, type, keys.blobId(data), codec.encode(data)), data.length);
    const finished = builder.finish(keys);
    const pack = { id: finished.id, bytes: Buffer.concat(finished.parts) };
    expect(hex(pack.id)).toBe(hex(sha256(pack.bytes)));

    const entries = parsePackByHand(nk, pack.bytes);
    expect(entries.length).toBe(3);
    entries.forEach((entry, i) => {
      const { type, data } = plaintexts[i]!;
      expect(entry.type).toBe(TYPE[type]);
      expect(entry.rawLength).toBe(data.length);
      expect(entry.id).toBe(hex(mac(nk.idKey, data)));
      const envelope = pack.bytes.subarray(entry.offset, entry.offset + entry.length);
      const plaintext = unflag(nobleOpenBlob(nk, type, Buffer.from(entry.id, 'hex'), envelope));
      expect(hex(plaintext)).toBe(data.toString('hex'));
    });
    // bh's own parser agrees.
    const parsed = parsePackTail(keys, pack.bytes, pack.bytes.length, 'pack');
    expect(Array.isArray(parsed) && parsed.map((b) => [b.type, b.offset, b.length, b.rawLength, b.id.toString('hex')])).toEqual(
      entries.map((e) => [e.type === 0 ? 'data' : 'tree', e.offset, e.length, e.rawLength, e.id]),
    );
  });

  it('an empty pack is just a sealed header and its length', () => {
    const pack = { bytes: Buffer.concat(new PackBuilder().finish(keys).parts) };
    expect(pack.bytes.length).toBe(16 + 12 + 5 + 16 + 4);
    expect(parsePackByHand(nk, pack.bytes)).toEqual([]);
  });
});

describe('§5 index files', () => {
  it('encodes the index body as documented', () => {
    const id = (n: number) => Buffer.alloc(32, n);
    const body = encodeIndexFile({
      supersedes: [id(0xee)],
      packs: [
        { packId: id(0xaa), blobs: [{ type: 'data', id: id(1), offset: 0, length: 100, rawLength: 200 }, { type: 'tree', id: id(2), offset: 100, length: 50, rawLength: 49 }] },
        { packId: id(0xbb), blobs: [] },
      ],
    });
    expect(body.length).toBe(4 + 4 + 32 + 4 + (36 + 2 * 45) + 36);
    expect(parseIndexByHand(body)).toEqual({
      supersedes: [id(0xee).toString('hex')],
      packs: [
        {
          packId: id(0xaa).toString('hex'),
          blobs: [
            { type: 0, offset: 0, length: 100, rawLength: 200, id: id(1).toString('hex') },
            { type: 1, offset: 100, length: 50, rawLength: 49, id: id(2).toString('hex') },
          ],
        },
        { packId: id(0xbb).toString('hex'), blobs: [] },
      ],
    });
    // Exact bytes of the smallest index: magic, no superseded ids, no packs.
    expect(encodeIndexFile({ supersedes: [], packs: [] }).toString('hex')).toBe('42485831' + '00000000' + '00000000');
    expect(decodeIndexFile(body, 'x').packs[0]!.blobs[1]!.rawLength).toBe(49);
  });
});

// ---- §11 fixed vectors: a zstd payload, a pack, an index body, a snapshot, a lock -------------

describe('§11 fixed vectors of stored files', () => {
  const codec = new PayloadCodec({ algorithm: 'zstd', level: 3 });
  const bytes = (hexText: string): Buffer => Buffer.from(hexText, 'hex');
  const u32 = (n: number): Uint8Array => Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
  /** noble's blob envelope with a fixed nonce. */
  const nobleBlob = (id: Uint8Array, payload: Uint8Array, nonce: Uint8Array): Uint8Array =>
    cat(nonce, gcm(mac(nk.encryptionKey, ascii('blob'), Uint8Array.of(TYPE.data), id), nonce, cat(Uint8Array.of(TYPE.data), id)).encrypt(payload));
  /** noble's file envelope with a fixed salt and nonce. */
  const nobleFile = (kind: keyof typeof KIND, payload: Uint8Array, salt: Uint8Array, nonce: Uint8Array): Uint8Array =>
    cat(salt, nonce, gcm(mac(nk.encryptionKey, ascii('file'), Uint8Array.of(KIND[kind]), salt), nonce, Uint8Array.of(KIND[kind])).encrypt(payload));
  const helloId = mac(nk.idKey, ascii('hello'));
  const zstdId = mac(nk.idKey, ascii(ZSTD_CONTENT));
  /** The envelopes of the pack vector: "hello" raw (the §3 vector) and ZSTD_CONTENT compressed. */
  const helloEnvelope = bytes(VECTORS.blobEnvelopeHello);
  const zstdEnvelope = bytes(FILE_VECTORS.zstdBlobEnvelope);

  it('zstd payload: bh writes exactly these bytes; flag and frame read by hand; zstd decodes the frame', () => {
    const content = Buffer.from(ZSTD_CONTENT);
    expect(content.length).toBe(172);
    expect(codec.encode(content).toString('hex')).toBe(FILE_VECTORS.zstdPayload);
    const payload = bytes(FILE_VECTORS.zstdPayload);
    expect(payload[0]).toBe(1);
    expect(parseZstdFrameByHand(payload.subarray(1))).toEqual({ contentSize: 172, blocks: 1, checksum: false });
    // zstd-napi's decompressor only as a check of the frame (noble has no zstd).
    expect(Buffer.from(zstd.decompress(payload.subarray(1))).equals(content)).toBe(true);
    expect(codec.decode(payload, 'vector').equals(content)).toBe(true);
    // Kept compressed: it saves more than 1/32 of the bytes (FORMAT.md §3.5).
    expect(payload.length - 1).toBeLessThanOrEqual((content.length * 31) / 32);

    expect(hex(zstdId)).toBe(FILE_VECTORS.zstdBlobId);
    expect(keys.blobId(content).toString('hex')).toBe(FILE_VECTORS.zstdBlobId);
    expect(hex(nobleBlob(zstdId, payload, seq(12, 0xb0)))).toBe(FILE_VECTORS.zstdBlobEnvelope);
    expect(seal(keys.blobSubkey('data', zstdId), payload, cat(Uint8Array.of(TYPE.data), zstdId), seq(12, 0xb0)).toString('hex')).toBe(FILE_VECTORS.zstdBlobEnvelope);
    expect(codec.decode(openBlob(keys, 'data', zstdId, zstdEnvelope, 'vector'), 'vector').equals(content)).toBe(true);
  });

  it('pack: noble builds it byte for byte; the hand parser and bh read the same two blobs; bh builds the same header', () => {
    const header = cat(
      Uint8Array.of(0),
      ascii('BHP1'),
      Uint8Array.of(TYPE.data), u32(helloEnvelope.length), u32(5), helloId,
      Uint8Array.of(TYPE.data), u32(zstdEnvelope.length), u32(172), zstdId,
    );
    expect(hex(header)).toBe(FILE_VECTORS.packHeaderPayload);
    const sealedHeader = nobleFile('packHeader', header, seq(16, 0x10), seq(12, 0x30));
    const pack = cat(helloEnvelope, zstdEnvelope, sealedHeader, u32(sealedHeader.length));
    expect(hex(pack)).toBe(FILE_VECTORS.pack);
    expect(hex(sha256(pack))).toBe(FILE_VECTORS.packId);

    const vector = bytes(FILE_VECTORS.pack);
    const entries = parsePackByHand(nk, vector);
    expect(entries).toEqual([
      { type: TYPE.data, length: 34, rawLength: 5, id: hex(helloId), offset: 0 },
      { type: TYPE.data, length: 89, rawLength: 172, id: hex(zstdId), offset: 34 },
    ]);
    const contents = entries.map((e) => Buffer.from(unflag(nobleOpenBlob(nk, 'data', bytes(e.id), vector.subarray(e.offset, e.offset + e.length)))).toString());
    expect(contents).toEqual(['hello', ZSTD_CONTENT]);

    const parsed = parsePackTail(keys, vector, vector.length, 'vector');
    expect(Array.isArray(parsed) && parsed.map((b) => [b.type, b.offset, b.length, b.rawLength, b.id.toString('hex')])).toEqual(entries.map((e) => ['data', e.offset, e.length, e.rawLength, e.id]));
    // bh's PackBuilder lays out the same blobs and header; only its header's salt and nonce are its own.
    const builder = new PackBuilder();
    builder.add('data', Buffer.from(helloId), helloEnvelope, 5);
    builder.add('data', Buffer.from(zstdId), zstdEnvelope, 172);
    const built = builder.finish(keys);
    expect(built.parts.length).toBe(4);
    expect(hex(Buffer.concat(built.parts.slice(0, 2)))).toBe(hex(vector.subarray(0, 34 + 89)));
    expect(hex(nobleOpenFile(nk, 'packHeader', built.parts[2]!))).toBe(FILE_VECTORS.packHeaderPayload);
    expect(hex(built.parts[3]!)).toBe(hex(u32(built.parts[2]!.length)));
  });

  it('index body: the pack with its two blobs, built by hand, encoded by bh and read by hand alike', () => {
    const body = cat(
      ascii('BHX1'), u32(0), u32(1),
      bytes(FILE_VECTORS.packId), u32(2),
      Uint8Array.of(TYPE.data), u32(0), u32(34), u32(5), helloId,
      Uint8Array.of(TYPE.data), u32(34), u32(89), u32(172), zstdId,
    );
    expect(hex(body)).toBe(FILE_VECTORS.indexBody);
    const blobs = [
      { type: 'data' as const, id: Buffer.from(helloId), offset: 0, length: 34, rawLength: 5 },
      { type: 'data' as const, id: Buffer.from(zstdId), offset: 34, length: 89, rawLength: 172 },
    ];
    expect(encodeIndexFile({ supersedes: [], packs: [{ packId: bytes(FILE_VECTORS.packId), blobs }] }).toString('hex')).toBe(FILE_VECTORS.indexBody);
    const decoded = decodeIndexFile(bytes(FILE_VECTORS.indexBody), 'vector');
    expect(decoded.supersedes).toEqual([]);
    expect(decoded.packs.map((p) => [p.packId.toString('hex'), p.blobs])).toEqual([[FILE_VECTORS.packId, blobs]]);
    expect(parseIndexByHand(bytes(FILE_VECTORS.indexBody))).toEqual({
      supersedes: [],
      packs: [{ packId: FILE_VECTORS.packId, blobs: blobs.map((b) => ({ type: TYPE.data, offset: b.offset, length: b.length, rawLength: b.rawLength, id: b.id.toString('hex') })) }],
    });
  });

  it('snapshot file: bh writes this payload; noble seals it byte for byte; bh opens the file to the record', () => {
    expect(JSON.parse(SNAPSHOT_JSON).tree).toBe(hex(mac(nk.idKey, ascii('{"nodes":[]}'))));
    expect(codec.encode(Buffer.from(SNAPSHOT_JSON)).toString('hex')).toBe(FILE_VECTORS.snapshotPayload);
    const payload = bytes(FILE_VECTORS.snapshotPayload);
    expect(payload[0]).toBe(1);
    expect(parseZstdFrameByHand(payload.subarray(1)).contentSize).toBe(SNAPSHOT_JSON.length);
    expect(Buffer.from(zstd.decompress(payload.subarray(1))).toString()).toBe(SNAPSHOT_JSON);
    const file = nobleFile('snapshot', payload, seq(16, 0x90), seq(12, 0xe0));
    expect(hex(file)).toBe(FILE_VECTORS.snapshotFile);
    expect(hex(sha256(file))).toBe(FILE_VECTORS.snapshotId);

    const opened = codec.decode(openFile(keys, 'snapshot', bytes(FILE_VECTORS.snapshotFile), 'vector'), 'vector').toString();
    expect(opened).toBe(SNAPSHOT_JSON);
    const record = validateSnapshot(JSON.parse(opened), 'vector');
    // Fields in the order writers use (FORMAT.md §7), as bh's backup writes them.
    expect(Object.keys(record)).toEqual(['version', 'time', 'tree', 'paths', 'host', 'username', 'uid', 'gid', 'tags', 'mode', 'parent', 'excludes', 'program_version']);
  });

  it('lock file: bh writes this payload; noble seals it byte for byte; bh opens the file to a record of its own field order', () => {
    expect(codec.encode(Buffer.from(LOCK_JSON)).toString('hex')).toBe(FILE_VECTORS.lockPayload);
    const payload = bytes(FILE_VECTORS.lockPayload);
    expect(payload[0]).toBe(1);
    expect(parseZstdFrameByHand(payload.subarray(1)).contentSize).toBe(LOCK_JSON.length);
    expect(Buffer.from(zstd.decompress(payload.subarray(1))).toString()).toBe(LOCK_JSON);
    const file = nobleFile('lock', payload, seq(16, 0xd0), seq(12, 0xf0));
    expect(hex(file)).toBe(FILE_VECTORS.lockFile);
    expect(hex(sha256(file))).toBe(FILE_VECTORS.lockId);

    const opened = codec.decode(openFile(keys, 'lock', bytes(FILE_VECTORS.lockFile), 'vector'), 'vector').toString();
    expect(opened).toBe(LOCK_JSON);
    expect(Object.keys(JSON.parse(opened) as object)).toEqual(Object.keys(newLockRecord('shared', '2024-01-01T00:00:00.000Z')));
  });
});

// ---- §6 trees --------------------------------------------------------------------------------

describe('§6 trees', () => {
  it('encodes a tree canonically, to the exact expected JSON', () => {
    const helloId = Buffer.from(VECTORS.blobIdHello, 'hex');
    const nodes: TreeNode[] = [
      {
        name: Buffer.of(0xff, 0x66),
        type: 'symlink',
        mode: 0o777,
        uid: 0,
        gid: 0,
        mtimeNs: 0n,
        ctimeNs: 0n,
        inode: 7n,
        device: 2049n,
        links: 1,
        size: 0,
        linkTarget: Buffer.from('target'),
      },
      {
        name: Buffer.from('b.txt'),
        type: 'file',
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        mtimeNs: 1700000000123456789n,
        ctimeNs: 1700000000123456790n,
        inode: 1234n,
        device: 2049n,
        links: 1,
        size: 5,
        content: [helloId],
        xattrs: [
          { name: 'user.z', value: Buffer.from('2') },
          { name: 'user.a', value: Buffer.from('1') },
        ],
      },
      { name: Buffer.from('null'), type: 'chardev', mode: 0o666, uid: 0, gid: 0, mtimeNs: 0n, ctimeNs: 0n, inode: 5n, device: 5n, links: 1, size: 0, rdev: 259n },
      { name: Buffer.from('a'), type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeNs: -1n, ctimeNs: 0n, inode: 2n, device: 2049n, links: 2, size: 0, subtree: Buffer.alloc(32, 0x11) },
    ];
    const expected = TREE_VECTOR;
    const encoded = encodeTree(nodes);
    expect(encoded.toString('utf8')).toBe(expected);
    expect(encodeTree([...nodes].reverse()).equals(encoded)).toBe(true);
    expect(encodeTree(decodeTree(encoded, 'vector')).equals(encoded)).toBe(true);
    expect(encodeTree([]).toString()).toBe('{"nodes":[]}');
    // The tree blob's id is the keyed hash of exactly these bytes.
    expect(keys.blobId(encoded).toString('hex')).toBe(hex(mac(nk.idKey, ascii(expected))));
  });

  it('writes and reads a file node with its SHA-256 (addition 1), and trees without one stay as they were', () => {
    const node: TreeNode = {
      name: Buffer.from('hello.txt'),
      type: 'file',
      mode: 0o644,
      uid: 1000,
      gid: 1000,
      mtimeNs: 1700000000000000000n,
      ctimeNs: 1700000000000000000n,
      inode: 42n,
      device: 2049n,
      links: 1,
      size: 5,
      content: [Buffer.from(VECTORS.blobIdHello, 'hex')],
      sha256: Buffer.from(sha256(ascii('hello'))),
    };
    // The value in the vector is noble's SHA-256 of the content, and the file's only chunk is noble's HMAC of it.
    expect(TREE_SHA256_VECTOR).toContain(`"sha256":"${hex(sha256(ascii('hello')))}"`);
    expect(VECTORS.blobIdHello).toBe(hex(mac(nk.idKey, ascii('hello'))));
    const encoded = encodeTree([node]);
    expect(encoded.toString('utf8')).toBe(TREE_SHA256_VECTOR);
    expect(hex(mac(nk.idKey, ascii(TREE_SHA256_VECTOR)))).toBe(TREE_SHA256_ID);
    expect(keys.blobId(encoded).toString('hex')).toBe(TREE_SHA256_ID);
    const [decoded] = decodeTree(encoded, 'vector');
    expect(decoded!.sha256?.toString('hex')).toBe(hex(sha256(ascii('hello'))));
    // The same bytes spelled otherwise (whitespace) take the general reader: same node.
    const spaced = Buffer.from(JSON.stringify(JSON.parse(TREE_SHA256_VECTOR), null, 1));
    expect(encodeTree(decodeTree(spaced, 'spaced')).equals(encoded)).toBe(true);
    // Without the key: the node of a snapshot made before addition 1, unchanged.
    const old = decodeTree(Buffer.from(TREE_VECTOR), 'vector').find((n) => n.type === 'file')!;
    expect(old.sha256).toBeUndefined();
    expect(encodeTree(decodeTree(Buffer.from(TREE_VECTOR), 'vector')).toString()).toBe(TREE_VECTOR);
    // Malformed values are refused; on other node types the key is ignored (§6.2).
    expect(() => decodeTree(Buffer.from(TREE_SHA256_VECTOR.replace('"sha256":"2cf2', '"sha256":"2CF2')), 'upper')).toThrow(/malformed sha256/);
    expect(() => decodeTree(Buffer.from(TREE_SHA256_VECTOR.replace(/"sha256":"[0-9a-f]+"/, '"sha256":"abc"')), 'short')).toThrow(/malformed sha256/);
    const onDir = TREE_VECTOR.replace(`"subtree":"${'11'.repeat(32)}"`, `"subtree":"${'11'.repeat(32)}","sha256":"${'22'.repeat(32)}"`);
    expect(decodeTree(Buffer.from(onDir), 'dir').find((n) => n.type === 'dir')!.sha256).toBeUndefined();
  });
});

// ---- §9 chunker ----------------------------------------------------------------------------

/** 16384 bytes: SHA-256(u32 LE i) for i = 0..511. */
const CHUNK_INPUT = cat(...Array.from({ length: 512 }, (_, i) => sha256(Uint8Array.of(i & 0xff, i >>> 8, 0, 0))));

/** The normative algorithm of FORMAT.md §9, written plainly. */
function referenceChunks(gear: Uint32Array, x: Uint8Array, min: number, avg: number, max: number): number[] {
  const bits = Math.log2(avg);
  const mask = (n: number) => Number(((1n << BigInt(n)) - 1n) << BigInt(32 - n));
  const maskS = mask(bits + 2);
  const maskL = mask(bits - 2);
  const out: number[] = [];
  for (let s = 0; s < x.length; ) {
    const r = x.length - s;
    let len = Math.min(r, max);
    let h = 0;
    for (let k = min; k < Math.min(r, max); k++) {
      h = (h * 2 + gear[x[s + k]!]!) % 2 ** 32;
      const m = k < avg ? maskS : maskL;
      if (Number(BigInt(h) & BigInt(m)) === 0) {
        len = k + 1;
        break;
      }
    }
    out.push(len);
    s += len;
  }
  return out;
}

describe('§9 chunker', () => {
  it('derives the gear table from the secret seed', () => {
    const gear = new Uint32Array(256);
    for (let i = 0; i < 256; i++) gear[i] = u32le(sha256(cat(nk.chunkerSeed, Uint8Array.of(i))), 0);
    expect(Array.from(gear.subarray(0, 4))).toEqual(VECTORS.gearHead);
    expect(Array.from(gearTable(keys.chunkerSeed))).toEqual(Array.from(gear));
  });

  it('cuts the vector input where the reference algorithm does', () => {
    const gear = gearTable(keys.chunkerSeed);
    const expected = referenceChunks(gear, CHUNK_INPUT, 64, 256, 1024);
    expect(expected).toEqual(VECTORS.chunkLengths);
    expect(expected.reduce((a, b) => a + b, 0)).toBe(CHUNK_INPUT.length);
    expect(chunkBuffer(CHUNK_INPUT, { min: 64, avg: 256, max: 1024 }, gear)).toEqual(expected);
    expect(chunkBuffer(CHUNK_INPUT, { min: 128, avg: 512, max: 2048 }, gear)).toEqual(referenceChunks(gear, CHUNK_INPUT, 128, 512, 2048));
  });
});

// ---- a whole repository on disk, read back by hand -----------------------------------------

describe('a repository written by bh, read by hand with noble', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bh-format-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const filesIn = (folder: string): { name: string; bytes: Buffer }[] =>
    readdirSync(join(dir, folder)).map((name) => ({ name, bytes: readFileSync(join(dir, folder, name)) }));

  it('matches FORMAT.md file by file', async () => {
    const repo = await Repository.init(new LocalBackend(dir), { kind: 'password', password: Buffer.from(PASSWORD) }, { scrypt: SMALL_SCRYPT });

    // §1 config: plaintext JSON.
    const config = JSON.parse(readFileSync(join(dir, 'config'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(config)).toEqual(['version', 'id', 'chunker', 'compression', 'pack_size']);
    expect(config).toMatchObject({
      version: 1,
      chunker: { algorithm: 'fastcdc-gear32', min: 524288, avg: 1048576, max: 8388608 },
      compression: { algorithm: 'zstd', level: 3 },
      pack_size: 16777216,
    });
    expect(config['id']).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(config)).not.toMatch(/seed/);

    // §2 the key file opens with noble; its name is the SHA-256 of its bytes.
    const keyFiles = filesIn('keys');
    expect(keyFiles.length).toBe(1);
    const keyFile = JSON.parse(keyFiles[0]!.bytes.toString('utf8')) as { salt: string; data: string; N: number; r: number; p: number };
    expect(keyFiles[0]!.name).toBe(hex(sha256(keyFiles[0]!.bytes)));
    const kek = scrypt(ascii(PASSWORD), Buffer.from(keyFile.salt, 'base64'), { N: keyFile.N, r: keyFile.r, p: keyFile.p, dkLen: 32 });
    const master = nobleOpen(kek, Buffer.from(keyFile.data, 'base64'), ascii('bh/v1/key'));
    expect(hex(master)).toBe(repo.keys.master.toString('hex'));
    const k = nobleKeys(master);

    // Blobs, a flush, a snapshot, a lock.
    const indexed = await repo.loadIndex(await repo.listSnapshots());
    const hello = Buffer.from('hello');
    const text = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(500));
    await indexed.saveBlob('data', hello);
    // saveBlob takes its plaintext over (a data blob's buffer may move to a seal worker): a copy.
    await indexed.saveBlob('data', Buffer.from(text));
    await indexed.saveBlob('data', hello); // deduplicated
    const treeBytes = Buffer.from('{"nodes":[]}');
    const tree = await indexed.saveBlob('tree', treeBytes);
    await indexed.flush();
    const snapshotRecord = { version: 1, time: '2024-01-01T00:00:00.000Z', tree: tree.id.toString('hex'), paths: ['/x'], host: 'h', tags: [], mode: 'full', parent: null };
    const snapshotName = await repo.saveJson('snapshot', snapshotRecord);
    const lock = await repo.lock('exclusive');

    // §4 packs: data/<first two hex digits>/<sha256>, one pack per blob type here.
    const packs: { name: string; bytes: Buffer }[] = [];
    for (const sub of readdirSync(join(dir, 'data'))) {
      for (const f of filesIn(join('data', sub))) {
        expect(f.name.slice(0, 2)).toBe(sub);
        packs.push(f);
      }
    }
    expect(packs.length).toBe(2);
    const seen = new Map<string, { type: number; pack: string; offset: number; length: number; rawLength: number }>();
    for (const pack of packs) {
      expect(pack.name).toBe(hex(sha256(pack.bytes)));
      for (const e of parsePackByHand(k, pack.bytes)) {
        const type = e.type === 0 ? 'data' : 'tree';
        const plaintext = unflag(nobleOpenBlob(k, type, Buffer.from(e.id, 'hex'), pack.bytes.subarray(e.offset, e.offset + e.length)));
        expect(hex(mac(k.idKey, plaintext))).toBe(e.id);
        expect(plaintext.length).toBe(e.rawLength);
        seen.set(e.id, { type: e.type, pack: pack.name, offset: e.offset, length: e.length, rawLength: e.rawLength });
      }
    }
    expect(seen.size).toBe(3);
    expect(seen.get(hex(mac(k.idKey, hello)))?.type).toBe(0);
    expect(seen.get(hex(mac(k.idKey, treeBytes)))?.type).toBe(1);
    // The compressible blob was stored compressed.
    expect(seen.get(hex(mac(k.idKey, text)))!.length).toBeLessThan(text.length);

    // §5 index: one file listing both packs.
    const indexFiles = filesIn('index');
    expect(indexFiles.length).toBe(1);
    expect(indexFiles[0]!.name).toBe(hex(sha256(indexFiles[0]!.bytes)));
    const index = parseIndexByHand(unflag(nobleOpenFile(k, 'index', indexFiles[0]!.bytes)));
    expect(index.supersedes).toEqual([]);
    expect(index.packs.map((p) => p.packId).sort()).toEqual(packs.map((p) => p.name).sort());
    for (const p of index.packs) {
      for (const b of p.blobs) expect(seen.get(b.id)).toEqual({ type: b.type, pack: p.packId, offset: b.offset, length: b.length, rawLength: b.rawLength });
    }

    // §7 snapshot: sealed compact JSON.
    const snapshots = filesIn('snapshots');
    expect(snapshots.map((s) => s.name)).toEqual([snapshotName]);
    expect(snapshotName).toBe(hex(sha256(snapshots[0]!.bytes)));
    expect(Buffer.from(unflag(nobleOpenFile(k, 'snapshot', snapshots[0]!.bytes))).toString('utf8')).toBe(JSON.stringify(snapshotRecord));

    // §8 lock: sealed JSON.
    const locks = filesIn('locks');
    expect(locks.map((l) => l.name)).toEqual([lock.id]);
    const lockRecord = JSON.parse(Buffer.from(unflag(nobleOpenFile(k, 'lock', locks[0]!.bytes))).toString('utf8')) as Record<string, unknown>;
    expect(Object.keys(lockRecord)).toEqual(['version', 'time', 'host', 'pid', 'username', 'exclusive', 'kind', 'started']);
    expect(lockRecord).toMatchObject({ version: 1, pid: process.pid, exclusive: true, kind: 'exclusive' });
    await lock.release();
    expect(filesIn('locks')).toEqual([]);

    // And bh reads back what it wrote.
    const again = await repo.loadIndex(await repo.listSnapshots());
    expect((await again.loadBlob('data', mac(k.idKey, text))).equals(text)).toBe(true);
  });
});

// ---- docs/FORMAT.md carries the same vectors ------------------------------------------------

describe('docs/FORMAT.md', () => {
  const doc = readFileSync(new URL('../docs/FORMAT.md', import.meta.url), 'utf8');
  const squashed = doc.replace(/\s+/g, '');

  it('lists every hardcoded vector', () => {
    for (const [name, value] of Object.entries(VECTORS)) {
      if (typeof value === 'string') expect(doc.includes(value), `${name} missing from FORMAT.md`).toBe(true);
    }
    // Long vectors are wrapped there: compared with all whitespace removed.
    for (const [name, value] of Object.entries(FILE_VECTORS)) expect(squashed.includes(value), `${name} missing from FORMAT.md`).toBe(true);
    expect(squashed).toContain(SNAPSHOT_JSON);
    expect(squashed).toContain(LOCK_JSON);
    expect(doc).toContain('`"all work and no play makes jack a dull boy\\n"` × 4');
    for (const g of VECTORS.gearHead) expect(doc).toContain(`0x${g.toString(16).padStart(8, '0')}`);
    expect(doc).toContain(VECTORS.chunkLengths.join(' ').slice(0, 40));
    expect(squashed).toContain(VECTORS.chunkLengths.join(''));
    expect(squashed).toContain(TREE_VECTOR);
    expect(squashed).toContain(TREE_SHA256_VECTOR);
    expect(doc).toContain(TREE_SHA256_ID);
  });
});
