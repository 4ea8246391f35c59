/**
 * Damaged repositories (docs/FORMAT.md §10): "nothing decrypted is trusted until its tag verifies;
 * nothing restored is trusted until its blob id re-hashes", and bad input gets a clear error.
 *
 * One small repository (a handful of files, one of them several chunks long) is backed up once.
 * Each case damages its own copy of it (one byte flipped in a data blob, in a pack header, in an
 * index file, in a snapshot file, in a tree blob; a pack cut in half; a pack deleted; a garbage
 * config or key file; a wrong password) and checks that:
 *
 * - `bh check` (and `--read-data` where only reading the bytes can tell) exits non-zero and names
 *   the damaged file (pack id, index id or snapshot id);
 * - `bh restore` of a snapshot that needs damaged data exits non-zero, names the pack on stderr,
 *   and never leaves a file with wrong content behind: an affected file is absent, every other
 *   file is restored intact;
 * - unusable config or key files give a one-line error and exit 1, not a stack trace; a wrong
 *   password exits 12 and claims no success.
 *
 * The blob layout is discovered with `bh cat pack ID` (pack headers) and the repository folders.
 */
import { randomBytes } from 'node:crypto';
import { cp, mkdir, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bh, initRepo, makeTempDir, removeDir, type RunResult, type TestRepo, hashTree } from './helpers/cli.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const HEX64 = /^[0-9a-f]{64}$/;
const STACK_TRACE = /^\s+at .+[(:]\d+/m;

interface PackBlob {
  type: 'data' | 'tree';
  id: string;
  offset: number;
  length: number;
  raw_length: number;
}

/** The source tree: name → content. Small files are below the chunker minimum (one chunk each). */
const SMALL_FILES: Record<string, Buffer> = {
  'notes.txt': Buffer.from('bh corruption test: plain text, compressible.\n'.repeat(40)),
  'small.bin': randomBytes(200 * KiB + 17),
  'sub/other.bin': randomBytes(300 * KiB + 5),
  'sub/readme.md': Buffer.from('# readme\n\nnothing to see here\n'),
  'sub/deeper/tiny.bin': randomBytes(4099),
};
/** Several chunks (chunker min/avg/max 512 KiB / 1 MiB / 8 MiB). */
const BIG_FILE = 'big.bin';
const BIG_CONTENT = randomBytes(5 * MiB + 333);

let work: string;
let source: string;
let base: TestRepo;
let sourceHashes: Map<string, string>;
let snapshotId: string;
let indexId: string;
let keyId: string;
let dataPack: { id: string; size: number; blobs: PackBlob[] };
let treePack: { id: string; size: number; blobs: PackBlob[] };
/** big.bin's chunks, in file order (they are stored consecutively in the data pack). */
let bigChunks: PackBlob[];
/** small.bin's single chunk. */
let smallChunk: PackBlob;
let copies = 0;

// ---- helpers -------------------------------------------------------------------------------------



function output(r: RunResult): string {
  return `${r.stdout}\n${r.stderr}`;
}

function describeRun(what: string, r: RunResult): string {
  return `${what}: exit ${r.code} signal ${r.signal}\n--- stdout\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-3000)}`;
}

interface CaseRepo extends TestRepo {
  dir: string;
}

/** A private copy of the backed-up repository, to damage. */
async function copyRepo(): Promise<CaseRepo> {
  const dir = join(work, `case-${++copies}`);
  const path = join(dir, 'repo');
  await cp(base.path, path, { recursive: true });
  const env = { ...base.env, BH_REPO: path };
  return { dir, path, env, run: (args, options = {}) => bh(args, { ...options, env: { ...env, ...options.env } }) };
}

const packPath = (repoPath: string, id: string): string => join(repoPath, 'data', id.slice(0, 2), id);

/** Flips every bit of the byte at `position`. */
async function flipByte(path: string, position: number): Promise<void> {
  const bytes = await readFile(path);
  expect(position).toBeGreaterThanOrEqual(0);
  expect(position).toBeLessThan(bytes.length);
  bytes[position]! ^= 0xff;
  await writeFile(path, bytes);
}

/** The middle byte of a blob's stored envelope. */
const middleOf = (blob: PackBlob): number => blob.offset + Math.floor(blob.length / 2);

/** `bh check` (with extra args) must fail and name `subject` in its output. */
async function expectCheckFails(repo: CaseRepo, args: string[], subject: string): Promise<RunResult> {
  const r = await repo.run(['check', ...args]);
  expect(r.code, describeRun(`check ${args.join(' ')}`, r)).not.toBe(0);
  expect(r.code, describeRun(`check ${args.join(' ')}`, r)).not.toBeNull();
  expect(output(r), `check ${args.join(' ')} must name ${subject}`).toContain(subject);
  expect(r.stdout).not.toMatch(/no errors were found/);
  expect(output(r)).not.toMatch(STACK_TRACE);
  return r;
}

/**
 * Restores `snapshot` and checks that nothing wrong was written: files in `missing` are absent,
 * every other source file is present and intact. Returns the run.
 */
async function restoreAndCompare(repo: CaseRepo, snapshot: string, missing: string[], flags: string[] = [], workers?: string): Promise<{ run: RunResult; restored: Map<string, string> }> {
  const target = join(repo.dir, `restore${workers ?? ''}`);
  const run = await repo.run(['restore', snapshot, '--target', target, ...flags], workers === undefined ? undefined : { env: { BH_WORKERS: workers } });
  const root = join(target, source);
  const restored = await hashTree(root).catch(() => new Map<string, string>());
  for (const [path, hash] of restored) {
    expect(sourceHashes.get(path), `restored ${path} is not a source file`).toBeDefined();
    expect(hash, `restored ${path} has wrong content: damaged bytes were written as if good`).toBe(sourceHashes.get(path));
  }
  for (const path of sourceHashes.keys()) {
    if (missing.includes(path)) expect(restored.has(path), `${path} needs the damaged blob and must not be restored`).toBe(false);
    else expect(restored.get(path), `${path} does not need damaged data and must be restored intact\n${describeRun('restore', run)}`).toBe(sourceHashes.get(path));
  }
  return { run, restored };
}

async function catPack(id: string): Promise<{ id: string; size: number; blobs: PackBlob[] }> {
  const r = await base.run(['cat', 'pack', id]);
  if (r.code !== 0) throw new Error(describeRun(`cat pack ${id}`, r));
  return JSON.parse(r.stdout) as { id: string; size: number; blobs: PackBlob[] };
}

async function onlyFileIn(dir: string): Promise<string> {
  const names = (await readdir(dir)).filter((n) => HEX64.test(n));
  expect(names).toHaveLength(1);
  return names[0]!;
}

// ---- the repository --------------------------------------------------------------------------------

beforeAll(async () => {
  work = await makeTempDir('bh-corrupt-');
  source = join(work, 'src');
  for (const [name, content] of [...Object.entries(SMALL_FILES), [BIG_FILE, BIG_CONTENT] as const]) {
    await mkdir(join(source, name, '..'), { recursive: true });
    await writeFile(join(source, name), content);
  }
  sourceHashes = await hashTree(source);
  base = await initRepo(join(work, 'base'));
  const backup = await base.run(['backup', source]);
  if (backup.code !== 0) throw new Error(describeRun('backup', backup));

  snapshotId = await onlyFileIn(join(base.path, 'snapshots'));
  indexId = await onlyFileIn(join(base.path, 'index'));
  keyId = await onlyFileIn(join(base.path, 'keys'));

  // Trees and data are stored in separate packs: classify them by their headers.
  const packIds: string[] = [];
  for (const sub of await readdir(join(base.path, 'data'))) packIds.push(...(await readdir(join(base.path, 'data', sub))).filter((n) => HEX64.test(n)));
  const packs = await Promise.all(packIds.map(catPack));
  const dataPacks = packs.filter((p) => p.blobs.every((b) => b.type === 'data'));
  const treePacks = packs.filter((p) => p.blobs.every((b) => b.type === 'tree'));
  if (packs.length !== 2 || dataPacks.length !== 1 || treePacks.length !== 1) {
    throw new Error(`expected one data pack and one tree pack, got ${JSON.stringify(packs.map((p) => p.blobs.map((b) => b.type)))}`);
  }
  dataPack = dataPacks[0]!;
  treePack = treePacks[0]!;

  // Small files are one chunk each, of their own size; the remaining data blobs are big.bin's.
  const smallSizes = new Set(Object.values(SMALL_FILES).map((b) => b.length));
  smallChunk = dataPack.blobs.find((b) => b.raw_length === SMALL_FILES['small.bin']!.length)!;
  bigChunks = dataPack.blobs.filter((b) => !smallSizes.has(b.raw_length));
});

afterAll(async () => {
  if (work) await removeDir(work);
});

describe('the undamaged repository', () => {
  it('has the layout the cases rely on, and checks clean', async () => {
    expect(smallChunk).toBeDefined();
    expect(bigChunks.length).toBeGreaterThanOrEqual(2);
    expect(bigChunks.reduce((n, b) => n + b.raw_length, 0)).toBe(BIG_CONTENT.length);
    expect(dataPack.blobs).toHaveLength(Object.keys(SMALL_FILES).length + bigChunks.length);
    expect(treePack.blobs.length).toBeGreaterThanOrEqual(3);
    const check = await base.run(['check', '--read-data']);
    expect(check.code, describeRun('check', check)).toBe(0);
  });
});

describe('one byte flipped', () => {
  it('in a data blob (the last chunk of a multi-chunk file): check --read-data and restore name the pack; the file is not restored', async () => {
    const repo = await copyRepo();
    const victim = bigChunks[bigChunks.length - 1]!;
    await flipByte(packPath(repo.path, dataPack.id), middleOf(victim));

    const check = await expectCheckFails(repo, ['--read-data'], `data/${dataPack.id}`);
    expect(check.stdout).toMatch(new RegExp(`^error: data/${dataPack.id}: `, 'm'));
    // The JSON form names it too, as a structured finding.
    const json = await repo.run(['check', '--read-data', '--json']);
    expect(json.code).not.toBe(0);
    const findings = json.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { message_type: string; level?: string; subject?: string });
    expect(findings).toContainEqual(expect.objectContaining({ message_type: 'finding', level: 'error', subject: `data/${dataPack.id}` }));

    // Restore: big.bin needs the damaged blob; its earlier chunks were fine, but the partial
    // file must be removed, never left looking complete. Everything else restores intact. A
    // restore this small runs inline; BH_WORKERS=1 checks the same on a worker thread.
    for (const workers of [undefined, '1']) {
      const { run } = await restoreAndCompare(repo, snapshotId, [BIG_FILE], [], workers);
      expect(run.code, describeRun('restore', run)).not.toBe(0);
      expect(run.stderr).toContain(dataPack.id);
      expect(run.stderr).toContain(BIG_FILE);
    }
  });

  it('in a single-chunk file’s blob: restore fails for that file only', async () => {
    const repo = await copyRepo();
    await flipByte(packPath(repo.path, dataPack.id), middleOf(smallChunk));
    await expectCheckFails(repo, ['--read-data'], `data/${dataPack.id}`);
    const { run } = await restoreAndCompare(repo, snapshotId, ['small.bin']);
    expect(run.code, describeRun('restore', run)).not.toBe(0);
    expect(run.stderr).toContain(dataPack.id);
  });

  it('in the pack header region near the end of a pack: check --read-data names the pack', async () => {
    const repo = await copyRepo();
    const path = packPath(repo.path, dataPack.id);
    const bytes = await readFile(path);
    const headerLength = bytes.readUInt32LE(bytes.length - 4);
    expect(headerLength).toBeGreaterThan(32);
    // Inside the sealed header (between the last blob and the 4-byte length trailer).
    await flipByte(path, bytes.length - 4 - Math.floor(headerLength / 2));
    await expectCheckFails(repo, ['--read-data'], `data/${dataPack.id}`);
  });

  it('in an index file: plain check names the index file; restore refuses', async () => {
    const repo = await copyRepo();
    const path = join(repo.path, 'index', indexId);
    await flipByte(path, Math.floor((await stat(path)).size / 2));
    await expectCheckFails(repo, [], `index/${indexId}`);
    await expectCheckFails(repo, ['--read-data'], `index/${indexId}`);
    // Without the local cache: it may hold a good copy of this file (the copies share the
    // repository id), and would rightly restore from that.
    const { run } = await restoreAndCompare(repo, snapshotId, [...sourceHashes.keys()], ['--no-cache']);
    expect(run.code, describeRun('restore', run)).not.toBe(0);
    expect(run.stderr).toContain(indexId);
    expect(run.stderr).not.toMatch(STACK_TRACE);
  });

  it('in a snapshot file: plain check names the snapshot; restoring it fails', async () => {
    const repo = await copyRepo();
    const path = join(repo.path, 'snapshots', snapshotId);
    await flipByte(path, Math.floor((await stat(path)).size / 2));
    await expectCheckFails(repo, [], snapshotId);
    // Without the local cache, which may hold a good copy (see above).
    const { run } = await restoreAndCompare(repo, snapshotId, [...sourceHashes.keys()], ['--no-cache']);
    expect(run.code, describeRun('restore', run)).not.toBe(0);
    expect(run.stderr).toContain(snapshotId);
    expect(run.stderr).not.toMatch(STACK_TRACE);
  });

  it('in one of two snapshot files: the other snapshot still restores, and new backups still work', async () => {
    // Bad input "loses nothing". One damaged snapshot record must cost that
    // snapshot only; check reports it (above), but every other snapshot must stay usable.
    const repo = await copyRepo();
    const second = await repo.run(['backup', '--json', join(source, 'sub')]);
    expect(second.code, describeRun('second backup', second)).toBe(0);
    const secondId = (JSON.parse(second.stdout.trim().split('\n').pop()!) as { snapshot_id: string }).snapshot_id;
    expect(secondId).toMatch(HEX64);
    const damaged = join(repo.path, 'snapshots', snapshotId);
    await flipByte(damaged, Math.floor((await stat(damaged)).size / 2));

    const target = join(repo.dir, 'restore-second');
    const restore = await repo.run(['restore', secondId, '--target', target]);
    expect(
      restore.code,
      `BUG: one damaged snapshot file (${snapshotId}) makes restoring a different, intact snapshot fail ` +
        `(src/snapshot/snapshot.ts loadSnapshots throws on the first unreadable record)\n${describeRun('restore', restore)}`,
    ).toBe(0);
    const restored = await hashTree(join(target, source, 'sub'));
    for (const [path, hash] of restored) expect(hash).toBe(sourceHashes.get(join('sub', path)));
    expect(restored.size).toBe([...sourceHashes.keys()].filter((p) => p.startsWith('sub/')).length);

    const backup = await repo.run(['backup', source]);
    expect(backup.code, `BUG: one damaged snapshot file blocks every new backup\n${describeRun('backup', backup)}`).not.toBe(1);
    expect([0, 3]).toContain(backup.code);
  });

  it('in a tree blob (tree pack): check and check --read-data name the tree pack; restore skips that directory only', async () => {
    // The victim: the tree of sub/deeper (found with `bh cat tree`), so the rest must restore.
    let victim: PackBlob | undefined;
    for (const blob of treePack.blobs) {
      const tree = await base.run(['cat', 'tree', blob.id]);
      expect(tree.code, describeRun('cat tree', tree)).toBe(0);
      const names = (JSON.parse(tree.stdout) as { nodes: { name: string }[] }).nodes.map((n) => n.name);
      if (names.length === 1 && names[0] === 'tiny.bin') victim = blob;
      if (victim) break;
    }
    expect(victim, 'the tree of sub/deeper').toBeDefined();
    const repo = await copyRepo();
    await flipByte(packPath(repo.path, treePack.id), middleOf(victim!));
    // Plain check walks every tree, so it finds this without --read-data.
    await expectCheckFails(repo, [], treePack.id);
    await expectCheckFails(repo, ['--read-data'], `data/${treePack.id}`);
    const { run } = await restoreAndCompare(repo, snapshotId, ['sub/deeper/tiny.bin']);
    expect(run.code, describeRun('restore', run)).not.toBe(0);
    expect(run.stderr).toContain(treePack.id);
  });
});

