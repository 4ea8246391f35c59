/**
 * Backup modes and snapshot selection through the real CLI: which parent each mode uses (and so
 * which files it reads), what a snapshot records (host, tags, time), how `restore latest` filters
 * and picks a point in time, unreadable entries, and the exit codes of the common failures.
 * Restored content is read back from the file system.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type RunResult, type TestRepo, bhWithoutDacOverride, initRepo, makeTempDir, removeDir } from './helpers/cli.js';
import { compareTrees } from './helpers/tree-compare.js';

type Json = Record<string, unknown>;

let tmp: string;
let repo: TestRepo;

function detail(r: RunResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

function jsonLines(r: RunResult): Json[] {
  return r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Json);
}

async function backup(args: string[], options: { input?: string } = {}): Promise<Json> {
  const r = await repo.run(['backup', ...args, '--json'], options);
  expect(r.code, detail(r)).toBe(0);
  const s = jsonLines(r).find((l) => l['message_type'] === 'summary');
  expect(s, detail(r)).toBeDefined();
  return s!;
}

async function snapshots(): Promise<Map<string, Json>> {
  const r = await repo.run(['snapshots', '--json']);
  expect(r.code, detail(r)).toBe(0);
  return new Map((JSON.parse(r.stdout) as Json[]).map((s) => [s['id'] as string, s]));
}

let restoreCount = 0;
/** Restores with `args` into a fresh target and returns the restored copy of `path`. */
async function restore(args: string[], path: string): Promise<string> {
  const target = join(tmp, `restore-${++restoreCount}`);
  const r = await repo.run(['restore', ...args, '--target', target]);
  expect(r.code, detail(r)).toBe(0);
  return join(target, path);
}

/** Every file below `dir` with its bytes' SHA-256: the whole state of a simple tree. */
function contents(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (d: string, rel: string): void => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      if (lstatSync(path).isDirectory()) visit(path, `${rel}${name}/`);
      else out[`${rel}${name}`] = createHash('sha256').update(readFileSync(path)).digest('hex');
    }
  };
  visit(dir, '');
  return out;
}

beforeAll(async () => {
  tmp = await makeTempDir('bh-modes-');
  repo = await initRepo(tmp);
});

afterAll(() => removeDir(tmp));

describe('backup modes', () => {
  it('incremental uses the latest snapshot of the same host and paths, differential the latest full one, full none', async () => {
    const src = join(tmp, 'src');
    mkdirSync(join(src, 'sub'), { recursive: true });
    const a1 = randomBytes(300_000);
    writeFileSync(join(src, 'a.bin'), a1);
    writeFileSync(join(src, 'b.txt'), 'b version 1\n');
    writeFileSync(join(src, 'sub', 'c.txt'), 'c\n');
    const H = ['--host', 'modes-host'];

    // No parent yet: every file is read, and the snapshot is recorded as full.
    const s1 = await backup([src, ...H]);
    expect(s1['mode']).toBe('full');
    expect(s1['parent']).toBeNull();
    expect(s1['files_new']).toBe(3);
    expect(s1['bytes_read']).toBe(s1['total_bytes']);
    expect(s1['total_bytes']).toBe(a1.length + 12 + 2);

    const a2 = randomBytes(200_000);
    writeFileSync(join(src, 'a.bin'), a2);
    const s2 = await backup([src, ...H]);
    expect([s2['mode'], s2['parent']]).toEqual(['incremental', s1['snapshot_id']]);
    expect([s2['files_changed'], s2['files_unmodified'], s2['bytes_read']]).toEqual([1, 2, a2.length]);

    // Differential: against the full s1 (not the newer s2), so the a.bin changed since s1 is read again.
    const s3 = await backup([src, ...H, '--mode', 'differential']);
    expect([s3['mode'], s3['parent']]).toEqual(['differential', s1['snapshot_id']]);
    expect([s3['files_changed'], s3['bytes_read']]).toEqual([1, a2.length]);
    const state3 = contents(src);

    writeFileSync(join(src, 'b.txt'), 'b version 2, longer\n');
    const s4 = await backup([src, ...H, '--mode', 'differential']);
    expect([s4['mode'], s4['parent']]).toEqual(['differential', s1['snapshot_id']]);
    expect([s4['files_changed'], s4['bytes_read']]).toEqual([2, a2.length + 20]);

    // Full: no parent, everything read.
    const s5 = await backup([src, ...H, '--mode', 'full']);
    expect([s5['mode'], s5['parent'], s5['files_new'], s5['files_unmodified']]).toEqual(['full', null, 3, 0]);
    expect(s5['bytes_read']).toBe(s5['total_bytes']);
    expect(s5['total_bytes']).toBe(a2.length + 20 + 2);

    const s6 = await backup([src, ...H, '--mode', 'differential']);
    expect([s6['mode'], s6['parent'], s6['bytes_read']]).toEqual(['differential', s5['snapshot_id'], 0]);
    // Incremental: the latest, whatever its mode.
    const s7 = await backup([src, ...H]);
    expect([s7['mode'], s7['parent'], s7['bytes_read'], s7['files_unmodified']]).toEqual(['incremental', s6['snapshot_id'], 0, 3]);

    // Another host, or other paths: no parent.
    const other = await backup([src, '--host', 'other-host', '--mode', 'incremental']);
    expect([other['mode'], other['parent'], other['bytes_read']]).toEqual(['full', null, other['total_bytes']]);
    const sub = await backup([join(src, 'sub'), ...H]);
    expect([sub['mode'], sub['parent']]).toEqual(['full', null]);

    // The records say the same.
    const list = await snapshots();
    const rec = (s: Json): Json => list.get(s['snapshot_id'] as string)!;
    expect([s1, s2, s3, s4, s5, s6, s7, other, sub].map((s) => [rec(s)['mode'], rec(s)['parent']])).toEqual([
      ['full', null], ['incremental', s1['snapshot_id']], ['differential', s1['snapshot_id']],
      ['differential', s1['snapshot_id']], ['full', null], ['differential', s5['snapshot_id']], ['incremental', s6['snapshot_id']], ['full', null], ['full', null],
    ]);
    expect(rec(other)['host']).toBe('other-host');

    // Every snapshot restores on its own: the differential s3 holds the state of its time, the
    // newest equals the tree as it is.
    expect(contents(await restore([s3['snapshot_id'] as string], src))).toEqual(state3);
    expect(await compareTrees(src, await restore([s7['snapshot_id'] as string], src))).toEqual([]);
  });
});

