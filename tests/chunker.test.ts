import { randomBytes } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_CHUNKER_PARAMS,
  chunkBuffer,
  chunkStream,
  findBoundary,
  gearTable,
  validateChunkerParams,
  type ChunkerParams,
} from '../src/chunker/index.js';

const SMALL: ChunkerParams = { min: 64, avg: 256, max: 1024 };
const MiB = 1024 * 1024;
const ZERO_SEED = new Uint8Array(32);
const GEAR0 = gearTable(ZERO_SEED);
const GEAR1 = gearTable(Uint8Array.from({ length: 32 }, (_, i) => i + 1));

/** Deterministic pseudo-random bytes (mulberry32), independent of Math.random. */
function prngBytes(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let a = seed >>> 0;
  for (let i = 0; i < length; i += 4) {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    const w = (t ^ (t >>> 14)) >>> 0;
    out[i] = w & 255;
    if (i + 1 < length) out[i + 1] = (w >>> 8) & 255;
    if (i + 2 < length) out[i + 2] = (w >>> 16) & 255;
    if (i + 3 < length) out[i + 3] = w >>> 24;
  }
  return out;
}

/**
 * A literal transcription of the normative algorithm in src/chunker/fastcdc.ts (unsigned
 * arithmetic, one byte per step, no resumable state), used to cross-check the fast code.
 */
function referenceChunks(x: Uint8Array, p: ChunkerParams, gear: Uint32Array): number[] {
  const B = Math.round(Math.log2(p.avg));
  const S = B + 2;
  const L = B - 2;
  const MASK_S = (2 ** S - 1) * 2 ** (32 - S);
  const MASK_L = (2 ** L - 1) * 2 ** (32 - L);
  const out: number[] = [];
  let s = 0;
  while (s < x.length) {
    const R = x.length - s;
    const limit = Math.min(R, p.max);
    let len = limit;
    let h = 0;
    for (let k = p.min; k < limit; k++) {
      h = (h * 2 + gear[x[s + k]!]!) % 2 ** 32;
      const mask = k < p.avg ? MASK_S : MASK_L;
      if ((h & mask) >>> 0 === 0) {
        len = k + 1;
        break;
      }
    }
    out.push(len);
    s += len;
  }
  return out;
}

/** Yields `data` split at the given (sorted, deduplicated) offsets, as fresh views. */
async function* splitSource(data: Uint8Array, cuts: number[], asBuffer = true): AsyncGenerator<Uint8Array> {
  let prev = 0;
  for (const c of [...cuts, data.length]) {
    if (c < prev) continue;
    const piece = data.subarray(prev, c);
    yield asBuffer ? Buffer.from(piece.buffer, piece.byteOffset, piece.length) : piece;
    prev = c;
  }
}

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of gen) out.push(c);
  return out;
}

function offsets(lengths: number[]): number[] {
  const out: number[] = [];
  let o = 0;
  for (const l of lengths) out.push((o += l));
  return out;
}

function checkBounds(lengths: number[], p: ChunkerParams): void {
  lengths.forEach((len, i) => {
    expect(len).toBeLessThanOrEqual(p.max);
    if (i < lengths.length - 1) expect(len).toBeGreaterThanOrEqual(p.min);
    else expect(len).toBeGreaterThanOrEqual(1);
  });
}

const sortedCuts = (maxLen: number) =>
  fc.array(fc.integer({ min: 0, max: maxLen }), { maxLength: 40 }).map((a) => [...new Set(a)].sort((x, y) => x - y));

/** Random valid small parameters. */
const smallParams = fc
  .constantFrom(128, 256, 512, 1024)
  .chain((avg) =>
    fc.record({
      min: fc.integer({ min: 64, max: avg - 1 }),
      avg: fc.constant(avg),
      max: fc.integer({ min: avg + 1, max: avg * 8 }),
    }),
  );

/** Random data: either PRNG bytes (realistic) or fast-check's byte arrays (biased, repetitive). */
const dataArb = fc.oneof(
  fc.record({ seed: fc.integer(), len: fc.integer({ min: 0, max: 12_000 }) }).map(({ seed, len }) => prngBytes(seed, len)),
  fc.uint8Array({ maxLength: 6000 }),
);

