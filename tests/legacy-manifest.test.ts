/**
 * `bh manifest` (the old tool's backup_manifest_*.json from a snapshot) and `bh verify-live`
 * (live files against a snapshot). The manifest is read back by Python's json module, as the
 * old tool read it, and its checksums are compared with coreutils' sha256sum; verify-live is
 * checked against changes made on the real file system, bit rot included (content changed,
 * size and mtime put back).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestRepo, backupSnapshot, expectOk, initRepo, makeTempDir, removeDir } from './helpers/cli.js';

let dir: string;
let repo: TestRepo;
let src: string;
let snapshot: string;

interface PyManifest {
  keys: string[];
  timestamp: string;
  mode: string;
  files_copied: number;
  files_skipped: number;
  files_failed: number;
  total_bytes: number;
  duration_seconds: number;
  copied: { path: string; size: number; checksum?: string; path_bytes: string }[];
  skipped: unknown[];
  failed: unknown[];
}

/** The manifest as Python's json reads it; each path also as the bytes surrogateescape gives back (hex). */
function readWithPython(file: string): PyManifest {
  const script = `
import json, sys
m = json.load(open(sys.argv[1]))
m['keys'] = list(m.keys())
for c in m['copied']:
    c['path_bytes'] = c['path'].encode('utf-8', 'surrogateescape').hex()
print(json.dumps(m))
`;
  return JSON.parse(execFileSync('python3', ['-c', script, file], { encoding: 'utf8' })) as PyManifest;
}

beforeAll(async () => {
  dir = await makeTempDir('bh-legacy-manifest-');
  repo = await initRepo(dir);
  src = join(dir, 'src');
  await mkdir(join(src, 'docs'), { recursive: true });
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  await writeFile(join(src, 'docs', 'résumé.txt'), 'accents\n');
  await writeFile(join(src, Buffer.concat([Buffer.from('raw-'), Buffer.of(0xff), Buffer.from('.bin')]).toString('latin1')), 'x');
  await writeFile(Buffer.concat([Buffer.from(join(src, 'latin-')), Buffer.of(0xe9)]), 'not utf-8 name');
  await writeFile(join(src, 'docs', 'skip.tmp'), 'excluded');
  snapshot = await backupSnapshot(repo, src, ['--exclude', '*.tmp']);
});

afterAll(async () => {
  await removeDir(dir);
});

describe('bh manifest', () => {
  it("writes the old schema, which Python reads, with sha256sum's checksums and exact name bytes", async () => {
    const out = join(dir, 'manifests');
    await mkdir(out);
    expectOk(await repo.run(['manifest', snapshot, '--output', out]), 'manifest');
    const [name] = await readdir(out);
    expect(name).toMatch(/^backup_manifest_\d{8}_\d{6}\.json$/);
    const text = await readFile(join(out, name!), 'utf8');
    expect(/^[\x00-\x7f]*$/.test(text)).toBe(true);
    expect(text).toContain('\n  "timestamp": ');
    const m = readWithPython(join(out, name!));
    expect(m.keys).toEqual(['timestamp', 'mode', 'duration_seconds', 'files_copied', 'files_skipped', 'files_failed', 'total_bytes', 'copied', 'skipped', 'failed']);
    expect(`backup_manifest_${m.timestamp}.json`).toBe(name);
    expect(m.mode).toBe('full');
    expect(m.files_copied).toBe(4);
    expect([m.files_skipped, m.files_failed, m.skipped, m.failed]).toEqual([0, 0, [], []]);
    const files = await walkFiles(Buffer.from(src));
    expect(m.copied.map((c) => Buffer.from(c.path_bytes, 'hex').toString('hex')).sort()).toEqual(files.map((f) => f.toString('hex')).sort());
    let total = 0;
    for (const entry of m.copied) {
      const path = Buffer.from(entry.path_bytes, 'hex');
      // Through standard input: argv cannot carry a name that is not UTF-8.
      const expected = execFileSync('sha256sum', { input: await readFile(path), encoding: 'utf8' }).slice(0, 64);
      expect(entry.checksum, path.toString()).toBe(expected);
      expect(entry.size).toBe((await stat(path)).size);
      total += entry.size;
    }
    expect(m.total_bytes).toBe(total);
  });

  it('writes to standard output, and refuses to overwrite a file', async () => {
    const r = expectOk(await repo.run(['manifest', 'latest']), 'manifest to stdout');
    expect((JSON.parse(r.stdout) as { files_copied: number }).files_copied).toBe(4);
    const file = join(dir, 'exists.json');
    await writeFile(file, '{}');
    const again = await repo.run(['manifest', 'latest', '--output', file]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/exists/);
  });
});