describe('snapshot selection', () => {
  let src: string;
  let other: string;
  const marker = (text: string): void => writeFileSync(join(src, 'marker'), text);
  const restoredMarker = async (args: string[]): Promise<string> => readFileSync(join(await restore(args, src), 'marker'), 'utf8');

  beforeAll(() => {
    src = join(tmp, 'sel');
    other = join(tmp, 'sel-other');
    mkdirSync(src);
    mkdirSync(other);
    writeFileSync(join(other, 'marker'), 'other path');
  });

  it('records --host, --tag and --time', async () => {
    marker('tagged');
    const s = await backup([src, '--host', 'rec-host', '--tag', 'weekly', '--tag', 'db', '--time', '2024-01-02 03:04:05']);
    const r = (await snapshots()).get(s['snapshot_id'] as string)!;
    expect(r['host']).toBe('rec-host');
    expect(r['tags']).toEqual(['weekly', 'db']);
    expect(r['time']).toBe(new Date(2024, 0, 2, 3, 4, 5).toISOString());
    expect(r['paths']).toEqual([src]);
    const bad = await repo.run(['backup', src, '--time', '2024-02-30 00:00:00']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('2024-02-30');
  });

  it('restore latest honours --host, --tag and --path', async () => {
    marker('host A');
    await backup([src, '--host', 'A']);
    // (The snapshot of the test above is the only one tagged weekly.)
    marker('host B');
    await backup([src, '--host', 'B']);
    await backup([other, '--host', 'B']);

    expect(await restoredMarker(['latest', '--host', 'A'])).toBe('host A');
    expect(await restoredMarker(['latest', '--host', 'B', '--path', src])).toBe('host B');
    expect(await restoredMarker(['latest', '--tag', 'weekly'])).toBe('tagged');
    expect(readFileSync(join(await restore(['latest', '--host', 'B'], other), 'marker'), 'utf8')).toBe('other path');
    const none = await repo.run(['restore', 'latest', '--host', 'A', '--tag', 'weekly', '--target', join(tmp, 'never-made')]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('no snapshot matches');
    expect(existsSync(join(tmp, 'never-made'))).toBe(false);
  });

  it('restore latest --time picks the newest snapshot at or before that moment', async () => {
    const H = ['--host', 'pit'];
    marker('2020-01-01');
    await backup([src, ...H, '--time', '2020-01-01 00:00:00']);
    marker('2020-06-01 noon');
    await backup([src, ...H, '--time', '2020-06-01 12:00:00']);
    marker('2021-01-01');
    await backup([src, ...H, '--time', '2021-01-01 00:00:00']);

    expect(await restoredMarker(['latest', ...H, '--time', '20200301_000000'])).toBe('2020-01-01');
    expect(await restoredMarker(['latest', ...H, '--time', '20200601_120000'])).toBe('2020-06-01 noon');
    const early = await repo.run(['restore', 'latest', ...H, '--time', '20191231_235959', '--target', join(tmp, 'too-early')]);
    expect(early.code).not.toBe(0);
    expect(early.stderr).toContain('no snapshot matches');
    expect(existsSync(join(tmp, 'too-early'))).toBe(false);
  });
});

describe('entries that cannot be read', () => {
  // Root reads everything, whatever the mode bits say: bhWithoutDacOverride drops the capabilities that let it.


  it('are reported (stderr, JSON, exit 3) and left out of a snapshot that is still saved', async () => {
    const src = join(tmp, 'unreadable');
    mkdirSync(join(src, 'locked-dir'), { recursive: true });
    mkdirSync(join(src, 'fine'));
    writeFileSync(join(src, 'ok.txt'), 'readable\n');
    writeFileSync(join(src, 'fine', 'also-ok.txt'), 'readable too\n');
    writeFileSync(join(src, 'secret'), 'unreadable\n');
    writeFileSync(join(src, 'locked-dir', 'inner'), 'behind a locked door\n');
    chmodSync(join(src, 'secret'), 0o000);
    chmodSync(join(src, 'locked-dir'), 0o000);
    // The premise: without the capabilities, the file really is unreadable.
    const probe = await new Promise<number | null>((resolve) => {
      const drop = '-dac_override,-dac_read_search';
      spawn('setpriv', [`--bounding-set=${drop}`, `--inh-caps=${drop}`, 'cat', join(src, 'secret')], { stdio: 'ignore' }).on('close', resolve);
    });
    expect(probe, 'cat of a 0o000 file must fail without CAP_DAC_OVERRIDE').not.toBe(0);

    const r = await bhWithoutDacOverride(repo.env, ['backup', src, '--json']);
    expect(r.code, detail(r)).toBe(3);
    expect(r.stderr).toContain(join(src, 'secret'));
    expect(r.stderr).toContain(join(src, 'locked-dir'));
    const lines = jsonLines(r);
    const errors = lines.filter((l) => l['message_type'] === 'error');
    expect(errors.map((e) => e['path']).sort()).toEqual([join(src, 'locked-dir'), join(src, 'secret')]);
    for (const e of errors) expect(String(e['error'])).toMatch(/EACCES|permission denied/i);
    const summary = lines.find((l) => l['message_type'] === 'summary')!;
    expect(summary['errors']).toBe(2);
    expect(summary['snapshot_id']).toMatch(/^[0-9a-f]{64}$/);

    // The snapshot exists and holds everything else, exactly.
    const restored = await restore([summary['snapshot_id'] as string], src);
    expect((await compareTrees(src, restored)).sort()).toEqual(['"locked-dir": missing in restored tree', '"secret": missing in restored tree']);
  });
});

describe('exit codes', () => {
  /** Every file of the repository with its bytes' hash. */
  const fingerprint = (): Record<string, string> => contents(repo.path);

  it('wrong password → 12, no repository → 10, init on an existing repository fails and changes nothing', async () => {
    const wrong = await repo.run(['snapshots'], { env: { BH_PASSWORD: 'not the password' } });
    expect(wrong.code, detail(wrong)).toBe(12);
    expect(wrong.stderr).toMatch(/password/);

    const missing = join(tmp, 'no-repo-here');
    const none = await repo.run(['snapshots'], { env: { BH_REPO: missing } });
    expect(none.code, detail(none)).toBe(10);
    expect(none.stderr).toContain(missing);
    mkdirSync(join(tmp, 'empty-dir'));
    const empty = await repo.run(['backup', tmp + '/empty-dir'], { env: { BH_REPO: join(tmp, 'empty-dir') } });
    expect(empty.code, detail(empty)).toBe(10);
    expect(readdirSync(join(tmp, 'empty-dir'))).toEqual([]);

    const before = fingerprint();
    const again = await repo.run(['init']);
    expect(again.code, detail(again)).not.toBe(0);
    expect(again.stderr).toContain('already holds a bh repository');
    expect(fingerprint()).toEqual(before);
  });
});
