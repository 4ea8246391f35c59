/**
 * The inspection commands through the real CLI: ls, diff, find, stats and cat, against a
 * repository holding two snapshots of a directory we build (and change) here. Expected numbers
 * come from the file system, not from bh.
 */
import { chmod, link, lstat, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestRepo, initRepo, makeTempDir, removeDir } from './helpers/cli.js';

let dir: string;
let src: string;
let repo: TestRepo;
let snap1: string;
let snap2: string;
/** Restore-size truth for each snapshot, measured on disk right after its backup. */
let disk1: DiskTotals;
let disk2: DiskTotals;

const BAD_NAME = Buffer.concat([Buffer.from('bad'), Buffer.from([0xff]), Buffer.from('.txt')]);
const A_CONTENT = 'hello world\n';

interface DiskTotals {
  /** Bytes of regular files, a hardlinked inode once. */
  size: number;
  files: number;
  dirs: number;
  others: number;
  /** Distinct non-empty file contents (each file here is below the chunker's minimum: one chunk). */
  contents: Set<string>;
}

async function measure(root: string): Promise<DiskTotals> {
  const totals: DiskTotals = { size: 0, files: 0, dirs: 0, others: 0, contents: new Set() };
  const inodes = new Set<string>();
  const { readFile } = await import('node:fs/promises');
  const visit = async (path: Buffer): Promise<void> => {
    const st = await lstat(path);
    if (st.isDirectory()) {
      totals.dirs++;
      for (const name of await readdir(path, { encoding: 'buffer' })) await visit(Buffer.concat([path, Buffer.from('/'), name]));
    } else if (st.isFile()) {
      totals.files++;
      const key = `${st.dev}:${st.ino}`;
      if (!inodes.has(key)) totals.size += st.size;
      inodes.add(key);
      const content = await readFile(path);
      if (content.length > 0) totals.contents.add(content.toString('hex'));
    } else totals.others++;
  };
  await visit(Buffer.from(root));
  // The snapshot's virtual root mirrors the absolute path: one directory node per component above src.
  totals.dirs += root.split('/').filter((p) => p !== '').length - 1;
  return totals;
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function ok(args: string[]): Promise<string> {
  const r = await repo.run(args);
  if (r.code !== 0) throw new Error(`bh ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  dir = await makeTempDir('bh-inspect-');
  repo = await initRepo(dir);
  src = join(dir, 'src');
  await mkdir(join(src, 'sub', 'deep'), { recursive: true });
  await writeFile(join(src, 'a.txt'), A_CONTENT);
  await link(join(src, 'a.txt'), join(src, 'hl'));
  await writeFile(join(src, 'big.txt'), 'a'.repeat(200_000));
  await writeFile(join(src, 'empty.txt'), '');
  await writeFile(join(src, 'sub', 'b.bin'), randomBytes(100_000));
  await writeFile(join(src, 'sub', 'deep', 'c.txt'), 'deep\n');
  await writeFile(Buffer.concat([Buffer.from(src + '/'), BAD_NAME]), 'bad\n');
  await symlink('a.txt', join(src, 'sym'));
  await ok(['backup', src]);
  disk1 = await measure(src);

  // Second snapshot: one file changed, one added, one removed, one chmod only, a symlink turned into a directory.
  await writeFile(join(src, 'big.txt'), 'b'.repeat(200_000));
  await writeFile(join(src, 'new.txt'), 'new file\n');
  await rm(join(src, 'sub', 'deep', 'c.txt'));
  await chmod(join(src, 'sub', 'b.bin'), 0o600);
  await rm(join(src, 'sym'));
  await mkdir(join(src, 'sym'));
  await writeFile(join(src, 'sym', 'x.txt'), 'x\n');
  await ok(['backup', src]);
  disk2 = await measure(src);

  const snapshots = JSON.parse(await ok(['snapshots', '--json'])) as { id: string }[];
  expect(snapshots).toHaveLength(2);
  [snap1, snap2] = [snapshots[0]!.id, snapshots[1]!.id];
});

afterAll(async () => {
  await removeDir(dir);
});

describe('bh ls', () => {
  it('lists every entry recursively, a directory before its contents', async () => {
    const lines = (await ok(['ls', snap1])).split('\n').filter((l) => l !== '');
    for (const p of ['/a.txt', '/hl', '/big.txt', '/empty.txt', '/sub', '/sub/b.bin', '/sub/deep', '/sub/deep/c.txt', '/sym', '/bad\ufffd.txt']) {
      expect(lines).toContain(src + p);
    }
    expect(lines).toContain(src);
    expect(lines[0]).toBe('/' + src.split('/')[1]);
    expect(lines.indexOf(src + '/sub')).toBeLessThan(lines.indexOf(src + '/sub/deep/c.txt'));
    expect(lines).toHaveLength(disk1.files + disk1.dirs + disk1.others);
  });

  it('prints one JSON object per entry, with exact bytes for names that are not UTF-8', async () => {
    const entries = jsonLines(await ok(['ls', snap1, '--json']));
    const a = entries.find((e) => e['path'] === `${src}/a.txt`)!;
    const st = await lstat(join(src, 'a.txt'), { bigint: true });
    expect(a).toMatchObject({ name: 'a.txt', type: 'file', size: A_CONTENT.length, uid: Number(st.uid), gid: Number(st.gid), links: 2, mode: Number(st.mode) & 0o7777 });
    expect(a['mtime']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    const ns = st.mtimeNs % 1_000_000_000n;
    expect((a['mtime'] as string).slice(20, 29)).toBe(ns.toString().padStart(9, '0'));
    const sym = entries.find((e) => e['path'] === `${src}/sym`)!;
    expect(sym).toMatchObject({ type: 'symlink', linktarget: 'a.txt' });
    const bad = entries.find((e) => e['name_bytes'] !== undefined)!;
    expect(Buffer.from(bad['name_bytes'] as string, 'base64')).toEqual(BAD_NAME);
    expect(Buffer.from(bad['path_bytes'] as string, 'base64')).toEqual(Buffer.concat([Buffer.from(src + '/'), BAD_NAME]));
    expect(bad['name']).toBe('bad\ufffd.txt');
    expect(a['path_bytes']).toBeUndefined();
  });

  it('with a path lists it and its direct entries, everything below with --recursive', async () => {
    const lines = (await ok(['ls', snap1, `${src}/sub`])).split('\n').filter((l) => l !== '');
    expect(lines).toEqual([`${src}/sub`, `${src}/sub/b.bin`, `${src}/sub/deep`]);
    const all = (await ok(['ls', snap1, `${src}/sub/`, '--recursive'])).split('\n').filter((l) => l !== '');
    expect(all).toEqual([`${src}/sub`, `${src}/sub/b.bin`, `${src}/sub/deep`, `${src}/sub/deep/c.txt`]);
    const long = (await ok(['ls', 'latest', `${src}/sub/b.bin`, '-l'])).trim();
    expect(long).toMatch(new RegExp(`^-rw------- +\\d+ +\\d+ +100000 \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d ${src}/sub/b\\.bin$`));
  });

  it('fails with exit 1 for an unknown snapshot or a path not in the snapshot', async () => {
    const [unknown, missing] = await Promise.all([repo.run(['ls', 'deadbeef']), repo.run(['ls', snap1, `${src}/nope`])]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("no snapshot matches 'deadbeef'");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('does not exist in this snapshot');
  });
});

describe('bh diff', () => {
  it('shows added, removed, modified and metadata-only changes with a summary (JSON)', async () => {
    const lines = jsonLines(await ok(['diff', snap1, snap2, '--json']));
    const changes = new Map(lines.filter((l) => l['message_type'] === 'change').map((l) => [l['path'] as string, l]));
    expect(changes.get(`${src}/new.txt`)).toMatchObject({ modifier: '+', type: 'file' });
    expect(changes.get(`${src}/sub/deep/c.txt`)).toMatchObject({ modifier: '-', type: 'file' });
    expect(changes.get(`${src}/big.txt`)).toMatchObject({ modifier: 'M', type: 'file' });
    expect(changes.get(`${src}/sub/b.bin`)).toMatchObject({ modifier: 'U', type: 'file' });
    expect(changes.get(`${src}/sym`)).toMatchObject({ modifier: 'M', type: 'dir', previous_type: 'symlink' });
    expect(changes.get(`${src}/sym/x.txt`)).toMatchObject({ modifier: '+', type: 'file' });
    for (const same of ['/a.txt', '/hl', '/empty.txt', '/sub']) expect(changes.has(src + same)).toBe(false);
    // c.txt left sub/deep: the directory's mtime changed, nothing else about it.
    expect(changes.get(`${src}/sub/deep`)).toMatchObject({ modifier: 'U', type: 'dir' });
    const stats = lines.at(-1)!;
    expect(stats).toMatchObject({
      message_type: 'statistics',
      source_snapshot: snap1,
      target_snapshot: snap2,
      files: { added: 2, removed: 1, modified: 1, metadata: 1 },
      dirs: { added: 0, removed: 0, modified: 1 },
      others: { added: 0, removed: 0, modified: 0, metadata: 0 },
    });
    const added = stats['added'] as { data_blobs: number; bytes: number };
    const removed = stats['removed'] as { data_blobs: number; bytes: number };
    // New content: big.txt's b's, new.txt, sym/x.txt. Gone: big.txt's a's, c.txt.
    expect(added.data_blobs).toBe(3);
    expect(removed.data_blobs).toBe(2);
    expect(added.bytes).toBeGreaterThanOrEqual(200_000 + 'new file\n'.length + 'x\n'.length);
    expect(removed.bytes).toBeGreaterThanOrEqual(200_000 + 'deep\n'.length);
  });

  it('prints restic-style lines', async () => {
    const out = await ok(['diff', snap1.slice(0, 8), 'latest']);
    expect(out).toContain(`comparing snapshot ${snap1.slice(0, 8)} to ${snap2.slice(0, 8)}:`);
    const lines = out.split('\n');
    for (const line of [`+    ${src}/new.txt`, `-    ${src}/sub/deep/c.txt`, `M    ${src}/big.txt`, `U    ${src}/sub/b.bin`, `M    ${src}/sym/`, `+    ${src}/sym/x.txt`]) {
      expect(lines).toContain(line);
    }
    expect(out).toMatch(/Files: +2 new, 1 removed, 1 changed, 1 metadata only/);
  });

  it('finds nothing between a snapshot and itself', async () => {
    const lines = jsonLines(await ok(['diff', snap2, snap2, '--json']));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ files: { added: 0, removed: 0, modified: 0, metadata: 0 }, added: { data_blobs: 0, tree_blobs: 0, bytes: 0 } });
  });
});

describe('bh find', () => {
  it('matches names across all snapshots, grouped by snapshot', async () => {
    const groups = JSON.parse(await ok(['find', '*.txt', '--json'])) as { snapshot: string; time: string; hits: number; matches: { path: string; size: number; mtime: string }[] }[];
    expect(groups.map((g) => g.snapshot)).toEqual([snap1, snap2]);
    const paths1 = groups[0]!.matches.map((m) => m.path);
    const paths2 = groups[1]!.matches.map((m) => m.path);
    expect(paths1).toEqual(expect.arrayContaining([`${src}/a.txt`, `${src}/big.txt`, `${src}/empty.txt`, `${src}/sub/deep/c.txt`, `${src}/bad\ufffd.txt`]));
    expect(paths1).not.toContain(`${src}/new.txt`);
    expect(paths2).toEqual(expect.arrayContaining([`${src}/new.txt`, `${src}/sym/x.txt`]));
    expect(paths2).not.toContain(`${src}/sub/deep/c.txt`);
    expect(groups[0]!.hits).toBe(paths1.length);
    expect(groups[0]!.matches.find((m) => m.path === `${src}/a.txt`)!.size).toBe(A_CONTENT.length);
  });

  it('matches whole paths when the pattern has a slash, and honours --snapshot', async () => {
    const byPath = JSON.parse(await ok(['find', 'deep/*.txt', '--json'])) as { snapshot: string; matches: { path: string }[] }[];
    expect(byPath).toHaveLength(1);
    expect(byPath[0]!.snapshot).toBe(snap1);
    expect(byPath[0]!.matches.map((m) => m.path)).toEqual([`${src}/sub/deep/c.txt`]);
    const one = JSON.parse(await ok(['find', `${src}/sub/*.bin`, '--snapshot', 'latest', '--json'])) as { snapshot: string; matches: { path: string }[] }[];
    expect(one.map((g) => g.snapshot)).toEqual([snap2]);
    expect(one[0]!.matches.map((m) => m.path)).toEqual([`${src}/sub/b.bin`]);
    const human = await ok(['find', 'b.bin']);
    expect(human).toContain(`Found matching entries in snapshot ${snap1.slice(0, 8)} from `);
    expect(human).toMatch(new RegExp(`-rw------- +\\d+ +\\d+ +100000 .* ${src}/sub/b\\.bin`));
    expect((await ok(['find', 'no-such-file-*'])).trim()).toBe('');
  });
});

describe('bh stats', () => {
  it('restore-size counts what a restore writes, a hardlinked inode once', async () => {
    const s1 = JSON.parse(await ok(['stats', snap1, '--json'])) as Record<string, number>;
    expect(s1).toMatchObject({ snapshots_count: 1, total_size: disk1.size, files: disk1.files, dirs: disk1.dirs, others: disk1.others, total_file_count: disk1.files + disk1.dirs + disk1.others });
    const both = JSON.parse(await ok(['stats', '--json'])) as Record<string, number>;
    expect(both).toMatchObject({ snapshots_count: 2, total_size: disk1.size + disk2.size, files: disk1.files + disk2.files });
    const human = await ok(['stats', 'latest']);
    expect(human).toContain('Stats in restore-size mode:');
    expect(human).toMatch(new RegExp(`Total File Count: +${disk2.files + disk2.dirs + disk2.others} `));
  });

  it('raw-data counts each distinct blob once, with raw and stored sizes', async () => {
    const s1 = JSON.parse(await ok(['stats', snap1, '--mode', 'raw-data', '--json'])) as Record<string, number>;
    const rawData = [...disk1.contents].reduce((n, hex) => n + hex.length / 2, 0);
    expect(s1['data_blobs']).toBe(disk1.contents.size);
    expect(s1['data_uncompressed_size']).toBe(rawData);
    // One tree per directory, plus the virtual root; all different here.
    expect(s1['tree_blobs']).toBe(disk1.dirs + 1);
    expect(s1['total_blob_count']).toBe(s1['data_blobs']! + s1['tree_blobs']!);
    // 200 000 'a's compress to almost nothing.
    expect(s1['data_size']).toBeLessThan(rawData - 150_000);
    expect(s1['compression_ratio']).toBeCloseTo(s1['total_uncompressed_size']! / s1['total_size']!, 6);
    expect(s1['compression_ratio']).toBeGreaterThan(1);
    const all = JSON.parse(await ok(['stats', '--mode', 'raw-data', '--json'])) as Record<string, number>;
    const union = new Set([...disk1.contents, ...disk2.contents]);
    expect(all['data_blobs']).toBe(union.size);
    expect(all['data_uncompressed_size']).toBe([...union].reduce((n, hex) => n + hex.length / 2, 0));
    expect(await ok(['stats', '--mode', 'raw-data'])).toMatch(/Compression Ratio: +\d+\.\d\dx/);
  });
});

describe('bh cat', () => {
  it('prints config, key, index, snapshot, tree, blob and pack', async () => {
    const keyId = (await readdir(join(repo.path, 'keys')))[0]!;
    const [configText, keyText, latestText, firstText] = await Promise.all([ok(['cat', 'config']), ok(['cat', 'key', keyId.slice(0, 8)]), ok(['cat', 'snapshot', 'latest']), ok(['cat', 'snapshot', snap1.slice(0, 6)])]);
    const config = JSON.parse(configText) as { version: number; id: string };
    expect(config.version).toBe(1);
    expect(config.id).toMatch(/^[0-9a-f]{64}$/);
    const key = JSON.parse(keyText) as { kdf: string; data: string };
    expect(key.kdf).toBe('scrypt');
    const snapshot = JSON.parse(latestText) as { tree: string; paths: string[] };
    expect(snapshot.paths).toEqual([src]);
    const first = JSON.parse(firstText) as { tree: string };

    // Walk the first snapshot's trees down to a.txt.
    let tree = first.tree;
    let aNode: { content: string[] } | undefined;
    const components = [...src.split('/').filter((p) => p !== ''), 'a.txt'];
    for (const [i, name] of components.entries()) {
      const text = await ok(['cat', 'tree', i === 0 ? tree.slice(0, 10) : tree]);
      const nodes = (JSON.parse(text) as { nodes: { name: string; subtree?: string; content?: string[] }[] }).nodes;
      const node = nodes.find((n) => n.name === name)!;
      expect(node).toBeDefined();
      if (i === components.length - 1) aNode = node as { content: string[] };
      else tree = node.subtree!;
    }
    const blobId = aNode!.content[0]!;
    const blob = await ok(['cat', 'blob', blobId]);
    expect(blob).toBe(A_CONTENT);
    expect(await ok(['cat', 'blob', blobId.slice(0, 12)])).toBe(A_CONTENT);

    const indexNames = await readdir(join(repo.path, 'index'));
    const packs: { id: string; blobs: { type: string; id: string; offset: number; length: number; raw_length: number }[] }[] = [];
    for (const name of indexNames) {
      const index = JSON.parse(await ok(['cat', 'index', name.slice(0, 8)])) as { supersedes: string[]; packs: typeof packs };
      expect(index.supersedes).toEqual([]);
      packs.push(...index.packs);
    }
    const pack = packs.find((p) => p.blobs.some((b) => b.id === blobId))!;
    const entry = pack.blobs.find((b) => b.id === blobId)!;
    expect(entry).toMatchObject({ type: 'data', raw_length: A_CONTENT.length });
    const header = JSON.parse(await ok(['cat', 'pack', pack.id])) as { id: string; blobs: typeof entry[] };
    expect(header.id).toBe(pack.id);
    expect(header.blobs).toEqual(pack.blobs);
  });

  it('refuses unknown kinds and missing or unknown ids with exit 1', async () => {
    const cases = [['cat', 'bogus'], ['cat', 'tree'], ['cat', 'snapshot', 'ffffffff'], ['cat', 'blob', '0'.repeat(64)], ['cat', 'index', 'xyz']];
    const results = await Promise.all(cases.map((args) => repo.run(args)));
    for (const [i, r] of results.entries()) {
      expect(r.code, cases[i]!.join(' ')).toBe(1);
      expect(r.stderr).toMatch(/^bh: error: /);
    }
  });
});
