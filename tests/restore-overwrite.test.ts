/**
 * What a restore does with what is already in its target, when the existing entry is of the
 * other kind than the snapshot's (a directory where the snapshot has a file, symlink, hardlink or
 * socket; a file where it has a directory), under each --overwrite mode. One rule (README "What
 * restore guarantees"): always and if-changed replace it, except a non-empty directory, which is
 * deleted only with --overwrite-dirs; never keeps it. A kept entry of the other kind is an error
 * naming the path (exit 3); a kept entry of the same kind is skipped (exit 0). Checked on the
 * file system: nothing the user had is lost unless asked.
 */
import { linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunResult, type TestRepo, backupSnapshot, describeRun, initRepo, makeTempDir, removeDir, summaryOf } from './helpers/cli.js';
import { compareTrees } from './helpers/tree-compare.js';

let tmp: string;
let repo: TestRepo;
let src: string;
let snapshotId: string;

/** Entries of the snapshot that meet an existing entry of the other kind in the target. */
const FILE_OVER_FULL_DIR = 'file-over-full-dir';
const FILE_OVER_EMPTY_DIR = 'file-over-empty-dir';
const SYMLINK_OVER_FULL_DIR = 'symlink-over-full-dir';
const HARDLINK_OVER_FULL_DIR = 'hardlink-b';
const SOCKET_OVER_FULL_DIR = 'socket';
const DIR_OVER_FILE = 'dir-over-file';

