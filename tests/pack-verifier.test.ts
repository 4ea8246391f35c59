/**
 * The findings check --read-data cannot provoke by flipping bytes on disk (those fail the GCM
 * tag first): a blob that authenticates but does not re-hash to its id, and an index that places
 * a blob where the pack header does not. A real pack is built with the format code (PackBuilder,
 * sealBlob under a wrong id) and verified inline and on the worker threads (the compiled worker
 * that the test setup built): the findings must be these, and the same in both places.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { BlobOpener, sealBlob } from '../src/repo/blob-codec.js';
import { PayloadCodec, type CompressionSettings } from '../src/repo/compression.js';
import { MasterKeys } from '../src/repo/crypto.js';
import { PackBuilder, type PackedBlob } from '../src/repo/pack.js';
import { createPackVerifier, verifyPack } from '../src/repo/pack-verifier.js';

const compression: CompressionSettings = { algorithm: 'zstd', level: 3 };
const keys = MasterKeys.generate();
const codec = new PayloadCodec(compression);

function buildPack(): { packHex: string; bytes: Buffer; blobs: PackedBlob[]; impostor: PackedBlob } {
  const pack = new PackBuilder();
  const add = (content: Buffer, id = keys.blobId(content)): void => pack.add('data', id, sealBlob(keys, 'data', id, codec.encode(content)), content.length);
  add(Buffer.from('compressible text, over and over\n'.repeat(2000)));
  add(randomBytes(100_000));
  // Sealed under the id of other content: the tag verifies, the re-hash does not.
  const content = Buffer.from('what the index says is here\n'.repeat(500));
  add(Buffer.from('something else entirely\n'.repeat(500)).subarray(0, content.length), keys.blobId(content));
  add(randomBytes(3000));
  const { id, parts, blobs } = pack.finish(keys);
  return { packHex: id.toString('hex'), bytes: Buffer.concat(parts), blobs, impostor: blobs[2]! };
}

const savedWorkers = process.env['BH_WORKERS'];
afterEach(() => {
  if (savedWorkers === undefined) delete process.env['BH_WORKERS'];
  else process.env['BH_WORKERS'] = savedWorkers;
});

async function onWorkers(packHex: string, bytes: Buffer, indexed: PackedBlob[]): Promise<unknown> {
  process.env['BH_WORKERS'] = '2';
  const verifier = createPackVerifier(keys, compression);
  try {
    expect(verifier.threads).toBe(2);
    return await verifier.verify(packHex, Buffer.from(bytes), indexed);
  } finally {
    await verifier.close();
  }
}

describe('verifyPack', () => {
  it('a blob that authenticates but does not hash to its id: named, nothing else', async () => {
    const { packHex, bytes, blobs, impostor } = buildPack();
    const subject = `data/${packHex}`;
    const expected = [{ level: 'error', subject, message: `data blob ${impostor.id.toString('hex')} does not hash to its id` }];
    expect(verifyPack(keys, new BlobOpener(keys, compression), packHex, bytes, blobs)).toEqual(expected);
    expect(await onWorkers(packHex, bytes, blobs)).toEqual(expected);
  });

  it('an index entry the pack header does not hold: named by its offset, and its envelope fails', async () => {
    const { packHex, bytes, blobs, impostor } = buildPack();
    const shifted = { ...blobs[1]!, offset: blobs[1]!.offset + 1 };
    const indexed = blobs.map((b) => (b === blobs[1] ? shifted : b));
    const subject = `data/${packHex}`;
    const id = shifted.id.toString('hex');
    const expected = [
      { level: 'error', subject, message: `data blob ${id} is in the index but not in the pack header at offset ${shifted.offset}` },
      { level: 'error', subject, message: `data blob ${id} in ${subject}: authentication failed (the data is damaged, or was written with another key)` },
      { level: 'error', subject, message: `data blob ${impostor.id.toString('hex')} does not hash to its id` },
    ];
    expect(verifyPack(keys, new BlobOpener(keys, compression), packHex, bytes, indexed)).toEqual(expected);
    expect(await onWorkers(packHex, bytes, indexed)).toEqual(expected);
  });

  it('bytes that do not hash to the pack name: said once, the blobs still checked', async () => {
    const { bytes, blobs, impostor } = buildPack();
    const wrongName = '00'.repeat(32);
    const subject = `data/${wrongName}`;
    const expected = [
      { level: 'error', subject, message: 'pack content does not match its name (SHA-256): the file is damaged' },
      { level: 'error', subject, message: `data blob ${impostor.id.toString('hex')} does not hash to its id` },
    ];
    expect(verifyPack(keys, new BlobOpener(keys, compression), wrongName, bytes, blobs)).toEqual(expected);
    expect(await onWorkers(wrongName, bytes, blobs)).toEqual(expected);
  });
});