describe('a damaged or missing pack', () => {
  it('cut in half: plain check names the pack; restore writes nothing wrong', async () => {
    const repo = await copyRepo();
    const path = packPath(repo.path, dataPack.id);
    await truncate(path, Math.floor(dataPack.size / 2));
    await expectCheckFails(repo, [], `data/${dataPack.id}`);
    await expectCheckFails(repo, ['--read-data'], `data/${dataPack.id}`);
    const target = join(repo.dir, 'restore');
    const run = await repo.run(['restore', snapshotId, '--target', target]);
    expect(run.code, describeRun('restore', run)).not.toBe(0);
    expect(run.stderr).toContain(dataPack.id);
    const restored = await hashTree(join(target, source)).catch(() => new Map<string, string>());
    for (const [file, hash] of restored) expect(hash, `restored ${file} has wrong content`).toBe(sourceHashes.get(file));
    // Whatever lay in the lost second half cannot have been restored.
    const half = Math.floor(dataPack.size / 2);
    if (bigChunks.some((b) => b.offset + b.length > half)) expect(restored.has(BIG_FILE)).toBe(false);
  });

  it('deleted: plain check names the pack; restore of its files fails', async () => {
    const repo = await copyRepo();
    await rm(packPath(repo.path, dataPack.id));
    const check = await expectCheckFails(repo, [], `data/${dataPack.id}`);
    expect(check.stdout).toMatch(/missing/);
    const dataFiles = [...sourceHashes.keys()];
    const { run } = await restoreAndCompare(repo, snapshotId, dataFiles);
    expect(run.code, describeRun('restore', run)).not.toBe(0);
    expect(run.stderr).toContain(dataPack.id);
  });
});

