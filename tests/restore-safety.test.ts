/**
 * A restore never writes outside its target: hostile names in a (hand-crafted) snapshot are
 * refused, and symlinks already inside the target are never followed. Plus the --overwrite modes.
 * Everything is checked on the file system.
 */
import { linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LocalBackend } from '../src/backends/local.js';
import { Repository } from '../src/repo/repository.js';
import { encodeTree } from '../src/snapshot/tree.js';
import type { SnapshotRecord } from '../src/snapshot/snapshot.js';
import { getXattr, listXattrs, lutimesNs, setXattr } from '../src/fsx/index.js';
import { type RunResult, type TestRepo, initRepo, makeTempDir, removeDir } from './helpers/cli.js';
import { compareTrees } from './helpers/tree-compare.js';

const PWNED = 'pwned by a hostile snapshot';

let tmp: string;
let repo: TestRepo;
let src: string;
let snapshotId: string;
/** A directory outside every restore target: nothing may ever appear in it. */
let outside: string;

function detail(r: RunResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

/** Every path below `dir` (recursively, symlinks not followed) whose name is in `names` or whose content is PWNED. */
function findTraces(dir: string, names: string[], skip: string[] = []): string[] {
  const hits: string[] = [];
  const visit = (d: string): void => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (skip.includes(path)) continue;
      const st = lstatSync(path);
      if (names.includes(name)) hits.push(path);
      if (st.isDirectory()) visit(path);
      else if (st.isFile() && st.size === PWNED.length && readFileSync(path, 'utf8') === PWNED) hits.push(path);
    }
  };
  visit(dir);
  return hits;
}

beforeAll(async () => {
  tmp = await makeTempDir('bh-safety-');
  repo = await initRepo(tmp);
  outside = join(tmp, 'outside');
  mkdirSync(join(outside, 'dir'), { recursive: true });
  writeFileSync(join(outside, 'victim'), 'victim: must stay as it is');
  src = join(tmp, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'file.txt'), 'file content\n');
  writeFileSync(join(src, 'changed.txt'), 'original content\n');
  writeFileSync(join(src, 'same.txt'), 'identical\n');
  writeFileSync(join(src, 'mtime-only.txt'), 'same bytes, other mtime\n');
  writeFileSync(join(src, 'sub', 'inner.txt'), 'inner\n');
  writeFileSync(join(src, 'linked'), 'one inode, two names\n');
  linkSync(join(src, 'linked'), join(src, 'sub', 'linked'));
  lutimesNs(join(src, 'sub'), 0n, 1_600_000_000_000_000_001n);
  lutimesNs(src, 0n, 1_600_000_000_000_000_002n);
  const r = await repo.run(['backup', src, '--json']);
  expect(r.code, detail(r)).toBe(0);
  snapshotId = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { snapshot_id: string }).snapshot_id;
});

afterAll(() => removeDir(tmp));

