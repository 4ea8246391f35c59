/**
 * Properties of the encryption envelopes and the payload codec (docs/FORMAT.md §3).
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { PayloadCodec } from '../src/repo/compression.js';
import { AuthenticationError, type BlobType, type FileKind, MasterKeys } from '../src/repo/crypto.js';
import { openBlob, sealBlob } from '../src/repo/blob-codec.js';
import { openFile, sealFile } from '../src/repo/envelope.js';

const master = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => new MasterKeys(Buffer.from(b)));
const fixedKeys = new MasterKeys(Buffer.from(Array.from({ length: 32 }, (_, i) => i)));
const blobId = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b));
const payload = fc.uint8Array({ maxLength: 4096 }).map((b) => Buffer.from(b));
const blobType = fc.constantFrom<BlobType>('data', 'tree');
const fileKind = fc.constantFrom<FileKind>('index', 'snapshot', 'lock', 'packHeader');

/** A position in a buffer of `length` bytes and a non-zero XOR mask. */
const flip = fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 }));

function flipped(bytes: Buffer, [position, mask]: [number, number]): Buffer {
  const out = Buffer.from(bytes);
  const at = position % out.length;
  out[at]! ^= mask;
  return out;
}

/** Incompressible bytes: SHA-256 in counter mode from a seed (fast-check's own byte arrays are biased). */
function randomBytesFrom(seed: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length + 32);
  for (let i = 0, at = 0; at < length; i++, at += 32) {
    createHash('sha256').update(`${seed}:${i}`).digest().copy(out, at);
  }
  return out.subarray(0, length);
}

