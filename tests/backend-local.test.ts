import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { WHOLE, describeBackendContract } from './helpers/backend-contract.js';

import {
  AlreadyExistsError,
  LocalBackend,
  NotFoundError,
  openBackend,
  type FileRef,
  type FileType,
} from '../src/backends/index.js';

/**
 * Fault injection: while `failWrites` is set, every FileHandle opened through node:fs/promises
 * (or, set to a predicate, every one whose path it accepts) writes part of its first chunk and
 * then fails with ENOSPC, as a full disk would. While `shortWritev` is set, writev writes only
 * the first half of its bytes and says so, as the kernel may; the caller must write the rest.
 * While `noHardLinks` is set, link() fails with EPERM, as on vfat and exFAT.
 * The test file itself uses node:fs (not mocked) to inspect the disk.
 */
const fault = vi.hoisted(() => ({ failWrites: false as boolean | ((file: string) => boolean), shortWritev: false, noHardLinks: false }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const orig = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof orig.open = async (...args: Parameters<typeof orig.open>) => {
    const fh = await orig.open(...args);
    if (fault.failWrites === true || (typeof fault.failWrites === 'function' && fault.failWrites(String(args[0])))) {
      const realWrite = fh.write.bind(fh) as (...a: unknown[]) => Promise<{ bytesWritten: number }>;
      (fh as unknown as { write: unknown }).write = async (buf: Buffer, offset: number, length: number, position: number) => {
        const half = Math.max(1, Math.floor(length / 2));
        await realWrite(buf, offset, half, position);
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
      };
      (fh as unknown as { writev: unknown }).writev = async (buffers: Buffer[], position: number) => {
        const all = Buffer.concat(buffers);
        await realWrite(all, 0, Math.max(1, Math.floor(all.length / 2)), position);
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
      };
    }
    if (fault.shortWritev) {
      const realWrite = fh.write.bind(fh) as (...a: unknown[]) => Promise<{ bytesWritten: number }>;
      (fh as unknown as { writev: unknown }).writev = async (buffers: Buffer[], position: number) => {
        const all = Buffer.concat(buffers);
        return realWrite(all, 0, Math.floor(all.length / 2), position);
      };
    }
    return fh;
  };
  const link: typeof orig.link = async (...args: Parameters<typeof orig.link>) => {
    if (fault.noHardLinks) throw Object.assign(new Error(`EPERM: operation not permitted, link '${String(args[0])}' -> '${String(args[1])}'`), { code: 'EPERM', errno: -1 });
    return orig.link(...args);
  };
  return { ...orig, open, link, default: { ...orig, open, link } };
});

const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');
const ref = (type: FileType, content: string | Buffer): FileRef => ({ type, name: sha(content) });
const mode = (p: string): number => fs.statSync(p).mode & 0o777;

/** One temp root for the file (removed at the end); each test gets a fresh folder under it. */
let tmpRoot: string;
let dir: string;
let be: LocalBackend;

beforeAll(() => {
  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'bh-local-'));
});

afterAll(async () => {
  await fs.promises.rm(tmpRoot, { recursive: true, force: true });
});

afterEach(() => {
  fault.failWrites = false;
  fault.shortWritev = false;
  fault.noHardLinks = false;
});

/** Points `dir`/`be` at a freshly created repository in a new folder under the temp root. */
async function freshRepo(): Promise<void> {
  dir = fs.mkdtempSync(path.join(tmpRoot, 't-'));
  be = new LocalBackend(path.join(dir, 'repo'));
  await be.create();
}