beforeAll(async () => {
  tmp = await makeTempDir('bh-overwrite-');
  repo = await initRepo(tmp);
  src = join(tmp, 'src');
  mkdirSync(join(src, DIR_OVER_FILE), { recursive: true });
  writeFileSync(join(src, 'plain.txt'), 'restored in every mode\n');
  writeFileSync(join(src, 'same-kind.txt'), 'snapshot version\n');
  writeFileSync(join(src, FILE_OVER_FULL_DIR), 'snapshot file over a full directory\n');
  writeFileSync(join(src, FILE_OVER_EMPTY_DIR), 'snapshot file over an empty directory\n');
  symlinkSync('plain.txt', join(src, SYMLINK_OVER_FULL_DIR));
  writeFileSync(join(src, 'hardlink-a'), 'one inode, two names\n');
  linkSync(join(src, 'hardlink-a'), join(src, HARDLINK_OVER_FULL_DIR));
  writeFileSync(join(src, DIR_OVER_FILE, 'inner.txt'), 'inside the snapshot directory\n');
  // A socket is backed up as an entry but never restored: the directory in its place stays.
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(join(src, SOCKET_OVER_FULL_DIR), resolve));
  try {
    snapshotId = await backupSnapshot(repo, src);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

afterAll(() => removeDir(tmp));

/** A directory holding the user's data, in the target where the snapshot has a non-directory. */
function fullDir(path: string): void {
  mkdirSync(join(path, 'deep'), { recursive: true });
  writeFileSync(join(path, 'precious.txt'), `precious: ${path}\n`);
  writeFileSync(join(path, 'deep', 'more.txt'), `more: ${path}\n`);
}

function expectFullDirIntact(path: string): void {
  expect(lstatSync(path).isDirectory(), `${path} must still be a directory`).toBe(true);
  expect(readFileSync(join(path, 'precious.txt'), 'utf8')).toBe(`precious: ${path}\n`);
  expect(readFileSync(join(path, 'deep', 'more.txt'), 'utf8')).toBe(`more: ${path}\n`);
}

/** A target holding the snapshot's root with an entry of the other kind at each conflicting name; returns that root. */
function prepareTarget(name: string): { target: string; root: string } {
  const target = join(tmp, name);
  const root = join(target, src);
  mkdirSync(root, { recursive: true });
  for (const entry of [FILE_OVER_FULL_DIR, SYMLINK_OVER_FULL_DIR, HARDLINK_OVER_FULL_DIR, SOCKET_OVER_FULL_DIR]) fullDir(join(root, entry));
  mkdirSync(join(root, FILE_OVER_EMPTY_DIR));
  writeFileSync(join(root, DIR_OVER_FILE), 'a file of the user where the snapshot has a directory\n');
  writeFileSync(join(root, 'same-kind.txt'), 'local version, longer than the snapshot one\n');
  return { target, root };
}

interface ErrorLine {
  path: string;
  error: string;
}

function errorsOf(r: RunResult): ErrorLine[] {
  return r.stdout
    .split('\n')
    .filter((l) => l.includes('"message_type":"error"'))
    .map((l) => JSON.parse(l) as ErrorLine);
}

function restore(target: string, mode: string, extra: string[] = []): Promise<RunResult> {
  return repo.run(['restore', snapshotId, '--target', target, '--overwrite', mode, '--json', ...extra]);
}

describe('an existing entry of the other kind than the snapshot entry', () => {
  for (const mode of ['always', 'if-changed']) {
    it(`--overwrite ${mode}: replaces files and empty directories, keeps a full directory and says so (exit 3)`, async () => {
      const { target, root } = prepareTarget(`mode-${mode}`);
      const r = await restore(target, mode);
      expect(r.code, describeRun('restore', r)).toBe(3);

      // Every full directory is there, whole; each refusal names the path, why, and what to do.
      const refused = [FILE_OVER_FULL_DIR, SYMLINK_OVER_FULL_DIR, HARDLINK_OVER_FULL_DIR];
      for (const entry of [...refused, SOCKET_OVER_FULL_DIR]) expectFullDirIntact(join(root, entry));
      const errors = errorsOf(r);
      expect(errors.map((e) => e.path).sort()).toEqual(refused.map((e) => join(root, e)).sort());
      for (const e of errors) {
        expect(e.error).toContain('not replaced: directory is not empty');
        expect(e.error).toContain('--overwrite-dirs');
      }
      expect(r.stderr).toContain(`error: ${join(root, FILE_OVER_FULL_DIR)}: not replaced: directory is not empty, and the snapshot has a file here`);
      expect(r.stderr).toContain(`error: ${join(root, SYMLINK_OVER_FULL_DIR)}: not replaced: directory is not empty, and the snapshot has a symlink here`);

      // The empty directory and the file gave way; the rest is restored.
      expect(readFileSync(join(root, FILE_OVER_EMPTY_DIR), 'utf8')).toBe('snapshot file over an empty directory\n');
      expect(readdirSync(join(root, DIR_OVER_FILE))).toEqual(['inner.txt']);
      expect(readFileSync(join(root, DIR_OVER_FILE, 'inner.txt'), 'utf8')).toBe('inside the snapshot directory\n');
      expect(readFileSync(join(root, 'hardlink-a'), 'utf8')).toBe('one inode, two names\n');
      expect(readFileSync(join(root, 'same-kind.txt'), 'utf8')).toBe('snapshot version\n');
      expect(readFileSync(join(root, 'plain.txt'), 'utf8')).toBe('restored in every mode\n');
      // Skipped: the socket only.
      expect(summaryOf<{ skipped: number; errors: number }>(r)).toMatchObject({ skipped: 1, errors: 3 });
      await removeDir(target);
    });
  }

  it('--overwrite never: keeps every existing entry; those of the other kind are errors (exit 3), the same kind is skipped', async () => {
    const { target, root } = prepareTarget('mode-never');
    const r = await restore(target, 'never');
    expect(r.code, describeRun('restore', r)).toBe(3);

    for (const entry of [FILE_OVER_FULL_DIR, SYMLINK_OVER_FULL_DIR, HARDLINK_OVER_FULL_DIR, SOCKET_OVER_FULL_DIR]) expectFullDirIntact(join(root, entry));
    expect(readdirSync(join(root, FILE_OVER_EMPTY_DIR))).toEqual([]);
    expect(readFileSync(join(root, DIR_OVER_FILE), 'utf8')).toBe('a file of the user where the snapshot has a directory\n');
    expect(readFileSync(join(root, 'same-kind.txt'), 'utf8')).toBe('local version, longer than the snapshot one\n');
    expect(readFileSync(join(root, 'plain.txt'), 'utf8')).toBe('restored in every mode\n');
    expect(readFileSync(join(root, 'hardlink-a'), 'utf8')).toBe('one inode, two names\n');

    // Both directions are errors, with the same wording; same-kind.txt and the socket are skipped.
    const errors = errorsOf(r);
    const dirsKept = [FILE_OVER_FULL_DIR, FILE_OVER_EMPTY_DIR, SYMLINK_OVER_FULL_DIR, HARDLINK_OVER_FULL_DIR];
    expect(errors.map((e) => e.path).sort()).toEqual([...dirsKept, DIR_OVER_FILE].map((e) => join(root, e)).sort());
    for (const e of errors.filter((x) => x.path !== join(root, DIR_OVER_FILE))) expect(e.error).toContain('exists and is a directory: kept (--overwrite never)');
    expect(errors.find((x) => x.path === join(root, DIR_OVER_FILE))!.error).toContain("exists and is not a directory: kept (--overwrite never), so the snapshot's directory is not restored");
    expect(summaryOf<{ skipped: number; errors: number }>(r)).toMatchObject({ skipped: 2, errors: 5 });
    await removeDir(target);
  });

  it('--overwrite always --overwrite-dirs: replaces the full directories too; the result is the snapshot (exit 0)', async () => {
    const { target, root } = prepareTarget('mode-overwrite-dirs');
    const r = await restore(target, 'always', ['--overwrite-dirs']);
    expect(r.code, describeRun('restore', r)).toBe(0);
    expect(readlinkSync(join(root, SYMLINK_OVER_FULL_DIR))).toBe('plain.txt');
    expect(lstatSync(join(root, HARDLINK_OVER_FULL_DIR)).ino).toBe(lstatSync(join(root, 'hardlink-a')).ino);
    // Nothing is restored for a socket, so nothing is replaced there either.
    expectFullDirIntact(join(root, SOCKET_OVER_FULL_DIR));
    // The source root's mtime moved when the socket went away after the backup.
    const differences = await compareTrees(src, root, { ignoreRootMtime: true });
    expect(differences.filter((d) => !d.startsWith(`"${SOCKET_OVER_FULL_DIR}"`))).toEqual([]);
    await removeDir(target);
  });

  it('--overwrite-dirs with --overwrite never is refused (exit 1) and changes nothing', async () => {
    const { target, root } = prepareTarget('mode-never-dirs');
    const r = await restore(target, 'never', ['--overwrite-dirs']);
    expect(r.code, describeRun('restore', r)).toBe(1);
    expect(r.stderr).toContain('--overwrite-dirs');
    expect(readdirSync(root)).not.toContain('plain.txt');
    expectFullDirIntact(join(root, FILE_OVER_FULL_DIR));
    await removeDir(target);
  });
});
