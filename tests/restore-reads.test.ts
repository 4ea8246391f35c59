/**
 * How restore reads packs (src/repo/blob-reader.ts, src/snapshot/restore/): straight from the
 * pack files where the backend offers them (Backend.localPath: the local backend, passed on by
 * the retry decorator, and by the throttle only without a download limit), else through the
 * backend on the main thread. Whichever way a run is read — by a worker thread, inline, or
 * through the throttle — a missing or cut pack fails exactly the files that need it, with the
 * same message naming the pack, and every other file is restored whole.
 */
import { readFileSync, existsSync } from 'node:fs';
import { mkdir, rm, truncate, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FileRef, openBackend } from '../src/backends/index.js';
import { withRetry } from '../src/backends/retry.js';
import { type TestRepo, backupSnapshot, describeRun, initRepo, makeTempDir, removeDir } from './helpers/cli.js';
import { packNames } from './helpers/repo-lib.js';

let tmp: string;
let repo: TestRepo;
let src: string;
let snapshotId: string;
/** The pack holding only new.bin's content (written by the second backup). */
let newPack: string;
const content = { 'old-a.bin': randomBytes(200_000), 'old-b.bin': randomBytes(150_000), 'new.bin': randomBytes(300_000) };

beforeAll(async () => {
  tmp = await makeTempDir('bh-restore-reads-');
  repo = await initRepo(tmp);
  src = join(tmp, 'src');
  await mkdir(src);
  await writeFile(join(src, 'old-a.bin'), content['old-a.bin']);
  await writeFile(join(src, 'old-b.bin'), content['old-b.bin']);
  await backupSnapshot(repo, src);
  const before = await packNames(repo.path);
  await writeFile(join(src, 'new.bin'), content['new.bin']);
  snapshotId = await backupSnapshot(repo, src);
  const added = [...(await packNames(repo.path))].filter((name) => !before.has(name));
  // The second backup wrote one data pack (new.bin's chunk) and one tree pack: find the data one.
  for (const name of added) {
    const header = await repo.run(['cat', 'pack', name]);
    if (header.code === 0 && (JSON.parse(header.stdout) as { blobs: { type: string }[] }).blobs[0]!.type === 'data') newPack = name;
  }
  expect(newPack, `the data pack of the second backup among ${added.join(', ')}`).toBeDefined();
});

afterAll(async () => {
  await removeDir(tmp);
});

const packFile = (name: string): string => join(repo.path, 'data', name.slice(0, 2), name);

/** The three ways a restore reads a local repository's packs. */
const READ_PATHS: [string, string[], Record<string, string>][] = [
  ['a worker thread, from the pack files', [], { BH_WORKERS: '1' }],
  ['the main thread, from the pack files', [], { BH_WORKERS: '0' }],
  ['the main thread, through the download limit', ['--limit-download', '100000'], { BH_WORKERS: '1' }],
];

/** Restores the snapshot every way; the errors (path relative to the target → message) of each, which must all be equal. */
async function restoreEveryWay(damage: string): Promise<Map<string, string>> {
  const seen: Map<string, string>[] = [];
  for (const [how, flags, env] of READ_PATHS) {
    const target = join(tmp, `restore-${damage}-${seen.length}`);
    const r = await repo.run(['restore', snapshotId, '--target', target, '--json', ...flags], { env });
    expect(r.code, `${how}: ${describeRun('restore', r)}`).toBe(3);
    const errors = new Map<string, string>();
    for (const line of r.stdout.split('\n').filter((l) => l.includes('"message_type":"error"'))) {
      const { path, error } = JSON.parse(line) as { path: string; error: string };
      errors.set(path.slice(target.length), error);
    }
    const restored = join(target, src);
    for (const [name, bytes] of Object.entries(content)) {
      if (errors.has(join(src, name))) expect(existsSync(join(restored, name)), `${how}: the failed ${name} is removed`).toBe(false);
      else expect(readFileSync(join(restored, name)).equals(bytes), `${how}: ${name} restored whole`).toBe(true);
    }
    seen.push(errors);
  }
  for (const errors of seen.slice(1)) expect(errors).toEqual(seen[0]);
  return seen[0]!;
}

describe('restore reads', () => {
  it('a local backend offers its pack files; retry passes that on, the throttle only without a download limit', async () => {
    const ref: FileRef = { type: 'data', name: newPack };
    const local = await openBackend(repo.path, { env: {} });
    expect(local.localPath?.(ref)).toBe(packFile(newPack));
    expect(withRetry(local).localPath?.(ref)).toBe(packFile(newPack));
    expect((await openBackend(repo.path, { env: {}, limitUpload: 100 })).localPath?.(ref)).toBe(packFile(newPack));
    expect((await openBackend(repo.path, { env: {}, limitDownload: 100 })).localPath).toBeUndefined();
    expect(() => local.localPath!({ type: 'data', name: '../../etc/passwd' })).toThrow(/invalid data file name/);
  });

  it('a pack cut short fails only the file it holds, with the same message every way', async () => {
    const whole = readFileSync(packFile(newPack));
    await truncate(packFile(newPack), 1000);
    try {
      const errors = await restoreEveryWay('cut');
      expect([...errors.keys()]).toEqual([join(src, 'new.bin')]);
      expect(errors.get(join(src, 'new.bin'))).toMatch(new RegExp(`^${repo.path}: data/${newPack} is shorter than expected \\(wanted \\d+ bytes, got 1000\\)$`));
    } finally {
      await writeFile(packFile(newPack), whole);
    }
  });

  it('a pack gone fails only the file it held, with the same message every way', async () => {
    await rm(packFile(newPack));
    const errors = await restoreEveryWay('gone');
    expect(Object.fromEntries(errors)).toEqual({ [join(src, 'new.bin')]: `${repo.path}: data/${newPack} does not exist` });
  });
});
