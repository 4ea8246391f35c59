/**
 * What every Backend must do, as one suite that each backend's test file runs against its own
 * real store (a local directory, sshd's SFTP, an S3-protocol server): round trips of every file
 * type, ranged reads, stat and list, the errors callers rely on, concurrent writes, exclusive
 * writes (one winner of a race, nothing replaced), and the temporary files of killed writes
 * (listed and removed where the backend has them, absent where it has none).
 */
import { createHash } from 'node:crypto';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AlreadyExistsError, FILE_TYPES, NotFoundError, ShortReadError, TooLargeError, type Backend, type FileRef, type FileType, type WholeFile } from '../../src/backends/index.js';

const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');
const ref = (type: FileType, content: string | Buffer): FileRef => ({ type, name: sha(content) });

const CONFIG: FileRef = { type: 'config', name: 'config' };

/** A whole-file read without a bound worth the name, for tests of other things. */
export const WHOLE: WholeFile = { atMost: Number.MAX_SAFE_INTEGER };

export interface ContractTarget {
  backend: Backend;
  /**
   * The repository's folder on this machine, given exactly when the backend writes through
   * temporary files (local; SFTP to 127.0.0.1): the suite leaves a killed write's temporary
   * files there. Without it the backend must have no `temporaries` (S3).
   */
  folder?: string;
}

/**
 * Registers the contract suite. `fresh` returns a backend on a new, empty, created repository
 * location each time it is called (the suite calls it once per describe block).
 */
