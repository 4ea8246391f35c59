/**
 * `bh export` in its four formats, each read back by an implementation that is not bh's:
 * - `enc`: Debian's Python `cryptography` (python3-cryptography, /usr/bin/python3) decrypts
 *   every .enc file with a ten-line script that follows the old format (PBKDF2-HMAC-SHA256
 *   600 000 iterations / raw key with zero salt, AES-256-GCM), and reads the manifest;
 * - `zip-aes`: Debian's 7-Zip (`7zz t -pPASS`, `7zz l -slt`, `7zz x`);
 * - `zip`: Info-ZIP `unzip`;
 * - `plain`: the file system, compared with the source by tests/helpers/tree-compare.ts.
 * Memory: a 200 MiB file exports with a peak RSS below 200 MiB (Python's getrusage of the
 * child).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BH, type TestRepo, backupSnapshot, expectOk, initRepo, makeTempDir, removeDir } from './helpers/cli.js';
import { compareTrees } from './helpers/tree-compare.js';

/** Debian's Python, whose python3-cryptography the tests use (not a pip install elsewhere on PATH). */
const PYTHON = '/usr/bin/python3';

/** Decrypts one old-format .enc file to stdout: argv = file, then "pass" PASSFILE or "key" KEYFILE. */
const DECRYPT_ENC = `
import sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives import hashes
data = open(sys.argv[1], 'rb').read()
salt, nonce, body = data[:16], data[16:28], data[28:]
secret = open(sys.argv[3], 'rb').read()
key = secret if sys.argv[2] == 'key' else PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=600000).derive(secret.rstrip(b'\\n'))
sys.stdout.buffer.write(AESGCM(key).decrypt(nonce, body, None))
`;

let dir: string;
let repo: TestRepo;
let src: string;
let snapshot: string;

beforeAll(async () => {
  dir = await makeTempDir('bh-legacy-export-');
  repo = await initRepo(dir);
  src = join(dir, 'src');
  await mkdir(join(src, 'docs', 'deep'), { recursive: true });
  await writeFile(join(src, 'hello.txt'), 'hello\n');
  await writeFile(join(src, 'empty'), '');
  await writeFile(join(src, 'docs', 'résumé.pdf'), randomBytes(40_000));
  await writeFile(join(src, 'docs', 'deep', 'big.bin'), randomBytes(3 * 1024 * 1024 + 5));
  await writeFile(join(src, 'docs', 'run.sh'), '#!/bin/sh\necho hi\n');
  await chmod(join(src, 'docs', 'run.sh'), 0o750);
  await symlink('hello.txt', join(src, 'link'));
  await writeFile(join(dir, 'pass'), 'old passphrase\n');
  await writeFile(join(dir, 'key32'), randomBytes(32));
  snapshot = await backupSnapshot(repo, src);
});

afterAll(async () => {
  await removeDir(dir);
});

/** Regular files below `root` by path relative to it. */
async function filesBelow(root: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(root, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await filesBelow(root, rel)));
    else if (entry.isFile()) out.push(rel);
  }
  return out.sort();
}