describe('bh verify-live', () => {
  it('finds nothing when nothing changed, then lists every kind of change, bit rot included', async () => {
    const clean = expectOk(await repo.run(['verify-live', snapshot, '--json']), 'verify-live on unchanged files');
    expect(clean.stdout).toContain('"differences":0');

    // Bit rot: same size, same mtime, other bytes.
    const rot = join(src, 'a.txt');
    // touch -r puts the nanoseconds back (utimes through a Date would lose them).
    const reference = join(dir, 'mtime-reference');
    execFileSync('cp', ['-p', rot, reference]);
    await writeFile(rot, 'alphA\n');
    execFileSync('touch', ['-r', reference, rot]);
    await writeFile(join(src, 'docs', 'résumé.txt'), 'accents, longer now\n');
    await rm(Buffer.concat([Buffer.from(join(src, 'latin-')), Buffer.of(0xe9)]));
    await writeFile(join(src, 'docs', 'new.txt'), 'new');
    await writeFile(join(src, 'docs', 'other.tmp'), 'excluded, as in the snapshot');

    const r = await repo.run(['verify-live', snapshot]);
    expect(r.code).toBe(3);
    const lines = r.stdout.split('\n');
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^! ${rot}: content differs .*bit rot`)));
    expect(lines).toContainEqual(expect.stringMatching(/^M .*résumé\.txt: size 8 → 20/));
    expect(lines).toContainEqual(expect.stringMatching(/^- .*latin-.*: in the snapshot, not on disk/));
    expect(lines).toContainEqual(expect.stringMatching(/^\+ .*docs\/new\.txt: on disk, not in the snapshot/));
    expect(r.stdout).not.toContain('other.tmp');
    expect(r.stdout).toMatch(/4 differences/);

    // --fast reads nothing: the rotted file goes unnoticed; the others are still found.
    const fast = await repo.run(['verify-live', snapshot, '--fast', '--json']);
    expect(fast.code).toBe(3);
    const changes = fast.stdout.trim().split('\n').map((l) => JSON.parse(l) as { message_type: string; change?: string; path?: string; files_hashed?: number });
    expect(changes.filter((c) => c.message_type === 'difference').map((c) => c.change).sort()).toEqual(['added', 'missing', 'modified']);
    expect(changes.find((c) => c.message_type === 'summary')?.files_hashed).toBe(0);

    // Limited to one snapshot path.
    const one = await repo.run(['verify-live', snapshot, join(src, 'docs')]);
    expect(one.code).toBe(3);
    expect(one.stdout).not.toContain('a.txt');
    expect(one.stdout).toMatch(/2 differences/);
  });
});

/** Every regular file below `root`, as path bytes. */
async function walkFiles(root: Buffer): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const entry of await readdir(root, { withFileTypes: true, encoding: 'buffer' })) {
    const path = Buffer.concat([root, Buffer.from('/'), entry.name]);
    if (entry.isDirectory()) out.push(...(await walkFiles(path)));
    else if (entry.isFile() && !entry.name.toString().endsWith('.tmp')) out.push(path);
  }
  return out;
}