describe('blob envelopes', () => {
  it('open what they sealed', () => {
    fc.assert(
      fc.property(master, blobType, blobId, payload, (keys, type, id, data) => {
        const envelope = sealBlob(keys, type, id, data);
        expect(envelope.length).toBe(data.length + 28);
        expect(openBlob(keys, type, id, envelope, 'blob').equals(data)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('refuse any single flipped byte', () => {
    fc.assert(
      fc.property(blobType, blobId, payload, flip, (type, id, data, f) => {
        const damaged = flipped(sealBlob(fixedKeys, type, id, data), f);
        expect(() => openBlob(fixedKeys, type, id, damaged, 'blob')).toThrow(AuthenticationError);
      }),
      { numRuns: 300 },
    );
  });

  it('refuse truncation and extension', () => {
    fc.assert(
      fc.property(blobType, blobId, payload, fc.nat(), (type, id, data, cut) => {
        const envelope = sealBlob(fixedKeys, type, id, data);
        const truncated = envelope.subarray(0, cut % envelope.length);
        expect(() => openBlob(fixedKeys, type, id, truncated, 'blob')).toThrow(AuthenticationError);
        expect(() => openBlob(fixedKeys, type, id, Buffer.concat([envelope, Buffer.of(0)]), 'blob')).toThrow(AuthenticationError);
      }),
      { numRuns: 100 },
    );
  });

  it('refuse to open under another id, another type or another master key', () => {
    fc.assert(
      fc.property(blobType, blobId, blobId, payload, master, (type, id, otherId, data, otherKeys) => {
        fc.pre(!id.equals(otherId) && !otherKeys.master.equals(fixedKeys.master));
        const envelope = sealBlob(fixedKeys, type, id, data);
        const otherType: BlobType = type === 'data' ? 'tree' : 'data';
        expect(() => openBlob(fixedKeys, type, otherId, envelope, 'blob')).toThrow(AuthenticationError);
        expect(() => openBlob(fixedKeys, otherType, id, envelope, 'blob')).toThrow(AuthenticationError);
        expect(() => openBlob(otherKeys, type, id, envelope, 'blob')).toThrow(AuthenticationError);
      }),
      { numRuns: 200 },
    );
  });

  it('name the object in the error', () => {
    const envelope = sealBlob(fixedKeys, 'data', Buffer.alloc(32), Buffer.from('x'));
    expect(() => openBlob(fixedKeys, 'tree', Buffer.alloc(32), envelope, 'data blob 00… in data/ab…')).toThrow(/^data blob 00… in data\/ab…: authentication failed/);
  });
});

describe('file envelopes', () => {
  it('open what they sealed, with a fresh salt and nonce every time', () => {
    fc.assert(
      fc.property(master, fileKind, payload, (keys, kind, data) => {
        const a = sealFile(keys, kind, data);
        const b = sealFile(keys, kind, data);
        expect(a.length).toBe(data.length + 16 + 12 + 16);
        expect(a.subarray(0, 28).equals(b.subarray(0, 28))).toBe(false);
        expect(openFile(keys, kind, a, 'file').equals(data)).toBe(true);
        expect(openFile(keys, kind, b, 'file').equals(data)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('refuse any single flipped byte, salt included', () => {
    fc.assert(
      fc.property(fileKind, payload, flip, (kind, data, f) => {
        const damaged = flipped(sealFile(fixedKeys, kind, data), f);
        expect(() => openFile(fixedKeys, kind, damaged, 'file')).toThrow(AuthenticationError);
      }),
      { numRuns: 300 },
    );
  });

  it('refuse truncation', () => {
    fc.assert(
      fc.property(fileKind, payload, fc.nat(), (kind, data, cut) => {
        const bytes = sealFile(fixedKeys, kind, data);
        expect(() => openFile(fixedKeys, kind, bytes.subarray(0, cut % bytes.length), 'file')).toThrow(AuthenticationError);
      }),
      { numRuns: 100 },
    );
  });

  it('refuse to open as another kind or under another master key', () => {
    fc.assert(
      fc.property(fileKind, fileKind, payload, master, (kind, otherKind, data, otherKeys) => {
        fc.pre(kind !== otherKind && !otherKeys.master.equals(fixedKeys.master));
        const bytes = sealFile(fixedKeys, kind, data);
        expect(() => openFile(fixedKeys, otherKind, bytes, 'file')).toThrow(AuthenticationError);
        expect(() => openFile(otherKeys, kind, bytes, 'file')).toThrow(AuthenticationError);
      }),
      { numRuns: 200 },
    );
  });
});

describe('payload codec', () => {
  const zstd = new PayloadCodec({ algorithm: 'zstd', level: 3 });
  const none = new PayloadCodec({ algorithm: 'none', level: 0 });

  it('round-trips any bytes, with and without compression', () => {
    fc.assert(
      fc.property(payload, (data) => {
        for (const codec of [zstd, none]) {
          const encoded = codec.encode(data);
          expect([0, 1]).toContain(encoded[0]);
          expect(encoded.length).toBeLessThanOrEqual(data.length + 1);
          expect(zstd.decode(encoded, 'payload').equals(data)).toBe(true);
          expect(none.decode(encoded, 'payload').equals(data)).toBe(true);
        }
        expect(none.encode(data)[0]).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('stores random data raw (flag 0)', () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 0, max: 70_000 }), (seed, length) => {
        const data = randomBytesFrom(seed, length);
        const encoded = zstd.encode(data);
        expect(encoded[0]).toBe(0);
        expect(encoded.subarray(1).equals(data)).toBe(true);
        expect(zstd.decode(encoded, 'payload').equals(data)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('compresses compressible data (flag 1) and keeps only real savings', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 32 }), fc.integer({ min: 256, max: 200_000 }), (unit, length) => {
        const data = Buffer.alloc(length, Buffer.from(unit));
        const encoded = zstd.encode(data);
        expect(encoded[0]).toBe(1);
        expect(encoded.length - 1).toBeLessThanOrEqual(data.length * (1 - 1 / 32));
        expect(zstd.decode(encoded, 'payload').equals(data)).toBe(true);
        expect(none.decode(encoded, 'payload').equals(data)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('keeps payloads under 64 bytes raw', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 63 }), (length) => {
        expect(zstd.encode(Buffer.alloc(length))[0]).toBe(0);
      }),
    );
  });

  it('refuses unknown flags and broken frames', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 255 }), payload, (flag, body) => {
        expect(() => zstd.decode(Buffer.concat([Buffer.of(flag), body]), 'blob x')).toThrow(/blob x: unknown payload flag/);
      }),
    );
    expect(() => zstd.decode(Buffer.from('01deadbeef', 'hex'), 'blob y')).toThrow(/blob y: zstd frame does not decompress/);
  });
});