describe('bh export --format enc', () => {
  for (const secret of ['pass', 'key'] as const) {
    it(`writes files the old format's Python reader decrypts (${secret === 'pass' ? 'passphrase, PBKDF2 per file' : 'raw key file, zero salt'}), and a manifest with their SHA-256`, async () => {
      const target = join(dir, `enc-${secret}`);
      const flag = secret === 'pass' ? ['--passphrase-file', join(dir, 'pass')] : ['--legacy-key-file', join(dir, 'key32')];
      const r = expectOk(await repo.run(['export', snapshot, '--format', 'enc', '--target', target, ...flag]), 'export enc');
      expect(r.stderr).toMatch(/link: symlinks are not exported/);
      const sources = (await filesBelow(src)).filter((f) => f !== 'link');
      const written = await filesBelow(target);
      const manifestName = written.find((f) => f.startsWith('backup_manifest_'))!;
      expect(manifestName).toMatch(/^backup_manifest_\d{8}_\d{6}\.json$/);
      expect(written.filter((f) => f !== manifestName)).toEqual(sources.map((f) => `${f}.enc`).sort());
      const salts = new Set<string>();
      for (const file of sources) {
        const enc = join(target, `${file}.enc`);
        const bytes = await readFile(enc);
        const original = await readFile(join(src, file));
        expect(bytes.length).toBe(original.length + 44);
        salts.add(bytes.subarray(0, 16).toString('hex'));
        const plain = execFileSync(PYTHON, ['-c', DECRYPT_ENC, enc, secret, join(dir, secret === 'pass' ? 'pass' : 'key32')], { maxBuffer: 16 * 1024 * 1024 });
        expect(plain.equals(original), file).toBe(true);
      }
      // A fresh salt per file with a passphrase; the zero salt with a key file.
      if (secret === 'pass') expect(salts.size).toBe(sources.length);
      else expect([...salts]).toEqual(['00'.repeat(16)]);
      const manifest = JSON.parse(execFileSync(PYTHON, ['-c', 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))', join(target, manifestName)], { encoding: 'utf8' })) as { files_copied: number; total_bytes: number; copied: { path: string; size: number; checksum: string }[] };
      expect(manifest.files_copied).toBe(sources.length);
      expect(manifest.copied.map((c) => c.path).sort()).toEqual(sources.map((f) => join(src, f)).sort());
      for (const c of manifest.copied) {
        expect(c.checksum).toBe(execFileSync('sha256sum', [c.path], { encoding: 'utf8' }).slice(0, 64));
        expect(c.size).toBe((await stat(c.path)).size);
      }
    });
  }

  it('refuses a wrong setup clearly: no secret, a non-empty target, a key file of the wrong size', async () => {
    const none = await repo.run(['export', snapshot, '--format', 'enc', '--target', join(dir, 'enc-none')]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/needs --passphrase-file FILE or --legacy-key-file FILE/);
    const full = join(dir, 'not-empty');
    await mkdir(full);
    await writeFile(join(full, 'keep.txt'), 'mine');
    const busy = await repo.run(['export', snapshot, '--format', 'plain', '--target', full]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/not empty/);
    expect(await readFile(join(full, 'keep.txt'), 'utf8')).toBe('mine');
    await writeFile(join(dir, 'key31'), randomBytes(31));
    const short = await repo.run(['export', snapshot, '--format', 'enc', '--legacy-key-file', join(dir, 'key31'), '--target', join(dir, 'enc-short')]);
    expect(short.code).toBe(1);
    expect(short.stderr).toMatch(/exactly 32 bytes/);
  });
});

describe('bh export --format zip / zip-aes / plain', () => {
  it('zip-aes: 7-Zip tests it with the password, sees AES-256, refuses a wrong password, and extracts the files', async () => {
    const zip = join(dir, 'out-aes.zip');
    expectOk(await repo.run(['export', snapshot, '--format', 'zip-aes', '--passphrase-file', join(dir, 'pass'), '--target', zip]), 'export zip-aes');
    expect(execFileSync('7zz', ['t', '-pold passphrase', zip], { encoding: 'utf8' })).toMatch(/Everything is Ok/);
    const listing = execFileSync('7zz', ['l', '-slt', '-pold passphrase', zip], { encoding: 'utf8' });
    // Every entry with data is AES-256; directories have none (Store).
    const entries = listing
      .split(/\n\s*\n/)
      .map((block) => ({ path: /^Path = (.*)$/m.exec(block)?.[1], method: /^Method = (.*)$/m.exec(block)?.[1] }))
      .filter((e): e is { path: string; method: string } => e.path !== undefined && e.method !== undefined);
    expect(entries.filter((e) => !e.method.startsWith('AES-256')).map((e) => e.path).sort()).toEqual(['docs', 'docs/deep']);
    expect(entries.filter((e) => e.method.startsWith('AES-256')).length).toBe(6);
    expect(() => execFileSync('7zz', ['t', '-pwrong', zip], { stdio: 'pipe' })).toThrow();
    // AE-2 (vendor version 2, no CRC), AES-256 (strength 3), deflate inside, read from the 0x9901 extra fields by Python's zipfile.
    const aes = `
import zipfile, struct, sys
for i in zipfile.ZipFile(sys.argv[1]).infolist():
    e, fields = i.extra, []
    while len(e) >= 4:
        hid, size = struct.unpack('<HH', e[:4])
        if hid == 0x9901: fields.append(list(struct.unpack('<H2sBH', e[4:4 + size])[i] for i in (0, 2, 3)))
        e = e[4 + size:]
    if not i.is_dir(): print(i.filename, i.compress_type, i.CRC, fields)
`;
    const lines = execFileSync(PYTHON, ['-c', aes, zip], { encoding: 'utf8' }).trim().split('\n');
    expect(lines).toHaveLength(6);
    for (const line of lines) expect(line).toMatch(/ 99 0 \[\[2, 3, 8\]\]$/);
    const out = join(dir, 'out-aes');
    execFileSync('7zz', ['x', '-pold passphrase', `-o${out}`, zip], { stdio: 'pipe' });
    for (const file of (await filesBelow(src)).filter((f) => f !== 'link')) expect((await readFile(join(out, file))).equals(await readFile(join(src, file))), file).toBe(true);
  });

  it('zip: unzip restores files, directories, modes, mtimes and the symlink', async () => {
    const zip = join(dir, 'out.zip');
    expectOk(await repo.run(['export', snapshot, '--format', 'zip', '--target', zip]), 'export zip');
    const out = join(dir, 'out-zip');
    execFileSync('unzip', ['-q', zip, '-d', out]);
    const differences = await compareTrees(src, out, { ignoreRootMtime: true });
    // ZIP keeps mtimes to the second (extended timestamp) and no directory mtimes worth comparing.
    expect(differences.filter((d) => !/mtime/.test(d))).toEqual([]);
    expect((await stat(join(out, 'docs', 'run.sh'))).mode & 0o777).toBe(0o750);
    expect(Math.floor((await stat(join(out, 'hello.txt'))).mtimeMs / 1000)).toBe(Math.floor((await stat(join(src, 'hello.txt'))).mtimeMs / 1000));
    const again = await repo.run(['export', snapshot, '--format', 'zip', '--target', zip]);
    expect(again.code).toBe(1);
  });

  it('plain: the tree as the file system had it; --include and --exclude select as restore does', async () => {
    const out = join(dir, 'out-plain');
    expectOk(await repo.run(['export', snapshot, '--format', 'plain', '--target', out]), 'export plain');
    expect(await compareTrees(src, out, { ignoreRootMtime: true })).toEqual([]);
    const some = join(dir, 'out-some');
    expectOk(await repo.run(['export', snapshot, '--format', 'plain', '--target', some, '--include', `${src}/docs`, '--exclude', '*.sh']), 'export plain --include');
    expect(await filesBelow(some)).toEqual(['docs/deep/big.bin', 'docs/résumé.pdf']);
  });

  it('streams: a 200 MiB file exports as zip and as enc with a peak RSS below 200 MiB', async () => {
    const bigDir = join(dir, 'big');
    await mkdir(bigDir);
    // Half random (so that deflate must work), half zeros; one file of 200 MiB: holding it whole
    // would pass the 200 MiB bound alone.
    const half = 100 * 1024 * 1024;
    await writeFile(join(bigDir, 'huge.bin'), Buffer.concat([randomBytes(half), Buffer.alloc(half)]));
    const id = await backupSnapshot(repo, bigDir);
    const peak = (args: string[]): number => {
      const script = 'import resource,subprocess,sys,os; r=subprocess.run(sys.argv[1:], env=os.environ, stdout=subprocess.DEVNULL); print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)';
      const [code, kb] = execFileSync(PYTHON, ['-c', script, process.execPath, BH, ...args], { env: { ...process.env, ...repo.env }, encoding: 'utf8' }).trim().split(' ');
      expect(code).toBe('0');
      return Number(kb) * 1024;
    };
    const zipPeak = peak(['export', id, '--format', 'zip', '--target', join(dir, 'huge.zip')]);
    const encPeak = peak(['export', id, '--format', 'enc', '--legacy-key-file', join(dir, 'key32'), '--target', join(dir, 'huge-enc')]);
    expect((await stat(join(dir, 'huge-enc', 'huge.bin.enc'))).size).toBe(2 * half + 44);
    expect(zipPeak).toBeLessThan(200 * 1024 * 1024);
    expect(encPeak).toBeLessThan(200 * 1024 * 1024);
  });
});
