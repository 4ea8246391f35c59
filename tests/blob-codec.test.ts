/**
 * The one blob codec (src/repo/blob-codec.ts): opening a blob whole (loadBlob) and streamed
 * (restore, check --read-data, prune) must accept the same envelopes and refuse the same ones
 * with the same error, and a blob the repository lacks is one MissingBlobError whether no index
 * lists it or its pack is gone. Envelopes are built with the format code; the repository is a
 * real one in a temp folder.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBackend } from '../src/backends/index.js';
import { BlobOpener, sealBlob, sealBlobPayload } from '../src/repo/blob-codec.js';
import { Compressor } from 'zstd-napi';
import { PAYLOAD_ZSTD, PayloadCodec, type CompressionSettings } from '../src/repo/compression.js';
import { AuthenticationError, MasterKeys } from '../src/repo/crypto.js';
import { DamagedFileError, FormatError, MissingBlobError } from '../src/repo/errors.js';
import { Repository } from '../src/repo/repository.js';
import { makeTempDir, removeDir } from './helpers/cli.js';

const compression: CompressionSettings = { algorithm: 'zstd', level: 3 };
const keys = MasterKeys.generate();
const codec = new PayloadCodec(compression);
const PACK = 'ab'.repeat(32);

/** 64 MiB of zeros in a frame of a few KB, with its length declared, and one without. */
const BOMB_PLAIN = Buffer.alloc(64 << 20);
const BOMB = Buffer.concat([Buffer.of(PAYLOAD_ZSTD), new Compressor().compress(BOMB_PLAIN)]);
const UNDECLARED = (() => {
  const compressor = new Compressor();
  compressor.setParameters({ contentSizeFlag: false });
  return Buffer.concat([Buffer.of(PAYLOAD_ZSTD), compressor.compress(BOMB_PLAIN)]);
})();

interface Case {
  name: string;
  id: Buffer;
  envelope: Buffer;
  rawLength: number;
  /** The plaintext both ways must return, or the error class both must throw. */
  expected: Buffer | (new (...args: never[]) => Error);
}

function cases(): Case[] {
  const text = Buffer.from('compressible, and long enough to be compressed\n'.repeat(3000));
  const random = randomBytes(200_000);
  const other = Buffer.from('not what the id says\n'.repeat(10));
  const good = (content: Buffer): Case => ({ name: '', id: keys.blobId(content), envelope: sealBlobPayload(keys, codec, 'data', keys.blobId(content), content), rawLength: content.length, expected: content });
  const flipped = good(random);
  flipped.envelope[100]! ^= 1;
  return [
    { ...good(text), name: 'a compressed blob' },
    { ...good(random), name: 'a stored blob of several slices' },
    { ...good(Buffer.alloc(0)), name: 'an empty blob' },
    { ...flipped, name: 'a flipped byte', expected: AuthenticationError },
    { ...good(random), name: 'an envelope too short to hold a tag', envelope: randomBytes(20), expected: AuthenticationError },
    { ...good(text), name: 'another length than the index says', rawLength: text.length - 1, expected: DamagedFileError },
    { name: 'content sealed under another id', id: keys.blobId(text), envelope: sealBlobPayload(keys, codec, 'data', keys.blobId(text), other), rawLength: other.length, expected: DamagedFileError },
    { name: 'a zstd bomb: a small frame claiming far more than the index says', id: keys.blobId(BOMB_PLAIN), envelope: sealBlob(keys, 'data', keys.blobId(BOMB_PLAIN), BOMB), rawLength: 100, expected: DamagedFileError },
    { name: 'a frame without a declared length that grows past the index', id: keys.blobId(BOMB_PLAIN), envelope: sealBlob(keys, 'data', keys.blobId(BOMB_PLAIN), UNDECLARED), rawLength: 1000, expected: FormatError },
    { name: 'a payload that does not decode', id: keys.blobId(text), envelope: sealBlob(keys, 'data', keys.blobId(text), Buffer.of(7, 1, 2, 3)), rawLength: 3, expected: FormatError },
  ];
}

