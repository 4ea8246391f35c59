/**
 * The one pack writer (src/repo/pack-writer.ts), which backups, copy and prune's repack write
 * packs through: at most `concurrency` uploads at once (a closed pack waits, and says so, which
 * is the backup's backpressure), a pack indexed only once stored, tree packs written through to
 * the cache, and a failed upload raised without its pack being indexed. A real repository in a
 * temp folder, its backend wrapped so that the test decides when each pack upload proceeds.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Backend, openBackend } from '../src/backends/index.js';
import { sealBlobPayload } from '../src/repo/blob-codec.js';
import type { BlobType } from '../src/repo/crypto.js';
import type { IndexedPack } from '../src/repo/index-file.js';
import { PackWriter } from '../src/repo/pack-writer.js';
import { Repository } from '../src/repo/repository.js';
import { makeTempDir, removeDir } from './helpers/cli.js';

const SECRET = { kind: 'password' as const, password: Buffer.from('pack writer') };
/** The smallest pack size the format allows: every blob below closes a pack of its own. */
const PACK_SIZE = 1024;

let tmp: string;

beforeEach(async () => {
  tmp = await makeTempDir('bh-pack-writer-');
});

afterEach(async () => {
  await removeDir(tmp);
});

/** Pack uploads wait at a gate each until released; `failNext` makes the next one fail. */
class GatedBackend {
  inFlight = 0;
  maxInFlight = 0;
  failNext = false;
  private readonly gates: (() => void)[] = [];

  constructor(private readonly inner: Backend) {}

  get backend(): Backend {
    const inner = this.inner;
    return {
      location: inner.location,
      list: (type) => inner.list(type),
      stat: (ref) => inner.stat(ref),
      read: (ref, range, signal) => inner.read(ref, range, signal),
      write: async (ref, data, options) => {
        if (ref.type !== 'data') return inner.write(ref, data, options);
        this.inFlight++;
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
        try {
          await new Promise<void>((resolve) => this.gates.push(resolve));
          if (this.failNext) {
            this.failNext = false;
            throw new Error('the store refused the pack');
          }
          await inner.write(ref, data, options);
        } finally {
          this.inFlight--;
        }
      },
      remove: (ref) => inner.remove(ref),
      create: () => inner.create(),
      close: () => inner.close(),
    };
  }

  /** Lets the oldest waiting upload proceed; false when none waits. */
  releaseOne(): boolean {
    const gate = this.gates.shift();
    gate?.();
    return gate !== undefined;
  }

  /** Releases uploads as they come until `done` settles. */
  async releaseUntil(done: Promise<unknown>): Promise<void> {
    let settled = false;
    void done.then(
      () => (settled = true),
      () => (settled = true),
    );
    while (!settled) {
      this.releaseOne();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
}

async function setUp(cacheDir?: string): Promise<{ repo: Repository; gated: GatedBackend }> {
  const dir = join(tmp, 'repo');
  await Repository.init(await openBackend(dir, { env: {} }), SECRET, { config: { pack_size: PACK_SIZE }, scrypt: { N: 1024, r: 8, p: 1 } });
  const gated = new GatedBackend(await openBackend(dir, { env: {} }));
  const repo = await Repository.open(gated.backend, SECRET, cacheDir ? { cache: { dir: cacheDir, onWarning: (message) => expect.fail(message) } } : {});
  return { repo, gated };
}

function blob(repo: Repository, type: BlobType): [BlobType, Buffer, Buffer, number] {
  const plaintext = randomBytes(PACK_SIZE + 100);
  const id = repo.keys.blobId(plaintext);
  return [type, id, sealBlobPayload(repo.keys, repo.codec, type, id, plaintext), plaintext.length];
}

const packPath = (root: string, pack: IndexedPack): string => {
  const name = pack.packId.toString('hex');
  return join(root, 'data', name.slice(0, 2), name);
};

describe('PackWriter', () => {
  it('uploads at most `concurrency` packs at once; a closed pack waits for a slot, and is indexed only once stored', async () => {
    const { repo, gated } = await setUp();
    const stored: IndexedPack[] = [];
    const writer = new PackWriter(repo, {
      concurrency: 2,
      onStored: (pack) => {
        expect(existsSync(packPath(repo.location, pack)), 'stored before it is indexed').toBe(true);
        stored.push(pack);
      },
    });
    expect(await writer.add(...blob(repo, 'data'))).toBe(true);
    expect(await writer.add(...blob(repo, 'data'))).toBe(true);
    expect(writer.packsWaiting).toBe(false);
    const third = writer.add(...blob(repo, 'data'));
    expect(writer.packsWaiting, 'the third pack waits for a slot').toBe(true);
    expect(gated.inFlight).toBe(2);
    expect(stored).toEqual([]);
    gated.releaseOne();
    expect(await third).toBe(true);
    expect(writer.packsWaiting).toBe(false);
    expect(stored).toHaveLength(1);
    await gated.releaseUntil(writer.flush());
    expect(stored).toHaveLength(3);
    expect(gated.maxInFlight).toBe(2);
  });

  it('writes tree packs through to the cache, data packs not', async () => {
    const cacheDir = join(tmp, 'cache');
    const { repo, gated } = await setUp(cacheDir);
    const stored: IndexedPack[] = [];
    const writer = new PackWriter(repo, { concurrency: 1, onStored: (pack) => stored.push(pack) });
    await gated.releaseUntil(writer.add(...blob(repo, 'tree')));
    await gated.releaseUntil(writer.add(...blob(repo, 'data')));
    await gated.releaseUntil(writer.flush());
    const [tree, data] = stored;
    expect(tree!.blobs[0]!.type).toBe('tree');
    expect(existsSync(packPath(repo.cache!.dir, tree!))).toBe(true);
    expect(existsSync(packPath(repo.cache!.dir, data!))).toBe(false);
  });

  it('raises a failed upload at flush and never indexes its pack', async () => {
    const { repo, gated } = await setUp();
    const stored: IndexedPack[] = [];
    const writer = new PackWriter(repo, { concurrency: 2, onStored: (pack) => stored.push(pack) });
    gated.failNext = true;
    const refused = blob(repo, 'data');
    await writer.add(...refused);
    // Still open, not full yet: closed by flush, and stored.
    expect(await writer.add('data', randomBytes(32), randomBytes(100), 72)).toBe(false);
    const flushed = writer.flush();
    await gated.releaseUntil(flushed);
    await expect(flushed).rejects.toThrow('the store refused the pack');
    expect(stored).toHaveLength(1);
    expect(stored[0]!.blobs.some((b) => b.id.equals(refused[1]))).toBe(false);
  });
});