describe('gearTable', () => {
  it('entry i is LE32 of SHA-256(seed || [i]) (checked with @noble/hashes)', () => {
    const independent = (seed: Uint8Array, i: number): number => {
      const msg = new Uint8Array(seed.length + 1);
      msg.set(seed);
      msg[seed.length] = i;
      const d = sha256(msg);
      return (d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24)) >>> 0;
    };
    expect(GEAR0).toBeInstanceOf(Uint32Array);
    expect(GEAR0.length).toBe(256);
    for (const i of [0, 1, 255]) expect(GEAR0[i]).toBe(independent(ZERO_SEED, i));
    // Test vector for other implementations: seed = 32 zero bytes.
    expect(GEAR0[0]).toBe(0x319e9c7f);
    expect(GEAR0[1]).toBe(0x7424d41f);
    expect(GEAR0[255]).toBe(0xefa030ac);
    const seed = randomBytes(32);
    const t = gearTable(seed);
    for (let i = 0; i < 256; i++) expect(t[i]).toBe(independent(seed, i));
  });

  it('is deterministic and seed-dependent', () => {
    expect(gearTable(new Uint8Array(32))).toEqual(GEAR0);
    expect(GEAR1).not.toEqual(GEAR0);
  });
});

describe('params', () => {
  it('accepts the defaults', () => {
    expect(DEFAULT_CHUNKER_PARAMS).toEqual({ min: 512 * 1024, avg: 1024 * 1024, max: 8 * 1024 * 1024 });
    expect(() => validateChunkerParams(DEFAULT_CHUNKER_PARAMS)).not.toThrow();
    expect(() => validateChunkerParams({ min: 64, avg: 128, max: 64 * MiB })).not.toThrow();
  });

  it.each([
    [{ min: 64, avg: 300, max: 1024 }, /power of two/],
    [{ min: 32, avg: 256, max: 1024 }, /min must be >= 64/],
    [{ min: 256, avg: 256, max: 1024 }, /min < avg < max/],
    [{ min: 64, avg: 256, max: 256 }, /min < avg < max/],
    [{ min: 64, avg: 256, max: 64 * MiB + 1 }, /max must be <= /],
    [{ min: 64.5, avg: 256, max: 1024 }, /min must be an integer/],
    [{ min: 64, avg: 256, max: Number.NaN }, /max must be an integer/],
  ])('rejects %o', (p, re) => {
    expect(() => validateChunkerParams(p)).toThrow(re);
    expect(() => chunkBuffer(new Uint8Array(10), p, GEAR0)).toThrow(re);
    expect(() => chunkStream(splitSource(new Uint8Array(10), []), p, GEAR0)).toThrow(re);
  });

  it('rejects a bad gear table', () => {
    expect(() => chunkBuffer(new Uint8Array(10), SMALL, new Uint32Array(255))).toThrow(/gear table/);
  });
});

