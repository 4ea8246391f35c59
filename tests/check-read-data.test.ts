/**
 * `bh check --read-data` verifies packs on worker threads (src/repo/pack-verifier.ts) while the
 * main thread reads the next ones; with BH_WORKERS=0 the same verification runs inline.
 *
 * One repository of several data packs (three backups, one pack each) is backed up once; a copy
 * has one byte flipped inside one data blob of the middle pack. Checked:
 * - with workers, check --read-data exits 1 and its findings name that pack and that blob, and
 *   nothing else;
 * - with BH_WORKERS=0 the findings are the same, in the same order; also with two packs damaged
 *   (findings are reported pack by pack in index order, whichever worker finishes first);
 * - --read-data-subset N/3 for N = 1..3 reads every pack once: exactly the slice holding the
 *   damaged pack fails.
 */
import { randomBytes } from 'node:crypto';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun, initRepo, makeTempDir, removeDir, type RunResult, type TestRepo } from './helpers/cli.js';

const KiB = 1024;
const HEX64 = /^[0-9a-f]{64}$/;

interface PackBlob {
  type: 'data' | 'tree';
  id: string;
  offset: number;
  length: number;
}

interface Finding {
  level: string;
  subject: string;
  message: string;
}

let work: string;
let clean: TestRepo;
let damaged: TestRepo;
let victimPack: string;
let victimBlob: PackBlob;
let dataPacks: string[];
/** The first blob of each data pack, by pack id. */
const firstBlobs = new Map<string, PackBlob>();

function findingsOf(r: RunResult): Finding[] {
  return r.stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Finding & { message_type: string })
    .filter((m) => m.message_type === 'finding')
    .map(({ level, subject, message }) => ({ level, subject, message }));
}

/** Flips the middle byte of `blob` in `pack` of the repository at `repoPath`. */
async function damageBlob(repoPath: string, pack: string, blob: PackBlob): Promise<void> {
  const file = join(repoPath, 'data', pack.slice(0, 2), pack);
  const bytes = await readFile(file);
  bytes[blob.offset + Math.floor(blob.length / 2)]! ^= 0xff;
  await writeFile(file, bytes);
}

function copyOf(source: TestRepo, path: string): TestRepo {
  return { path, env: { ...source.env, BH_REPO: path }, run: (args, options = {}) => source.run(args, { ...options, env: { BH_REPO: path, ...options.env } }) };
}

async function packIds(repoPath: string): Promise<string[]> {
  const ids: string[] = [];
  for (const sub of await readdir(join(repoPath, 'data'))) ids.push(...(await readdir(join(repoPath, 'data', sub))).filter((n) => HEX64.test(n)));
  return ids.sort();
}

beforeAll(async () => {
  work = await makeTempDir('bh-check-data-');
  clean = await initRepo(join(work, 'clean'));
  // Three backups of different files: each writes its own data pack. Random bytes are stored
  // raw, text is compressed: both payload kinds are verified.
  for (const name of ['one', 'two', 'three']) {
    const source = join(work, 'src', name);
    await mkdir(source, { recursive: true });
    await writeFile(join(source, 'random.bin'), randomBytes(150 * KiB + name.length));
    await writeFile(join(source, 'text.txt'), `${name}: compressible text, line after line\n`.repeat(3000));
    await writeFile(join(source, 'small.bin'), randomBytes(3 * KiB));
    const backup = await clean.run(['backup', source]);
    if (backup.code !== 0) throw new Error(describeRun('backup', backup));
  }
  dataPacks = [];
  for (const id of await packIds(clean.path)) {
    const cat = await clean.run(['cat', 'pack', id]);
    if (cat.code !== 0) throw new Error(describeRun(`cat pack ${id}`, cat));
    const { blobs } = JSON.parse(cat.stdout) as { blobs: PackBlob[] };
    if (blobs.every((b) => b.type === 'data')) {
      dataPacks.push(id);
      firstBlobs.set(id, blobs[0]!);
    }
    if (dataPacks.length === 2 && victimPack === undefined) {
      victimPack = id;
      victimBlob = blobs.reduce((big, b) => (b.length > big.length ? b : big));
    }
  }
  if (dataPacks.length < 3) throw new Error(`expected three data packs, got ${dataPacks.length}`);

  damaged = copyOf(clean, join(work, 'damaged', 'repo'));
  await cp(clean.path, damaged.path, { recursive: true });
  await damageBlob(damaged.path, victimPack, victimBlob);
});

