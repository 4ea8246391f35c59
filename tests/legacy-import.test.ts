/**
 * `bh import-legacy`: old Backup Handler destinations, made by tests/fixtures/
 * make-legacy-destination.py (the old tool's runs as shared/seed/legacy-formats.md describes
 * them, with Python's `cryptography` for .enc files and Info-ZIP `zip -P` for ZipCrypto
 * archives), are imported, every snapshot is restored, and what is restored is compared with
 * copies of the source taken at each run.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, utimes, writeFile } from 'node:fs/promises';
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

describe('an encrypted destination: mirror, manifests, .enc files, a zip_pw archive', () => {
  let repo: TestRepo;
  let src: string;
  let dest: string;
  let atFull: Record<string, string>;
  let atIncremental: Record<string, string>;

  beforeAll(async () => {
    src = join(dir, 'enc-src');
    dest = join(dir, 'enc-dest');
    await mkdir(join(src, 'sub'), { recursive: true });
    await writeFile(join(src, 'a.txt'), 'version 1\n');
    await writeFile(join(src, 'sub', 'a.txt'), 'same name, other folder\n');
    await writeFile(join(src, 'b.txt'), 'unchanged\n');
    oldRun(src, dest, '20240101_100000', 'full', ['--passphrase-file', join(dir, 'pass'), '--zip-password', 'Zq8xY2kLm4Np7Rt1']);
    atFull = await contents(src);
    await writeFile(join(src, 'a.txt'), 'version 2, longer\n');
    await utimes(join(src, 'a.txt'), new Date(), new Date(Date.now() + 5000));
    await writeFile(join(src, 'c.txt'), 'new in the incremental\n');
    oldRun(src, dest, '20240102_100000', 'incremental', ['--passphrase-file', join(dir, 'pass')]);
    atIncremental = await contents(src);
    repo = await initRepo(join(dir, 'enc-repo'));
  });

  it('a wrong passphrase or ZIP password exits 12 before any snapshot is written', async () => {
    const wrongKey = await repo.run(['import-legacy', dest, '--passphrase-file', join(dir, 'wrong'), '--zip-password-file', join(dir, 'zip-pass')]);
    expect(wrongKey.code).toBe(12);
    expect(wrongKey.stderr).toMatch(/does not decrypt .*nothing was imported/);
    const wrongZip = await repo.run(['import-legacy', dest, '--passphrase-file', join(dir, 'pass'), '--zip-password-file', join(dir, 'wrong')]);
    expect(wrongZip.code).toBe(12);
    expect(wrongZip.stderr).toMatch(/ZIP password does not open .*nothing was imported/);
    const none = await repo.run(['import-legacy', dest]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/\.enc files: give the old passphrase/);
    expect(await snapshotsOf(repo)).toEqual([]);
  });

  it('--dry-run lists the snapshots and writes none', async () => {
    const r = expectOk(await repo.run(['import-legacy', dest, '--passphrase-file', join(dir, 'pass'), '--zip-password-file', join(dir, 'zip-pass'), '--dry-run']), 'dry run');
    expect(r.stdout.match(/^would write: /gm)).toHaveLength(3);
    expect(await snapshotsOf(repo)).toEqual([]);
  });

  it('imports each point in time; restores give the source as it was, minus what the mirror no longer holds', async () => {
    const r = expectOk(await repo.run(['import-legacy', dest, '--passphrase-file', join(dir, 'pass'), '--zip-password-file', join(dir, 'zip-pass'), '--tag', 'old', '--host', 'oldhost']), 'import');
    expect(r.stderr).toMatch(/backup_manifest_20240101_100000\.json: 1 file\(s\) could not be recovered in this older version .*enc-src\/a\.txt/);
    const list = await snapshotsOf(repo);
    expect(list.map((s) => [s.tags.join(','), s.paths.join(',')])).toEqual([
      ['old,legacy-manifest', src],
      ['old,legacy-zip', src],
      ['old,legacy-manifest', src],
    ]);
    expect(new Date(list[0]!.time).getTime()).toBe(new Date(2024, 0, 1, 10, 0, 0).getTime());
    expect(new Date(list[2]!.time).getTime()).toBe(new Date(2024, 0, 2, 10, 0, 0).getTime());

    // The full run's point in time: a.txt's version 1 is gone from the mirror (version 2 overwrote it).
    const { 'a.txt': _lost, ...fullRecoverable } = atFull;
    expect(await restored(repo, list[0]!.id, src)).toEqual(fullRecoverable);
    // The zip_pw archive of that run still has version 1, with names flattened and kept apart.
    expect(await restored(repo, list[1]!.id, src)).toEqual({ 'a.txt': atFull['a.txt'], 'a (2).txt': atFull['sub/a.txt'], 'b.txt': atFull['b.txt'] });
    // The incremental: copied plus skipped files, all of them.
    expect(await restored(repo, list[2]!.id, src)).toEqual(atIncremental);

    // The SHA-256 bh recorded is the manifests' checksum of each file.
    const manifest = JSON.parse(await readFile(join(dest, 'backup_manifest_20240102_100000.json'), 'utf8')) as { copied: { path: string; checksum: string }[] };
    const mine = JSON.parse(expectOk(await repo.run(['manifest', list[2]!.id]), 'manifest').stdout) as { copied: { path: string; checksum: string }[] };
    for (const c of manifest.copied) expect(mine.copied.find((m) => m.path === c.path)?.checksum).toBe(c.checksum);
  });
});