describe('hostile names in a snapshot', () => {
  /** Snapshot ids, by case. */
  const hostile = new Map<string, string>();

  /** JSON of one node, as a tree blob holds it. */
  const node = (fields: Record<string, unknown>): Record<string, unknown> => ({ mode: 0o644, uid: 0, gid: 0, mtime: '1700000000000000000', ctime: '1700000000000000000', inode: '1', device: '1', links: 1, size: 0, ...fields });

  beforeAll(async () => {
    const opened = await Repository.open(new LocalBackend(repo.path), { kind: 'password', password: Buffer.from(repo.env.BH_PASSWORD!) });
    const indexed = await opened.loadIndex(await opened.listSnapshots());
    const save = async (type: 'tree' | 'data', bytes: Buffer): Promise<string> => (await indexed.saveBlob(type, bytes)).id.toString('hex');
    const pwned = await save('data', Buffer.from(PWNED));
    const file = (name: Record<string, string>): Record<string, unknown> => node({ ...name, type: 'file', size: PWNED.length, content: [pwned] });
    const tree = (nodes: Record<string, unknown>[]): Promise<string> => save('tree', Buffer.from(JSON.stringify({ nodes })));
    const innocent = await tree([file({ name: 'x' })]);

    // Each case: the entries of one hostile tree (hand-written JSON: encodeTree would not help).
    const cases: Record<string, Record<string, unknown>[]> = {
      'dotdot-file': [file({ name: '../x' })],
      'dotdot-dotdot-file': [file({ name: '../../x' })],
      'dotdot-bytes': [file({ name_bytes: Buffer.from('../x').toString('base64') })],
      absolute: [file({ name: join(outside, 'x') })],
      'slash-through-symlink': [node({ name: 'a', type: 'symlink', linktarget: outside }), file({ name: 'a/b' })],
      'dotdot-dir': [node({ name: '..', type: 'dir', mode: 0o755, subtree: innocent })],
      'dot-dir': [node({ name: '.', type: 'dir', mode: 0o755, subtree: innocent })],
      nul: [file({ name_bytes: Buffer.from('x\0y').toString('base64') })],
      empty: [file({ name: '' })],
    };
    const record = (tree: string): SnapshotRecord => ({
      version: 1, time: new Date().toISOString(), tree, paths: ['/hostile'], host: 'hostile', username: userInfo().username, uid: 0, gid: 0,
      tags: [], mode: 'full', parent: null, excludes: [], program_version: 'handmade',
    });
    const safeDir = (name: string, subtree: string) => ({ name: Buffer.from(name), type: 'dir' as const, mode: 0o755, uid: 0, gid: 0, mtimeNs: 0n, ctimeNs: 0n, inode: 2n, device: 1n, links: 2, size: 0, subtree: Buffer.from(subtree, 'hex') });
    const below: ReturnType<typeof safeDir>[] = [];
    for (const [name, nodes] of Object.entries(cases)) {
      const bad = await tree(nodes);
      // The hostile tree as the root tree…
      hostile.set(name, await opened.saveJson('snapshot', record(bad)));
      below.push(safeDir(`d-${name}`, bad));
    }
    // …and all of them one level down, each below a harmless directory, in one snapshot.
    hostile.set('nested', await opened.saveJson('snapshot', record(await save('tree', encodeTree(below)))));
    await indexed.flush();
  });

  const shown: Record<string, string> = {
    'dotdot-file': '"../x"',
    'dotdot-dotdot-file': '"../../x"',
    'dotdot-bytes': '"../x"',
    absolute: '/outside/x"',
    'slash-through-symlink': '"a/b"',
    'dotdot-dir': '".."',
    'dot-dir': '"."',
    nul: '"x\\u0000y"',
    empty: '""',
  };

  const assertNoTraces = (base: string): void => {
    // Nothing named x (or b, or y) and no hostile content anywhere: not beside the target, not in
    // the outside directory, not even inside the target.
    expect(findTraces(base, ['x', 'b', 'y', 'x\0y'])).toEqual([]);
    expect(findTraces(tmp, ['x', 'b', 'y'], [repo.path])).toEqual([]);
    expect(readdirSync(outside).sort()).toEqual(['dir', 'victim']);
    expect(readdirSync(join(outside, 'dir'))).toEqual([]);
  };

  // At the root, the names that would land outside the target if followed (the others are
  // covered one level down below).
  const atRoot = ['dotdot-file', 'absolute', 'slash-through-symlink', 'dotdot-dir', 'nul'];
  for (const [name, refused] of Object.entries(shown).filter(([n]) => atRoot.includes(n))) {
    it(`refuses ${name} in the root tree, and writes nothing outside the target`, async () => {
      const base = join(tmp, `hostile-${name}`);
      mkdirSync(base);
      const r = await repo.run(['restore', hostile.get(name)!, '--target', join(base, 'target')]);
      expect(r.code, detail(r)).not.toBe(0);
      expect(r.stderr).toContain('refusing unsafe entry name');
      expect(r.stderr).toContain(refused);
      assertNoTraces(base);
    });
  }

  it('refuses each of them below a harmless directory, restores the rest, and writes nothing outside the target', async () => {
    const base = join(tmp, 'hostile-nested');
    mkdirSync(base);
    const target = join(base, 'target');
    const r = await repo.run(['restore', hostile.get('nested')!, '--target', target, '--json']);
    expect(r.code, detail(r)).toBe(3);
    const errors = r.stdout.split('\n').filter((l) => l.includes('"message_type":"error"')).map((l) => JSON.parse(l) as { path: string; error: string });
    expect(errors).toHaveLength(Object.keys(shown).length);
    for (const [name, refused] of Object.entries(shown)) {
      const e = errors.find((x) => x.path === join(target, `d-${name}`));
      expect(e, `error for d-${name}`).toBeDefined();
      expect(e!.error).toContain('refusing unsafe entry name');
      expect(e!.error).toContain(refused);
    }
    // The harmless directories are there, and empty.
    expect(readdirSync(target).sort()).toEqual(Object.keys(shown).map((n) => `d-${n}`).sort());
    for (const d of readdirSync(target)) expect(readdirSync(join(target, d))).toEqual([]);
    assertNoTraces(base);
  });
});