describe('LocalBackend', () => {
  describe('LocalBackend layout', () => {
    // Each test gets a freshly created repository.
    beforeEach(freshRepo);

    it('resolves the location to an absolute path', () => {
      const rel = path.relative(process.cwd(), path.join(dir, 'repo'));
      expect(new LocalBackend(rel).location).toBe(path.join(dir, 'repo'));
    });

    it('create() makes the folder skeleton with mode 0700 and is idempotent', async () => {
      const root = be.location;
      expect(fs.readdirSync(root).sort()).toEqual(['data', 'index', 'keys', 'locks', 'snapshots']);
      const subs = fs.readdirSync(path.join(root, 'data')).sort();
      expect(subs).toHaveLength(256);
      expect(subs[0]).toBe('00');
      expect(subs[255]).toBe('ff');
      expect(subs).toEqual(Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0')));
      for (const d of [root, ...['data', 'index', 'keys', 'locks', 'snapshots'].map((f) => path.join(root, f))]) {
        expect(mode(d)).toBe(0o700);
      }
      expect(mode(path.join(root, 'data', 'a7'))).toBe(0o700);

      const k = ref('keys', 'k');
      await be.write(k, Buffer.from('k'));
      await be.create();
      expect(fs.readFileSync(path.join(root, 'keys', k.name), 'utf8')).toBe('k');
    });

    it('stores every type at its exact path with mode 0600', async () => {
      const root = be.location;
      await be.write({ type: 'config', name: 'config' }, Buffer.from('cfg'));
      expect(fs.readFileSync(path.join(root, 'config'), 'utf8')).toBe('cfg');
      expect(mode(path.join(root, 'config'))).toBe(0o600);

      for (const type of ['keys', 'index', 'snapshots', 'locks'] as const) {
        const r = ref(type, type);
        await be.write(r, Buffer.from(type));
        const p = path.join(root, type, r.name);
        expect(fs.readFileSync(p, 'utf8')).toBe(type);
        expect(mode(p)).toBe(0o600);
      }

      const d = ref('data', 'some pack');
      await be.write(d, Buffer.from('pack bytes'));
      const p = path.join(root, 'data', d.name.slice(0, 2), d.name);
      expect(fs.readFileSync(p, 'utf8')).toBe('pack bytes');
      expect(mode(p)).toBe(0o600);
      // Nothing else appeared anywhere (no temp files left behind).
      expect(fs.readdirSync(path.join(root, 'data', d.name.slice(0, 2)))).toEqual([d.name]);
      expect(fs.readdirSync(root).sort()).toEqual(['config', 'data', 'index', 'keys', 'locks', 'snapshots']);
    });
  });

  describe('LocalBackend errors', () => {
    // These tests only add files under distinct names: one repository serves them all
    // (creating 256 folders per test is the slow part of this file).
    beforeAll(freshRepo);

    it('rejects invalid ranges', async () => {
      const r = ref('data', 'x');
      await be.write(r, Buffer.from('x'));
      await expect(be.read(r, { offset: -1, length: 1 })).rejects.toThrow(RangeError);
      await expect(be.read(r, { offset: 0, length: 1.5 })).rejects.toThrow(RangeError);
    });

    it('validates names before touching the disk', async () => {
      const good = sha('x');
      const bad = ['../x', '../../etc/passwd', 'ABC', good.toUpperCase(), good.slice(0, 63), good + '0', '', 'config',
        `${good.slice(0, 63)}/`, `.tmp-${good.slice(0, 59)}`, `00/${good.slice(3)}`];
      for (const type of ['keys', 'data', 'index', 'snapshots', 'locks'] as const) {
        for (const name of bad) {
          const r = { type, name };
          await expect(be.write(r, Buffer.from('x'))).rejects.toThrow(/invalid/);
          await expect(be.read(r, WHOLE)).rejects.toThrow(/invalid/);
          await expect(be.read(r, { offset: 0, length: 1 })).rejects.toThrow(/invalid/);
          await expect(be.stat(r)).rejects.toThrow(/invalid/);
          await expect(be.remove(r)).rejects.toThrow(/invalid/);
        }
      }
      for (const name of ['../config', 'CONFIG', good, '']) {
        await expect(be.write({ type: 'config', name }, Buffer.from('x'))).rejects.toThrow(/invalid/);
        await expect(be.read({ type: 'config', name }, WHOLE)).rejects.toThrow(/invalid/);
      }
      await expect(be.write({ type: 'bogus' as FileType, name: good }, Buffer.from('x'))).rejects.toThrow(/invalid/);
      // Nothing was written outside (or inside) the repository.
      expect(fs.readdirSync(dir)).toEqual(['repo']);
      expect(await be.list('keys')).toEqual([]);
      expect(await be.list('config')).toEqual([]);
    });
  });

  describe('LocalBackend failed writes', () => {
    // Each test gets a freshly created repository.
    beforeEach(freshRepo);

    const tempFilesUnder = (root: string): string[] => {
      const out: string[] = [];
      const walk = (d: string): void => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          if (e.isDirectory()) walk(path.join(d, e.name));
          else if (e.name.startsWith('.tmp-')) out.push(path.join(d, e.name));
        }
      };
      walk(root);
      return out;
    };

    it('ENOSPC mid-write surfaces and leaves neither a partial file nor a temp file', async () => {
      const r = ref('data', 'full disk');
      const content = Buffer.alloc(64 * 1024, 7);
      fault.failWrites = true;
      await expect(be.write(r, content)).rejects.toMatchObject({ code: 'ENOSPC' });
      fault.failWrites = false;
      expect(fs.existsSync(path.join(be.location, 'data', r.name.slice(0, 2), r.name))).toBe(false);
      expect(tempFilesUnder(be.location)).toEqual([]);
      await expect(be.stat(r)).rejects.toBeInstanceOf(NotFoundError);
      // The backend still works afterwards.
      await be.write(r, content);
      expect((await be.read(r, WHOLE)).equals(content)).toBe(true);
    });

    it('a short writev is completed part by part: the stored file has every byte, in order', async () => {
      // Parts of different sizes (a pack's blobs), more than one writev group of 1024.
      const parts = Array.from({ length: 1500 }, (_, i) => Buffer.alloc(1 + (i % 97), i % 251));
      const whole = Buffer.concat(parts);
      const r = { type: 'data' as const, name: sha(whole) };
      fault.shortWritev = true;
      await be.write(r, parts);
      fault.shortWritev = false;
      expect(fs.readFileSync(path.join(be.location, 'data', r.name.slice(0, 2), r.name)).equals(whole)).toBe(true);
      expect(tempFilesUnder(be.location)).toEqual([]);
    });

    it('without hard links (vfat, exFAT) an exclusive write creates the final name with O_EXCL: one winner, nothing else left', async () => {
      const config: FileRef = { type: 'config', name: 'config' };
      const configPath = path.join(be.location, 'config');
      fault.noHardLinks = true;
      const outcomes = await Promise.allSettled(['a', 'b', 'c', 'd'].map((c) => be.write(config, Buffer.from(`config ${c}`), { exclusive: true })));
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      for (const o of outcomes) if (o.status === 'rejected') expect(o.reason).toBeInstanceOf(AlreadyExistsError);
      expect(fs.readFileSync(configPath, 'utf8')).toMatch(/^config [a-d]$/);
      expect(mode(configPath)).toBe(0o600);
      expect(tempFilesUnder(be.location)).toEqual([]);
      fs.unlinkSync(configPath);
      // A write that fails there removes the short file it created: no config half written.
      fault.failWrites = (file) => file === configPath;
      await expect(be.write(config, Buffer.alloc(64 * 1024, 1), { exclusive: true })).rejects.toMatchObject({ code: 'ENOSPC' });
      expect(fs.existsSync(configPath)).toBe(false);
      expect(tempFilesUnder(be.location)).toEqual([]);
    });

    it('a failing rename removes the written temp file', async () => {
      // A directory squatting on the final name makes rename fail after the data is written.
      const r = ref('keys', 'squatted');
      fs.mkdirSync(path.join(be.location, 'keys', r.name));
      fs.writeFileSync(path.join(be.location, 'keys', r.name, 'x'), 'x');
      await expect(be.write(r, Buffer.from('key material'))).rejects.toThrow();
      expect(tempFilesUnder(be.location)).toEqual([]);
      expect(fs.statSync(path.join(be.location, 'keys', r.name)).isDirectory()).toBe(true);
      // Not a file, so list does not report it.
      expect(await be.list('keys')).toEqual([]);
    });

    it('a type folder replaced by a regular file makes write fail cleanly', async () => {
      const keys = path.join(be.location, 'keys');
      fs.rmSync(keys, { recursive: true });
      fs.writeFileSync(keys, 'not a folder');
      const r = ref('keys', 'k');
      await expect(be.write(r, Buffer.from('k'))).rejects.toThrow();
      expect(fs.readFileSync(keys, 'utf8')).toBe('not a folder');
      expect(tempFilesUnder(be.location)).toEqual([]);
      expect(fs.readdirSync(be.location).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    });

    it('recreates a missing data subfolder on write', async () => {
      const r = ref('data', 'lost folder');
      fs.rmdirSync(path.join(be.location, 'data', r.name.slice(0, 2)));
      expect(await be.list('data')).toEqual([]);
      await be.write(r, Buffer.from('abc'));
      expect(mode(path.join(be.location, 'data', r.name.slice(0, 2)))).toBe(0o700);
      expect(await be.read(r, WHOLE)).toEqual(Buffer.from('abc'));
    });
  });

  describe('LocalBackend list hygiene and concurrency', () => {
    // Each test gets a freshly created repository.
    beforeEach(freshRepo);

    it('ignores temp files, invalid names, misplaced data files and tolerates missing subfolders', async () => {
      const root = be.location;
      const good = ref('data', 'good');
      await be.write(good, Buffer.from('good'));
      const sub = path.join(root, 'data', good.name.slice(0, 2));
      fs.writeFileSync(path.join(sub, '.tmp-deadbeef'), 'partial');
      fs.writeFileSync(path.join(sub, 'README'), 'junk');
      fs.writeFileSync(path.join(sub, good.name.toUpperCase()), 'junk');
      // A valid name in the wrong subfolder could never be read back, so it is not listed.
      const misplaced = sha('misplaced');
      const wrongSub = misplaced.startsWith('00') ? '01' : '00';
      fs.writeFileSync(path.join(root, 'data', wrongSub, misplaced), 'junk');
      // A missing subfolder is tolerated.
      fs.rmdirSync(path.join(root, 'data', good.name.startsWith('ff') ? 'fe' : 'ff'));

      const k = ref('keys', 'k');
      await be.write(k, Buffer.from('kk'));
      fs.writeFileSync(path.join(root, 'keys', `.tmp-${'a'.repeat(24)}`), 'partial');
      fs.writeFileSync(path.join(root, 'keys', sha('short').slice(0, 63)), 'junk');
      fs.writeFileSync(path.join(root, '.tmp-0123'), 'partial config');

      expect(await be.list('data')).toEqual([{ name: good.name, size: 4 }]);
      expect(await be.list('keys')).toEqual([{ name: k.name, size: 2 }]);
      expect(await be.list('config')).toEqual([]);
    });

    it('lists nothing for a type folder that does not exist', async () => {
      const fresh = new LocalBackend(path.join(dir, 'nothing-here'));
      expect(await fresh.list('snapshots')).toEqual([]);
      expect(await fresh.list('data')).toEqual([]);
      expect(await fresh.list('config')).toEqual([]);
    });

  });
});

describeBackendContract('local', async () => {
  const folder = fs.mkdtempSync(path.join(tmpRoot, 'contract-'));
  const backend = new LocalBackend(folder);
  await backend.create();
  return { backend, folder };
});

describe('openBackend', () => {
  const options = { env: {} };
  it('returns a LocalBackend for plain paths', async () => {
    const b = await openBackend(path.join(tmpRoot, 'repo'), options);
    expect(b).toBeInstanceOf(LocalBackend);
    expect(b.location).toBe(path.join(tmpRoot, 'repo'));
  });

  it('refuses an empty location', async () => {
    await expect(openBackend('', options)).rejects.toThrow(/empty/);
  });
});
