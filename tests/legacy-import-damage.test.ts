/**
 * `bh import-legacy` on damaged and hostile input, key-file destinations, plain ZIPs and bare
 * folders: old Backup Handler destinations, made by tests/fixtures/make-legacy-destination.py (the old tool's runs as shared/seed/legacy-formats.md describes
 * them, with Python's `cryptography` for .enc files and Info-ZIP `zip -P` for ZipCrypto
 * archives), are imported, every snapshot is restored, and what is restored is compared with
 * copies of the source taken at each run.
 */
import { execFileSync } from 'node:child_process';
import { cp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, type TestRepo, expectOk, initRepo, makeTempDir, removeDir } from './helpers/cli.js';

const PYTHON = '/usr/bin/python3';
const GENERATOR = join(ROOT, 'tests/fixtures/make-legacy-destination.py');

let dir: string;

/** One run of the old tool (see the generator's docstring). */
function oldRun(source: string, dest: string, stamp: string, mode: 'full' | 'incremental', extra: string[] = []): void {
  execFileSync(PYTHON, [GENERATOR, source, dest, '--stamp', stamp, '--mode', mode, ...extra], { stdio: 'pipe' });
}

/** Regular files below `root`: relative path → content. */
async function contents(root: string, prefix = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(join(root, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) Object.assign(out, await contents(root, rel));
    else if (entry.isFile()) out[rel] = await readFile(join(root, rel), 'utf8');
  }
  return out;
}

interface Listed {
  id: string;
  time: string;
  tags: string[];
  paths: string[];
}

async function snapshotsOf(repo: TestRepo): Promise<Listed[]> {
  const r = expectOk(await repo.run(['snapshots', '--json']), 'snapshots');
  return (JSON.parse(r.stdout) as { id: string; time: string; tags: string[]; paths: string[] }[]).sort((a, b) => a.time.localeCompare(b.time) || a.tags.join().localeCompare(b.tags.join()));
}

async function restored(repo: TestRepo, id: string, source: string): Promise<Record<string, string>> {
  const target = join(dir, `restore-${id}`);
  expectOk(await repo.run(['restore', id, '--target', target, '--verify']), `restore ${id}`);
  return contents(join(target, source));
}

beforeAll(async () => {
  dir = await makeTempDir('bh-legacy-import-');
  await writeFile(join(dir, 'pass'), 'old passphrase\n');
  await writeFile(join(dir, 'zip-pass'), 'Zq8xY2kLm4Np7Rt1\n');
  await writeFile(join(dir, 'wrong'), 'not it\n');
  await writeFile(join(dir, 'key32'), Buffer.alloc(32, 7));
});

afterAll(async () => {
  await removeDir(dir);
});