export function describeBackendContract(label: string, fresh: () => Promise<ContractTarget>): void {
  describe(`${label}: Backend contract`, () => {
    let be: Backend;
    let folder: string | undefined;
    beforeAll(async () => {
      ({ backend: be, folder } = await fresh());
    });

    it('write, read, range read, stat, list, remove', async () => {
      const content = Buffer.from('0123456789abcdefghij');
      const r = ref('data', content);
      await be.write(r, content);
      expect(await be.read(r, WHOLE)).toEqual(content);
      expect(await be.read(r, { offset: 5, length: 7 })).toEqual(Buffer.from('56789ab'));
      expect(await be.read(r, { offset: 0, length: 20 })).toEqual(content);
      expect(await be.read(r, { offset: 20, length: 0 })).toEqual(Buffer.alloc(0));
      expect(await be.read(r, { atMost: 20 })).toEqual(content);
      // A file larger than the bound is refused, not read (a planted or padded file).
      const tooLarge = await be.read(r, { atMost: 19 }).catch((e: unknown) => e);
      expect(tooLarge).toBeInstanceOf(TooLargeError);
      expect((tooLarge as Error).message).toContain(`data/${r.name} is 20 bytes, more than the 19 it can be`);
      expect(await be.stat(r)).toEqual({ name: r.name, size: 20 });
      expect((await be.list('data')).filter((f) => f.name === r.name)).toEqual([{ name: r.name, size: 20 }]);
      await be.remove(r);
      await expect(be.stat(r)).rejects.toBeInstanceOf(NotFoundError);
      expect((await be.list('data')).some((f) => f.name === r.name)).toBe(false);
      // Removing again is not an error.
      await be.remove(r);
    });

    it('round-trips an empty file, one written in parts, and a large one', async () => {
      const empty = ref('index', 'empty');
      await be.write(empty, Buffer.alloc(0));
      expect(await be.read(empty, WHOLE)).toEqual(Buffer.alloc(0));
      expect(await be.stat(empty)).toEqual({ name: empty.name, size: 0 });

      const parts = [Buffer.from('head-'), Buffer.alloc(0), Buffer.from('middle-'), Buffer.from('tail')];
      const joined = Buffer.concat(parts);
      const partsRef = ref('data', joined);
      await be.write(partsRef, parts);
      expect(await be.read(partsRef, WHOLE)).toEqual(joined);

      const big = Buffer.alloc(3 * 1024 * 1024 + 17);
      for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
      const r = ref('data', big);
      await be.write(r, big);
      expect((await be.read(r, WHOLE)).equals(big)).toBe(true);
      const slice = await be.read(r, { offset: 2_000_000, length: 1_000_000 });
      expect(slice.equals(big.subarray(2_000_000, 3_000_000))).toBe(true);
    });

    it('config: read, stat, list, remove', async () => {
      const c: FileRef = { type: 'config', name: 'config' };
      expect(await be.list('config')).toEqual([]);
      await expect(be.read(c, WHOLE)).rejects.toBeInstanceOf(NotFoundError);
      await be.write(c, Buffer.from('hello'));
      expect(await be.list('config')).toEqual([{ name: 'config', size: 5 }]);
      expect(await be.stat(c)).toEqual({ name: 'config', size: 5 });
      expect(await be.read(c, { offset: 1, length: 3 })).toEqual(Buffer.from('ell'));
      await be.remove(c);
      expect(await be.list('config')).toEqual([]);
    });

    it('lists every type independently', async () => {
      const written = new Map<FileType, string[]>();
      for (const type of FILE_TYPES) {
        if (type === 'config') continue;
        const names: string[] = [];
        for (let i = 0; i < 3; i++) {
          const r = ref(type, `listed ${type}-${i}`);
          await be.write(r, Buffer.from(`${type}-${i}`));
          names.push(r.name);
        }
        written.set(type, names.sort());
      }
      for (const [type, names] of written) {
        const got = (await be.list(type)).filter((f) => names.includes(f.name));
        expect(got.map((f) => f.name).sort()).toEqual(names);
        for (const f of got) expect(f.size).toBe(`${type}-0`.length);
      }
    });

    it('throws NotFoundError for missing files, ShortReadError past the end', async () => {
      const missing = ref('snapshots', 'missing');
      await expect(be.read(missing, WHOLE)).rejects.toBeInstanceOf(NotFoundError);
      await expect(be.read(missing, { offset: 0, length: 1 })).rejects.toBeInstanceOf(NotFoundError);
      await expect(be.stat(missing)).rejects.toBeInstanceOf(NotFoundError);
      await expect(be.read(missing, WHOLE)).rejects.toThrow(`snapshots/${missing.name} does not exist`);

      const short = ref('data', 'short');
      await be.write(short, Buffer.from('12345'));
      await expect(be.read(short, { offset: 3, length: 5 })).rejects.toBeInstanceOf(ShortReadError);
      await expect(be.read(short, { offset: 10, length: 1 })).rejects.toBeInstanceOf(ShortReadError);
      await expect(be.read(short, { offset: -1, length: 1 })).rejects.toThrow(RangeError);
    });

    it('refuses names that are not 64 hex digits before touching the store', async () => {
      for (const name of ['../x', 'ABC', sha('x').toUpperCase(), sha('x').slice(0, 63), '']) {
        await expect(be.write({ type: 'data', name }, Buffer.from('x'))).rejects.toThrow(/invalid/);
        await expect(be.read({ type: 'keys', name }, WHOLE)).rejects.toThrow(/invalid/);
      }
    });

    it('30 concurrent writes all land; rewriting the same content is harmless', async () => {
      const items = Array.from({ length: 30 }, (_, i) => {
        const content = Buffer.from(`concurrent blob ${i} `.repeat(i + 1));
        return { r: ref('data', content), content };
      });
      await Promise.all(items.map(({ r, content }) => be.write(r, content)));
      const byName = new Map((await be.list('data')).map((f) => [f.name, f.size]));
      for (const { r, content } of items) {
        expect(byName.get(r.name)).toBe(content.length);
        expect((await be.read(r, WHOLE)).equals(content)).toBe(true);
      }
      await Promise.all(items.slice(0, 5).map(({ r, content }) => be.write(r, content)));
      for (const { r, content } of items.slice(0, 5)) expect((await be.read(r, WHOLE)).equals(content)).toBe(true);
    });

    it('an exclusive write never replaces a file: the second gets AlreadyExistsError, of 8 racing exactly one lands', async () => {
      await be.write(CONFIG, Buffer.from('first'), { exclusive: true });
      const second = be.write(CONFIG, Buffer.from('second'), { exclusive: true });
      await expect(second).rejects.toBeInstanceOf(AlreadyExistsError);
      await expect(second).rejects.toThrow('config already exists');
      expect(await be.read(CONFIG, WHOLE)).toEqual(Buffer.from('first'));
      await be.remove(CONFIG);

      const contenders = Array.from({ length: 8 }, (_, i) => Buffer.from(`contender ${i} `.repeat(100 + i)));
      const outcomes = await Promise.allSettled(contenders.map((content) => be.write(CONFIG, content, { exclusive: true })));
      const winners = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [i] : []));
      expect(winners).toHaveLength(1);
      for (const o of outcomes) if (o.status === 'rejected') expect(o.reason).toBeInstanceOf(AlreadyExistsError);
      expect((await be.read(CONFIG, WHOLE)).equals(contenders[winners[0]!]!)).toBe(true);
      // The losers left nothing behind.
      expect((await be.temporaries?.list()) ?? []).toEqual([]);
      await be.remove(CONFIG);

      // Any type may be written exclusively; an absent name is simply written.
      const key = ref('keys', 'exclusive key');
      await be.write(key, Buffer.from('k'), { exclusive: true });
      await expect(be.write(key, Buffer.from('k'), { exclusive: true })).rejects.toBeInstanceOf(AlreadyExistsError);
    });

    it('temporary files: none after all the writes above; a killed write\'s leftovers are listed with size and time, never by list, and removed', async () => {
      // A backend whose writes are atomic without temporary files (S3) says so by having none.
      if (folder === undefined) {
        expect(be.temporaries).toBeUndefined();
        return;
      }
      const temporaries = be.temporaries!;
      expect(await temporaries.list()).toEqual([]);
      // What a write killed before its rename leaves: part of the file under .tmp-<hex> beside the final name.
      const when = new Date('2020-01-02T03:04:05Z');
      const leftovers = [
        { path: `data/4e/.tmp-${'ab'.repeat(12)}`, bytes: Buffer.alloc(3000, 7) },
        { path: `index/.tmp-${'cd'.repeat(12)}`, bytes: Buffer.from('part of an index') },
        { path: `.tmp-${'ef'.repeat(12)}`, bytes: Buffer.from('{"vers') },
      ];
      for (const { path, bytes } of leftovers) {
        const file = join(folder, path);
        await mkdir(dirname(file), { recursive: true });
        await writeFile(file, bytes);
        await utimes(file, when, when);
      }
      const byPath = (a: { path: string }, b: { path: string }): number => a.path.localeCompare(b.path);
      const listed = (await temporaries.list()).sort(byPath);
      expect(listed).toEqual(leftovers.map(({ path, bytes }) => ({ path, size: bytes.length, mtimeMs: when.getTime() })).sort(byPath));
      expect(await be.list('data')).not.toContainEqual(expect.objectContaining({ size: 3000 }));
      expect(await be.list('config')).toEqual([]);

      for (const path of ['config', `data/4e/${sha('x')}`, `data/.tmp-${'ab'.repeat(12)}`, `../.tmp-${'ab'.repeat(12)}`, `data/4e/../../.tmp-${'ab'.repeat(12)}`, 'keys/.tmp-XYZ']) {
        await expect(temporaries.remove({ path, size: 0, mtimeMs: 0 })).rejects.toThrow(/invalid temporary file path/);
      }
      await temporaries.remove(listed[0]!);
      await temporaries.remove(listed[0]!);
      expect((await temporaries.list()).sort(byPath)).toEqual(listed.slice(1));
      for (const file of listed.slice(1)) await temporaries.remove(file);
      expect(await temporaries.list()).toEqual([]);
    });
  });
}