describe('unusable repository metadata and secrets', () => {
  it('a garbage config: every command exits 1 with a clear message, no stack trace', async () => {
    const repo = await copyRepo();
    await writeFile(join(repo.path, 'config'), '{not json');
    const target = join(repo.dir, 'restore');
    const commands: string[][] = [
      ['init'],
      ['backup', source],
      ['snapshots'],
      ['restore', 'latest', '--target', target],
      ['check'],
      ['check', '--read-data'],
      ['ls', 'latest'],
      ['diff', snapshotId, snapshotId],
      ['find', 'small.bin'],
      ['stats'],
      ['cat', 'config'],
      ['cat', 'snapshot', 'latest'],
      ['key', 'list'],
      ['unlock'],
    ];
    const results = await Promise.all(commands.map((args) => repo.run(args).then((r) => ({ args, r }))));
    for (const { args, r } of results) {
      const what = describeRun(`bh ${args.join(' ')}`, r);
      expect(r.code, what).toBe(1);
      expect(r.stderr, what).toMatch(/^bh: error: .*config/m);
      expect(r.stderr, what).not.toMatch(STACK_TRACE);
      expect(r.stderr.trim().split('\n').length, what).toBeLessThanOrEqual(2);
    }
    // Nothing was created by the failed commands.
    expect(await readdir(join(repo.path, 'snapshots'))).toEqual([snapshotId]);
  });

  it('a garbage key file: a clear error naming the key file, exit 1, no stack trace', async () => {
    const repo = await copyRepo();
    await writeFile(join(repo.path, 'keys', keyId), 'garbage, not a key file\n');
    const target = join(repo.dir, 'restore');
    const commands = [['snapshots'], ['check'], ['backup', source], ['restore', 'latest', '--target', target]];
    for (const { args, r } of await Promise.all(commands.map((args) => repo.run(args).then((r) => ({ args, r }))))) {
      const what = describeRun(`bh ${args.join(' ')}`, r);
      expect(r.code, what).toBe(1);
      expect(r.stderr, what).toMatch(/^bh: error: .*key/m);
      expect(r.stderr, what).toContain(keyId);
      expect(r.stderr, what).not.toMatch(STACK_TRACE);
    }
  });

  it('a wrong password: exit 12, and nothing claims success', async () => {
    const target = join(work, 'wrong-password-restore');
    const commands = [['snapshots'], ['check'], ['check', '--read-data'], ['backup', source], ['restore', 'latest', '--target', target], ['cat', 'snapshot', 'latest']];
    const runs = await Promise.all(commands.map((args) => base.run(args, { env: { BH_PASSWORD: 'not the password' } }).then((r) => ({ args, r }))));
    for (const { args, r } of runs) {
      const what = describeRun(`bh ${args.join(' ')}`, r);
      expect(r.code, what).toBe(12);
      expect(r.stderr, what).toMatch(/password/i);
      expect(output(r), what).not.toMatch(/no errors were found|snapshot [0-9a-f]+ saved|restored \d+ files/i);
      expect(r.stderr, what).not.toMatch(STACK_TRACE);
    }
    // Still exactly the one snapshot: the backup did not write one.
    expect(await readdir(join(base.path, 'snapshots'))).toEqual([snapshotId]);
  });
});