describe('a plain destination with a key-file .enc, a plain ZIP and damage', () => {
  it('key-file .enc (zero salt) and a plain ZIP with folders import; a checksum mismatch exits 3 naming the file, the rest imported', async () => {
    const src = join(dir, 'key-src');
    const dest = join(dir, 'key-dest');
    await mkdir(join(src, 'docs', 'deep'), { recursive: true });
    await writeFile(join(src, 'docs', 'deep', 'report.txt'), 'quarterly\n');
    await writeFile(join(src, 'notes.txt'), 'notes\n');
    await writeFile(join(src, 'photo.jpg'), 'jpeg bytes');
    oldRun(src, dest, '20240301_080000', 'full', ['--key-file', join(dir, 'key32')]);
    // The old tool's plain `--compress zip`: paths relative to the source, with directory entries.
    execFileSync('zip', ['-q', '-r', join(dest, 'backup_20240301_080001.zip'), '.'], { cwd: src });
    // Bit rot in the folder: same size, other bytes; decrypting it still works (it is a plain copy here).
    await writeFile(join(dest, 'damaged-note.txt'), 'not in any manifest\n');
    const enc = await readFile(join(dest, 'notes.txt.enc'));
    expect(enc.subarray(0, 16).equals(Buffer.alloc(16))).toBe(true);

    const repo = await initRepo(join(dir, 'key-repo'));
    const r = expectOk(await repo.run(['import-legacy', dest, '--legacy-key-file', join(dir, 'key32')]), 'import key-file destination');
    expect(r.stderr).toMatch(/1 file\(s\) of the folder are in no manifest/);
    const list = await snapshotsOf(repo);
    expect(list.map((s) => s.tags.join(','))).toEqual(['legacy-manifest', 'legacy-zip', 'legacy-unlisted']);
    const original = await contents(src);
    expect(await restored(repo, list[0]!.id, src)).toEqual(original);
    expect(await restored(repo, list[1]!.id, src)).toEqual(original);
    expect(await restored(repo, list[2]!.id, src)).toEqual({ 'damaged-note.txt': 'not in any manifest\n' });

    // A tampered file: its content matches no checksum of any manifest.
    const plainDest = join(dir, 'plain-dest');
    oldRun(src, plainDest, '20240302_080000', 'full');
    await writeFile(join(plainDest, 'notes.txt'), 'NOTES\n');
    const repo2 = await initRepo(join(dir, 'plain-repo'));
    const damaged = await repo2.run(['import-legacy', plainDest]);
    expect(damaged.code).toBe(3);
    expect(damaged.stderr).toMatch(/plain-dest\/notes\.txt: checksum mismatch/);
    const [only] = await snapshotsOf(repo2);
    const { 'notes.txt': _bad, ...rest } = original;
    expect(await restored(repo2, only!.id, src)).toEqual(rest);
  });

  it('refuses hostile names in manifests and archives, imports the rest, and writes nothing outside', async () => {
    const dest = join(dir, 'hostile-dest');
    await mkdir(dest);
    await writeFile(join(dest, 'ok.txt'), 'fine\n');
    const okSum = execFileSync('sha256sum', [join(dest, 'ok.txt')], { encoding: 'utf8' }).slice(0, 64);
    const manifest = {
      timestamp: '20240401_090000',
      mode: 'full',
      duration_seconds: 1,
      files_copied: 2,
      files_skipped: 0,
      files_failed: 0,
      total_bytes: 10,
      copied: [
        { path: '/home/u/src/ok.txt', size: 5, checksum: okSum },
        { path: '/home/u/src/../../../etc/passwd', size: 5, checksum: okSum },
      ],
      skipped: [],
      failed: [],
    };
    await writeFile(join(dest, 'backup_manifest_20240401_090000.json'), JSON.stringify(manifest, null, 2));
    const script = `
import zipfile, sys
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    z.writestr('good.txt', 'good')
    z.writestr('../escape.txt', 'bad')
    z.writestr('/abs.txt', 'bad')
`;
    execFileSync(PYTHON, ['-c', script, join(dest, 'backup_20240401_090001.zip')]);
    const repo = await initRepo(join(dir, 'hostile-repo'));
    const r = await repo.run(['import-legacy', dest]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/etc\/passwd.*refused/);
    expect(r.stderr).toMatch(/escape\.txt.*refused/);
    expect(r.stderr).toMatch(/abs\.txt.*refused/);
    const list = await snapshotsOf(repo);
    expect(list.map((s) => s.paths.join())).toEqual(['/home/u/src', '/home/u/src']);
    expect(await restored(repo, list[0]!.id, '/home/u/src')).toEqual({ 'ok.txt': 'fine\n' });
    expect(await restored(repo, list[1]!.id, '/home/u/src')).toEqual({ 'good.txt': 'good' });
    expect(existsSync(join(dir, 'escape.txt'))).toBe(false);
    await rm(join(dir, 'hostile-repo'), { recursive: true });
  });

  it('a folder without manifests becomes one snapshot of itself', async () => {
    const folder = join(dir, 'bare');
    await mkdir(join(folder, 'x'), { recursive: true });
    await writeFile(join(folder, 'x', 'y.txt'), 'y');
    await cp(join(folder, 'x', 'y.txt'), join(folder, 'z.txt'));
    const repo = await initRepo(join(dir, 'bare-repo'));
    expectOk(await repo.run(['import-legacy', folder]), 'import bare folder');
    const [only] = await snapshotsOf(repo);
    expect(only!.paths).toEqual([folder]);
    expect(await restored(repo, only!.id, folder)).toEqual({ 'x/y.txt': 'y', 'z.txt': 'y' });
  });
});