describe('the blob codec', () => {
  it('opens whole and streamed alike: the same plaintext, or the same error naming the blob', () => {
    const opener = new BlobOpener(keys, compression);
    for (const c of cases()) {
      const whole = (): Buffer => opener.open('data', c.id, c.envelope, PACK, c.rawLength);
      const streamed = (): Buffer => Buffer.concat(opener.openParts('data', c.id, c.envelope, PACK, c.rawLength));
      if (Buffer.isBuffer(c.expected)) {
        expect(whole().equals(c.expected), c.name).toBe(true);
        expect(streamed().equals(c.expected), c.name).toBe(true);
        continue;
      }
      const errors = [whole, streamed].map((open) => {
        try {
          open();
        } catch (error) {
          return error as Error;
        }
        throw new Error(`${c.name}: opened`);
      });
      for (const error of errors) {
        expect(error, c.name).toBeInstanceOf(c.expected);
        expect(error.message, c.name).toContain(c.id.toString('hex'));
        expect(error.message, c.name).toContain(`data/${PACK}`);
      }
      expect(errors[1]!.message, c.name).toBe(errors[0]!.message);
    }
  });
});

describe('a zstd bomb in a file (snapshot, index, key, lock)', () => {
  it('is refused from its declared length, before any memory is taken for it', () => {
    expect(BOMB.length).toBeLessThan(64 << 10);
    expect(() => codec.decode(BOMB, 'snapshots/x')).toThrow(/^snapshots\/x: zstd frame claims 67108864 bytes of plaintext where at most \d+ are possible; refused unread$/);
  });

  it('without a declared length, stops at the bound', () => {
    expect(() => codec.decode(UNDECLARED, 'index/y')).toThrow(/^index\/y: zstd frame does not decompress within \d+ bytes/);
  });

  it('a file that compresses well is still read', () => {
    const text = Buffer.from('{"paths":["/home/user/some/long/path"]}'.repeat(20_000));
    expect(codec.decode(codec.encode(text), 'snapshots/z').equals(text)).toBe(true);
  });
});

describe('a blob the repository lacks', () => {
  let tmp: string;
  let repoDir: string;
  let stored: { id: Buffer; pack: string };

  beforeAll(async () => {
    tmp = await makeTempDir('bh-blob-codec-');
    repoDir = join(tmp, 'repo');
    const secret = { kind: 'password' as const, password: Buffer.from('blob codec') };
    const repo = await Repository.init(await openBackend(repoDir, { env: {} }), secret, { scrypt: { N: 1024, r: 8, p: 1 } });
    const indexed = await repo.loadIndex(await repo.listSnapshots());
    const { id } = await indexed.saveBlob('data', randomBytes(5000));
    await indexed.flush();
    await indexed.close();
    stored = { id, pack: (await repo.loadIndex(await repo.listSnapshots())).index.lookup('data', id)!.packId.toString('hex') };
  });

  afterAll(async () => {
    await removeDir(tmp);
  });

  async function load(id: Buffer): Promise<Error> {
    const secret = { kind: 'password' as const, password: Buffer.from('blob codec') };
    const repo = await Repository.open(await openBackend(repoDir, { env: {} }), secret);
    const indexed = await repo.loadIndex(await repo.listSnapshots());
    return indexed.loadBlob('data', id).then(
      () => new Error('loaded'),
      (error: Error) => error,
    );
  }

  it('is a MissingBlobError when no index lists it', async () => {
    const error = await load(randomBytes(32));
    expect(error).toBeInstanceOf(MissingBlobError);
    expect(error.message).toMatch(/^data blob [0-9a-f]{64} is not in the index \(the repository is missing data; run 'bh check'\)$/);
  });

  it('is a MissingBlobError naming the pack when its pack is gone', async () => {
    await rm(join(repoDir, 'data', stored.pack.slice(0, 2), stored.pack));
    const error = await load(stored.id);
    expect(error).toBeInstanceOf(MissingBlobError);
    expect(error.message).toBe(`${repoDir}: data/${stored.pack} does not exist`);
  });
});