afterAll(async () => {
  if (work) await removeDir(work);
});

describe('check --read-data on several packs', () => {
  it('passes on the undamaged repository, reading every pack', async () => {
    const all = await packIds(clean.path);
    const r = await clean.run(['check', '--read-data'], { env: { BH_WORKERS: '2' } });
    expect(r.code, describeRun('check', r)).toBe(0);
    expect(r.stdout).toContain(`${all.length} packs read`);
    expect(r.stdout).toContain('no errors were found');
  });

  it('with workers: names exactly the damaged pack and blob, and exits 1', async () => {
    const r = await damaged.run(['check', '--read-data', '--json'], { env: { BH_WORKERS: '2' } });
    expect(r.code, describeRun('check', r)).toBe(1);
    const findings = findingsOf(r);
    const subject = `data/${victimPack}`;
    expect(findings).toEqual([
      { level: 'error', subject, message: 'pack content does not match its name (SHA-256): the file is damaged' },
      { level: 'error', subject, message: `data blob ${victimBlob.id} in ${subject}: authentication failed (the data is damaged, or was written with another key)` },
    ]);
    const human = await damaged.run(['check', '--read-data'], { env: { BH_WORKERS: '2' } });
    expect(human.code).toBe(1);
    expect(human.stdout).toContain(`error: ${subject}: data blob ${victimBlob.id} in ${subject}: authentication failed`);
    expect(human.stdout).toContain('2 errors found');
  });

  it('with BH_WORKERS=0 (inline): the same findings in the same order', async () => {
    const withWorkers = await damaged.run(['check', '--read-data', '--json'], { env: { BH_WORKERS: '2' } });
    const inline = await damaged.run(['check', '--read-data', '--json'], { env: { BH_WORKERS: '0' } });
    expect(inline.code, describeRun('check inline', inline)).toBe(1);
    expect(findingsOf(inline)).toEqual(findingsOf(withWorkers));
    expect(findingsOf(inline).length).toBe(2);
  });

  it('with two packs damaged: workers and inline report the same findings, pack by pack, in the same order', async () => {
    const twice = copyOf(clean, join(work, 'twice', 'repo'));
    await cp(damaged.path, twice.path, { recursive: true });
    const other = dataPacks.find((id) => id !== victimPack)!;
    await damageBlob(twice.path, other, firstBlobs.get(other)!);
    const withWorkers = await twice.run(['check', '--read-data', '--json'], { env: { BH_WORKERS: '2' } });
    const inline = await twice.run(['check', '--read-data', '--json'], { env: { BH_WORKERS: '0' } });
    expect(withWorkers.code, describeRun('check', withWorkers)).toBe(1);
    expect(inline.code, describeRun('check inline', inline)).toBe(1);
    const findings = findingsOf(withWorkers);
    expect(findings).toEqual(findingsOf(inline));
    expect(findings.map((f) => f.subject).sort()).toEqual([`data/${victimPack}`, `data/${victimPack}`, `data/${other}`, `data/${other}`].sort());
    // Pack by pack: the two findings about one pack are never split by the other's.
    expect(findings[0]!.subject).toBe(findings[1]!.subject);
    expect(findings.map((f) => f.message).join('\n')).toContain(`data blob ${firstBlobs.get(other)!.id} in data/${other}: authentication failed`);
  });

  it('--read-data-subset N/3 over N = 1..3 finds the damage in exactly one slice', async () => {
    const failing: number[] = [];
    let read = 0;
    for (const n of [1, 2, 3]) {
      const r = await damaged.run(['check', '--read-data-subset', `${n}/3`], { env: { BH_WORKERS: '2' } });
      read += Number(/(\d+) packs read/.exec(r.stdout)?.[1]);
      if (r.code !== 0) {
        failing.push(n);
        expect(r.code, describeRun(`check ${n}/3`, r)).toBe(1);
        expect(r.stdout).toContain(`data blob ${victimBlob.id} in data/${victimPack}`);
      } else {
        expect(r.stdout).not.toContain(victimPack);
      }
    }
    expect(failing).toHaveLength(1);
    expect(read).toBe((await packIds(damaged.path)).length);
  });
});