describe('chunkBuffer', () => {
  it('empty input has no chunks', async () => {
    expect(chunkBuffer(new Uint8Array(0), SMALL, GEAR0)).toEqual([]);
    expect(await collect(chunkStream(splitSource(new Uint8Array(0), []), SMALL, GEAR0))).toEqual([]);
    expect(await collect(chunkStream(splitSource(new Uint8Array(0), [0, 0]), SMALL, GEAR0))).toEqual([]);
  });

  it('matches the literal reference transcription of the algorithm', () => {
    fc.assert(
      fc.property(dataArb, smallParams, fc.boolean(), (data, p, seed1) => {
        const gear = seed1 ? GEAR1 : GEAR0;
        expect(chunkBuffer(data, p, gear)).toEqual(referenceChunks(data, p, gear));
      }),
      { numRuns: 300 },
    );
  });

  it('lengths sum to the input and respect min/max', () => {
    fc.assert(
      fc.property(dataArb, smallParams, (data, p) => {
        const lengths = chunkBuffer(data, p, GEAR0);
        expect(lengths.reduce((a, b) => a + b, 0)).toBe(data.length);
        checkBounds(lengths, p);
      }),
      { numRuns: 200 },
    );
  });

  it('constant input (low entropy) still obeys the bounds', () => {
    // On a run of one byte value v, h settles after 32 bytes at -gear[v] mod 2^32, so runs are
    // either cut early or only at max.
    for (const v of [0, 1, 0xff]) {
      const data = new Uint8Array(10_000).fill(v);
      const lengths = chunkBuffer(data, SMALL, GEAR0);
      checkBounds(lengths, SMALL);
      expect(lengths).toEqual(referenceChunks(data, SMALL, GEAR0));
    }
  });

  it('golden vectors (seed = 32 zero bytes, min 256 / avg 1024 / max 4096)', () => {
    const p = { min: 256, avg: 1024, max: 4096 };
    // Input A: byte i = ((i * 2654435761) mod 2^32) >> 24, for i = 0 .. 65535.
    const a = new Uint8Array(65536);
    for (let i = 0; i < a.length; i++) a[i] = ((i * 2654435761) >>> 24) & 255;
    const expectedA = [
      1316, 1276, 1164, 1277, 1143, 1517, 1521, 1143, 1241, 1055, 1120, 1183, 368, 1025, 1259, 1031, 1654, 1139, 1112,
      1055, 1120, 1183, 368, 1025, 1259, 1133, 1552, 1139, 1682, 1326, 1066, 764, 1025, 1259, 1133, 1552, 1174, 1404,
      1260, 588, 1521, 1119, 1195, 1419, 1276, 1164, 1277, 1143, 1517, 1521, 1143, 1241, 1055, 1120, 1183, 31,
    ];
    expect(chunkBuffer(a, p, GEAR0)).toEqual(expectedA);
    expect(referenceChunks(a, p, GEAR0)).toEqual(expectedA);

    // Input B: byte i = fmix32(i) & 0xff (MurmurHash3's 32-bit finalizer), i = 0 .. 65535.
    const fmix32 = (h: number): number => {
      h ^= h >>> 16;
      h = Math.imul(h, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      h ^= h >>> 16;
      return h >>> 0;
    };
    const b = new Uint8Array(65536);
    for (let i = 0; i < b.length; i++) b[i] = fmix32(i) & 255;
    const expectedB = [
      1585, 1690, 1375, 1051, 1345, 1025, 373, 712, 1110, 1170, 1355, 1417, 1075, 1314, 993, 554, 904, 1149, 1081, 1090,
      635, 727, 1229, 1189, 754, 697, 1301, 1039, 1038, 1069, 1454, 1096, 1163, 1680, 1190, 997, 1100, 1585, 1519, 780,
      1134, 1228, 1087, 1078, 1771, 312, 1077, 442, 1374, 738, 546, 1834, 1532, 1251, 1818, 1303, 1064, 1115, 222,
    ];
    expect(chunkBuffer(b, p, GEAR0)).toEqual(expectedB);
    expect(referenceChunks(b, p, GEAR0)).toEqual(expectedB);
  });
});

describe('findBoundary', () => {
  it('agrees with chunkBuffer and asks for more bytes only when undecided', () => {
    fc.assert(
      fc.property(dataArb, smallParams, fc.nat(), (data, p, r) => {
        const lengths = chunkBuffer(data, p, GEAR0);
        let start = 0;
        for (const len of lengths) {
          const isLast = start + len === data.length;
          const full = findBoundary(data, start, data.length, p, GEAR0);
          if (full === -1) {
            expect(isLast).toBe(true);
            expect(data.length - start).toBeLessThan(p.max);
          } else {
            expect(full).toBe(len);
          }
          // With fewer bytes: either the same cut (if it lies inside) or -1.
          const end = start + (r % (len + 1));
          const partial = findBoundary(data, start, end, p, GEAR0);
          if (partial !== -1) expect(partial).toBe(len);
          else expect(end - start).toBeLessThan(p.max);
          if (end - start < p.min) expect(partial).toBe(-1);
          start += len;
        }
      }),
      { numRuns: 100 },
    );
  });

  it('checks its range', () => {
    expect(() => findBoundary(new Uint8Array(10), 5, 11, SMALL, GEAR0)).toThrow(RangeError);
    expect(() => findBoundary(new Uint8Array(10), 6, 5, SMALL, GEAR0)).toThrow(RangeError);
    expect(findBoundary(new Uint8Array(10), 10, 10, SMALL, GEAR0)).toBe(-1);
  });
});

describe('chunkStream', () => {
  it('gives the same chunks as chunkBuffer however the input is split', async () => {
    await fc.assert(
      fc.asyncProperty(
        dataArb.chain((d) => fc.tuple(fc.constant(d), sortedCuts(d.length))),
        smallParams,
        fc.boolean(),
        async ([data, cuts], p, asBuffer) => {
          const chunks = await collect(chunkStream(splitSource(data, cuts, asBuffer), p, GEAR0));
          expect(chunks.map((c) => c.length)).toEqual(chunkBuffer(data, p, GEAR0));
          for (const c of chunks) expect(Buffer.isBuffer(c)).toBe(true);
          expect(Buffer.concat(chunks).equals(Buffer.from(data))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('handles one-byte reads and reads larger than max', async () => {
    const data = prngBytes(7, 20_000);
    const expected = chunkBuffer(data, SMALL, GEAR0);
    const oneByte = Array.from({ length: data.length }, (_, i) => i + 1);
    const a = await collect(chunkStream(splitSource(data, oneByte), SMALL, GEAR0));
    expect(a.map((c) => c.length)).toEqual(expected);
    expect(Buffer.concat(a).equals(Buffer.from(data))).toBe(true);
    const b = await collect(chunkStream(splitSource(data, [5000, 5001, 15_000]), SMALL, GEAR0));
    expect(b.map((c) => c.length)).toEqual(expected);
    expect(Buffer.concat(b).equals(Buffer.from(data))).toBe(true);
  });

  it('with copyInput, chunks survive a producer that reuses its read buffer', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer(),
        fc.integer({ min: 0, max: 10_000 }),
        fc.integer({ min: 1, max: 3000 }),
        async (seed, len, readSize) => {
          const data = prngBytes(seed, len);
          const scratch = Buffer.alloc(readSize);
          async function* reusing(): AsyncGenerator<Uint8Array> {
            for (let o = 0; o < data.length; o += readSize) {
              const n = Math.min(readSize, data.length - o);
              scratch.set(data.subarray(o, o + n));
              yield scratch.subarray(0, n);
              scratch.fill(0xee); // the producer scribbles over its buffer after each read
            }
          }
          const chunks = await collect(chunkStream(reusing(), SMALL, GEAR0, { copyInput: true }));
          expect(chunks.map((c) => c.length)).toEqual(chunkBuffer(data, SMALL, GEAR0));
          expect(Buffer.concat(chunks).equals(Buffer.from(data))).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('rejects string reads', async () => {
    async function* strings(): AsyncGenerator<Uint8Array> {
      yield 'abc' as unknown as Uint8Array;
    }
    await expect(collect(chunkStream(strings(), SMALL, GEAR0))).rejects.toThrow(/Uint8Array/);
  });

  it('default params on 24 MiB of pseudo-random data, in uneven reads', async () => {
    const data = prngBytes(0xb4c0, 24 * MiB);
    const reads: number[] = [];
    for (let o = 0, i = 0; o < data.length; i++) reads.push((o += [1 * MiB, 65536, 3 * MiB + 7, 1000][i % 4]!));
    const chunks = await collect(chunkStream(splitSource(data, reads), DEFAULT_CHUNKER_PARAMS, GEAR0));
    const lengths = chunks.map((c) => c.length);
    expect(lengths).toEqual(chunkBuffer(data, DEFAULT_CHUNKER_PARAMS, GEAR0));
    expect(lengths.reduce((a, b) => a + b, 0)).toBe(data.length);
    checkBounds(lengths, DEFAULT_CHUNKER_PARAMS);
    expect(Buffer.concat(chunks).equals(Buffer.from(data))).toBe(true);
    // Normalized chunking with min = avg/2: the mean is about 1.2 MiB on random data.
    const full = lengths.slice(0, -1);
    const mean = full.reduce((a, b) => a + b, 0) / full.length;
    expect(mean).toBeGreaterThan(0.8 * MiB);
    expect(mean).toBeLessThan(1.6 * MiB);
  });
});

describe('boundaries', () => {
  it('same seed gives the same boundaries, different seeds different ones', () => {
    const data = prngBytes(42, 64 * 1024);
    const a = chunkBuffer(data, SMALL, gearTable(new Uint8Array(32)));
    expect(chunkBuffer(data, SMALL, GEAR0)).toEqual(a);
    const b = chunkBuffer(data, SMALL, GEAR1);
    expect(b).not.toEqual(a);
    // Not just a shifted first cut: most boundaries differ.
    const setA = new Set(offsets(a));
    const common = offsets(b).filter((o) => setA.has(o)).length;
    expect(common).toBeLessThan(a.length / 2);
    for (let i = 0; i < 5; i++) {
      const c = chunkBuffer(data, SMALL, gearTable(randomBytes(32)));
      expect(c).not.toEqual(a);
    }
  });

  it('shift resistance: an insertion near the start keeps most later boundaries', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 0, max: 2000 }),
        fc.uint8Array({ minLength: 1, maxLength: 16 }),
        (seed, at, inserted) => {
          const data = prngBytes(seed, 64 * 1024);
          const edited = new Uint8Array(data.length + inserted.length);
          edited.set(data.subarray(0, at));
          edited.set(inserted, at);
          edited.set(data.subarray(at), at + inserted.length);
          const before = offsets(chunkBuffer(data, SMALL, GEAR0)).filter((o) => o > at);
          const after = new Set(
            offsets(chunkBuffer(edited, SMALL, GEAR0))
              .map((o) => o - inserted.length)
              .filter((o) => o > at),
          );
          const kept = before.filter((o) => after.has(o)).length;
          expect(kept).toBeGreaterThanOrEqual(before.length * 0.9);
        },
      ),
      { numRuns: 50 },
    );
  });
});