describe('symlinks already inside the target are never followed', () => {
  const assertOutsideUntouched = (): void => {
    expect(readdirSync(outside).sort()).toEqual(['dir', 'victim']);
    expect(readdirSync(join(outside, 'dir'))).toEqual([]);
    expect(readFileSync(join(outside, 'victim'), 'utf8')).toBe('victim: must stay as it is');
  };

  it('a symlink where a directory of the path goes: replaced (--overwrite always), left alone (never)', async () => {
    const first = src.split('/')[1]!; // "tmp"
    // With --include the directories on the way are not selected themselves: another code path.
    for (const [mode, include] of [['always', []], ['never', []], ['always', ['--include', 'inner.txt']], ['never', ['--include', 'inner.txt']]] as const) {
      const target = join(tmp, `pre-symlink-${mode}-${include.length}`);
      mkdirSync(target);
      symlinkSync(join(outside, 'dir'), join(target, first));
      const r = await repo.run(['restore', snapshotId, '--target', target, '--overwrite', mode, ...include]);
      assertOutsideUntouched();
      if (mode === 'never') {
        expect(r.code, detail(r)).toBe(3);
        expect(r.stderr).toContain('not a directory');
        expect(readlinkSync(join(target, first))).toBe(join(outside, 'dir'));
      } else if (include.length > 0) {
        expect(r.code, detail(r)).toBe(0);
        expect(lstatSync(join(target, first)).isDirectory()).toBe(true);
        expect(readdirSync(join(target, src))).toEqual(['sub']);
        expect(readdirSync(join(target, src, 'sub'))).toEqual(['inner.txt']);
        expect(readFileSync(join(target, src, 'sub', 'inner.txt'), 'utf8')).toBe('inner\n');
      } else {
        expect(r.code, detail(r)).toBe(0);
        expect(lstatSync(join(target, first)).isDirectory()).toBe(true);
        expect(await compareTrees(src, join(target, src))).toEqual([]);
      }
      await removeDir(target);
    }
  });

  it('symlinks where a file and a subdirectory go: replaced, and never written through', async () => {
    for (const mode of ['always', 'if-changed', 'never']) {
      const target = join(tmp, `deep-symlink-${mode}`);
      const root = join(target, src);
      mkdirSync(root, { recursive: true });
      symlinkSync(join(outside, 'victim'), join(root, 'file.txt'));
      symlinkSync(join(outside, 'dir'), join(root, 'sub'));
      const r = await repo.run(['restore', snapshotId, '--target', target, '--overwrite', mode]);
      assertOutsideUntouched();
      if (mode === 'never') {
        // The file symlink is an existing entry: kept. The directory cannot be made: an error.
        expect(r.code, detail(r)).toBe(3);
        expect(r.stderr).toContain(`${join(root, 'sub')}: exists and is not a directory`);
        expect(readlinkSync(join(root, 'file.txt'))).toBe(join(outside, 'victim'));
        expect(readlinkSync(join(root, 'sub'))).toBe(join(outside, 'dir'));
        // Everything else was restored.
        expect(readFileSync(join(root, 'same.txt'), 'utf8')).toBe('identical\n');
      } else {
        expect(r.code, detail(r)).toBe(0);
        expect(await compareTrees(src, root)).toEqual([]);
      }
      await removeDir(target);
    }
  });
});

describe('--overwrite', () => {
  it('never keeps existing files, if-changed replaces only files whose size or mtime differ, always replaces', async () => {
    const target = join(tmp, 'overwrite');
    const root = join(target, src);
    const r0 = await repo.run(['restore', snapshotId, '--target', target]);
    expect(r0.code, detail(r0)).toBe(0);
    expect(await compareTrees(src, root)).toEqual([]);

    // A marker xattr (not in the snapshot) tells whether a file was replaced.
    const MARK = 'user.marker';
    const marked = (f: string): boolean => listXattrs(join(root, f)).includes(MARK);
    const tamper = (): void => {
      writeFileSync(join(root, 'changed.txt'), 'locally changed, and longer\n');
      setXattr(join(root, 'same.txt'), MARK, Buffer.from('1'));
      setXattr(join(root, 'mtime-only.txt'), MARK, Buffer.from('1'));
      const st = lstatSync(join(root, 'mtime-only.txt'), { bigint: true });
      lutimesNs(join(root, 'mtime-only.txt'), st.atimeNs, st.mtimeNs + 1n);
      rmSync(join(root, 'sub', 'inner.txt'));
      // One name of a hardlinked pair is gone: it must come back as a link, not a copy.
      rmSync(join(root, 'sub', 'linked'));
    };
    const run = async (mode: string): Promise<RunResult> => {
      const r = await repo.run(['restore', snapshotId, '--target', target, '--overwrite', mode, '--json']);
      expect(r.code, detail(r)).toBe(0);
      return r;
    };
    tamper();

    await run('never');
    expect(readFileSync(join(root, 'changed.txt'), 'utf8')).toBe('locally changed, and longer\n');
    expect(marked('same.txt')).toBe(true);
    expect(marked('mtime-only.txt')).toBe(true);
    // A missing file is restored even with never; a missing hardlinked name as a link.
    expect(readFileSync(join(root, 'sub', 'inner.txt'), 'utf8')).toBe('inner\n');
    expect(lstatSync(join(root, 'sub', 'linked')).ino).toBe(lstatSync(join(root, 'linked')).ino);

    await run('if-changed');
    expect(readFileSync(join(root, 'changed.txt'), 'utf8')).toBe('original content\n');
    expect(marked('mtime-only.txt')).toBe(false);
    expect(marked('same.txt')).toBe(true);
    // Everything else now equals the source; the skipped identical file differs only by the marker.
    expect(await compareTrees(src, root)).toEqual(['"same.txt": xattr names  != user.marker']);
    expect(getXattr(join(root, 'same.txt'), MARK)).toEqual(Buffer.from('1'));

    tamper();
    await run('always');
    expect(marked('same.txt')).toBe(false);
    expect(marked('mtime-only.txt')).toBe(false);
    expect(await compareTrees(src, root)).toEqual([]);
    await removeDir(target);
  });
});
