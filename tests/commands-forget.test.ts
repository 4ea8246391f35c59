/**
 * `bh forget` through the real CLI on a real local repository. One repository with eight
 * snapshots of two hosts is built once (`bh backup --time … --host …` of tiny directories whose
 * content changes between backups); each test works on its own copy of it. What a policy removed
 * is read from the repository's snapshots/ folder on disk and from `bh snapshots --json`; the
 * snapshots left must still restore to what was backed up, and `bh check` must pass.
 */
import { cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunResult, type TestRepo, bh, hashTree, initRepo, makeTempDir, removeDir } from './helpers/cli.js';

/** --time is local time: pin the zone so the calendar buckets below are the ones intended. */
const ZONE = { TZ: 'UTC' };

interface Made {
  id: string;
  host: string;
  time: string;
  tags: string[];
  source: string;
  /** The source directory's files, hashed right after the backup. */
  files: Map<string, string>;
}

let tmp: string;
let base: TestRepo;
let made: Made[];
let srcA: string;
let srcB: string;
let copies = 0;

const PLAN: { host: 'a' | 'b'; time: string; tags?: string[] }[] = [
  { host: 'a', time: '2024-01-01 10:00:00' },
  { host: 'b', time: '2024-01-01 12:00:00', tags: ['nightly'] },
  { host: 'a', time: '2024-01-01 18:00:00' },
  { host: 'a', time: '2024-01-02 10:00:00' },
  { host: 'b', time: '2024-01-03 12:00:00' },
  { host: 'b', time: '2024-01-05 12:00:00', tags: ['nightly'] },
  { host: 'a', time: '2024-01-08 10:00:00' },
  { host: 'a', time: '2024-02-01 10:00:00' },
];

function ok(r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`bh exited ${r.code}: ${r.stderr}`);
  return r;
}

beforeAll(async () => {
  tmp = await makeTempDir('bh-forget-');
  base = await initRepo(join(tmp, 'base'));
  srcA = join(tmp, 'src-a');
  srcB = join(tmp, 'src-b');
  await mkdir(join(srcA, 'sub'), { recursive: true });
  await mkdir(srcB, { recursive: true });
  made = [];
  for (const [i, step] of PLAN.entries()) {
    const source = step.host === 'a' ? srcA : srcB;
    await writeFile(join(source, 'version.txt'), `snapshot ${i} of host ${step.host}\n`);
    await writeFile(join(source, step.host === 'a' ? 'sub/log.txt' : 'log.txt'), `line ${i}\n`.repeat(i + 1));
    const tags = step.tags ?? [];
    const r = ok(await base.run(['backup', source, '--time', step.time, '--host', step.host, ...tags.flatMap((t) => ['--tag', t]), '--json'], { env: ZONE }));
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { snapshot_id: string };
    made.push({ id: summary.snapshot_id, host: step.host, time: step.time, tags, source, files: await hashTree(source) });
  }
}, 120_000);

afterAll(async () => {
  await removeDir(tmp);
});

/** A fresh copy of the base repository, opened by the same password. */
async function copyOfBase(): Promise<TestRepo> {
  const path = join(tmp, `copy-${copies++}`);
  await cp(base.path, path, { recursive: true });
  const env = { ...base.env, BH_REPO: path, ...ZONE };
  return { path, env, run: (args, options = {}) => bh(args, { ...options, env: { ...env, ...options.env } }) };
}

async function onDisk(repo: TestRepo, folder = 'snapshots'): Promise<string[]> {
  return (await readdir(join(repo.path, folder), { recursive: true })).map(String).sort();
}

async function listed(repo: TestRepo): Promise<string[]> {
  return (JSON.parse(ok(await repo.run(['snapshots', '--json'])).stdout) as { id: string }[]).map((s) => s.id).sort();
}

const idsAt = (...times: string[]): string[] => times.map((t) => made.find((m) => m.time === t)!.id).sort();
const allIds = (): string[] => made.map((m) => m.id).sort();

/** Restores every remaining snapshot and compares it with what its backup read; then `bh check`. */
async function expectIntact(repo: TestRepo): Promise<void> {
  for (const id of await listed(repo)) {
    const m = made.find((x) => x.id === id)!;
    const target = join(tmp, `restore-${copies++}`);
    ok(await repo.run(['restore', id, '--target', target]));
    expect(await hashTree(join(target, m.source))).toEqual(m.files);
  }
  ok(await repo.run(['check']));
}

describe('bh forget', () => {
  it('applies a policy per host and paths, removes exactly those snapshot files, and leaves data and index alone', async () => {
    const repo = await copyOfBase();
    const data = await onDisk(repo, 'data');
    const index = await onDisk(repo, 'index');
    const r = ok(await repo.run(['forget', '--keep-daily', '2']));
    expect(r.stdout).toContain('snapshots of host a, paths');
    expect(r.stdout).toContain('daily snapshot');
    expect(r.stdout).toContain('removed 4 snapshots');
    const expected = idsAt('2024-01-08 10:00:00', '2024-02-01 10:00:00', '2024-01-03 12:00:00', '2024-01-05 12:00:00');
    expect(await onDisk(repo)).toEqual(expected);
    expect(await listed(repo)).toEqual(expected);
    expect(await onDisk(repo, 'data')).toEqual(data);
    expect(await onDisk(repo, 'index')).toEqual(index);
    expect(await onDisk(repo, 'locks')).toEqual([]);
    await expectIntact(repo);
  });

  it('--dry-run prints the plan and changes nothing', async () => {
    const repo = await copyOfBase();
    const before = await onDisk(repo, '.');
    const r = ok(await repo.run(['forget', '--keep-last', '1', '--dry-run']));
    expect(r.stdout).toContain('would remove 6 snapshots');
    expect(await onDisk(repo, '.')).toEqual(before);
  });

  it('--json gives one document: per group its key, kept and removed snapshots with reasons', async () => {
    const repo = await copyOfBase();
    const r = ok(await repo.run(['forget', '--keep-last', '2', '--keep-tag', 'nightly', '--json']));
    const doc = JSON.parse(r.stdout) as {
      dry_run: boolean;
      removed: string[];
      groups: { key: { host: string; paths: string[] }; keep: { id: string; time: string; reasons: string[] }[]; remove: { id: string; reasons: string[] }[] }[];
    };
    expect(doc.dry_run).toBe(false);
    const byHost = new Map(doc.groups.map((g) => [g.key.host, g]));
    expect([...byHost.keys()].sort()).toEqual(['a', 'b']);
    expect(byHost.get('a')!.key.paths).toEqual([srcA]);
    expect(byHost.get('a')!.keep.map((d) => d.id).sort()).toEqual(idsAt('2024-01-08 10:00:00', '2024-02-01 10:00:00'));
    expect(byHost.get('a')!.keep.every((d) => d.reasons.includes('last snapshot'))).toBe(true);
    expect(byHost.get('a')!.remove.map((d) => d.reasons)).toEqual([['kept by no rule'], ['kept by no rule'], ['kept by no rule']]);
    // Host b: the two newest by keep-last, and the tagged one of 1 January by keep-tag.
    const b = byHost.get('b')!;
    expect(b.remove).toEqual([]);
    expect(b.keep.map((d) => d.reasons)).toEqual([['tag nightly'], ['last snapshot'], ['last snapshot', 'tag nightly']]);
    expect(doc.removed.sort()).toEqual(idsAt('2024-01-01 10:00:00', '2024-01-01 18:00:00', '2024-01-02 10:00:00'));
    expect(await onDisk(repo)).toEqual(allIds().filter((id) => !doc.removed.includes(id)));
  });

  it('forgets snapshots named by id or prefix, and refuses to empty a group without --allow-empty-group', async () => {
    const repo = await copyOfBase();
    const [one] = idsAt('2024-01-02 10:00:00');
    ok(await repo.run(['forget', one!.slice(0, 8)]));
    expect(await onDisk(repo)).toEqual(allIds().filter((id) => id !== one));

    const hostB = made.filter((m) => m.host === 'b').map((m) => m.id);
    const refused = await repo.run(['forget', ...hostB]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/would remove every snapshot of host b, paths .* \(3 snapshots\); nothing was removed.*--allow-empty-group/);
    expect(await onDisk(repo)).toHaveLength(7);

    ok(await repo.run(['forget', '--allow-empty-group', ...hostB]));
    expect(await onDisk(repo)).toEqual(allIds().filter((id) => id !== one && !hostB.includes(id)));
  });

  it('--host, --tag and --path restrict which snapshots the policy sees', async () => {
    const repo = await copyOfBase();
    ok(await repo.run(['forget', '--host', 'b', '--keep-last', '1']));
    expect(await onDisk(repo)).toEqual(allIds().filter((id) => !idsAt('2024-01-01 12:00:00', '2024-01-03 12:00:00').includes(id)));

    const tagged = await copyOfBase();
    ok(await tagged.run(['forget', '--tag', 'nightly', '--keep-last', '1']));
    expect(await onDisk(tagged)).toEqual(allIds().filter((id) => id !== idsAt('2024-01-01 12:00:00')[0]));

    const byPath = await copyOfBase();
    ok(await byPath.run(['forget', '--path', srcA, '--keep-last', '2']));
    expect(await onDisk(byPath)).toEqual([...idsAt('2024-01-08 10:00:00', '2024-02-01 10:00:00'), ...made.filter((m) => m.host === 'b').map((m) => m.id)].sort());

    const twoHosts = await copyOfBase();
    const r = ok(await twoHosts.run(['forget', '--host', 'a', '--host', 'b', '--group-by', '', '--keep-last', '1', '--json']));
    expect((JSON.parse(r.stdout) as { groups: { key: object }[] }).groups.map((g) => g.key)).toEqual([{}]);
    expect(await onDisk(twoHosts)).toEqual(idsAt('2024-02-01 10:00:00'));
  });

  it('refuses a policy that keeps nothing of a group, removing nothing, unless --allow-empty-group', async () => {
    const repo = await copyOfBase();
    const r = await repo.run(['forget', '--keep-tag', 'no-such-tag']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('would remove every snapshot of host a');
    expect(r.stderr).toContain('host b');
    expect(await onDisk(repo)).toEqual(allIds());
    expect(await onDisk(repo, 'locks')).toEqual([]);

    ok(await repo.run(['forget', '--host', 'b', '--keep-tag', 'no-such-tag', '--allow-empty-group']));
    expect(await onDisk(repo)).toEqual(made.filter((m) => m.host === 'a').map((m) => m.id).sort());
  });

  it('the old tool\'s max-count and max-age-days: caps that never delete the newest snapshot of a group', async () => {
    const repo = await copyOfBase();
    ok(await repo.run(['forget', '--max-count', '2']));
    expect(await onDisk(repo)).toEqual(idsAt('2024-01-08 10:00:00', '2024-02-01 10:00:00', '2024-01-03 12:00:00', '2024-01-05 12:00:00'));

    // Every snapshot is years older than 30 days: the old tool deleted them all ("retention
    // deleting live data"); bh keeps the newest of each group and says why.
    const stale = await copyOfBase();
    const r = ok(await stale.run(['forget', '--max-age-days', '30']));
    expect(r.stdout).toContain('newest kept snapshot: max_age_days 30 does not remove it');
    expect(await onDisk(stale)).toEqual(idsAt('2024-02-01 10:00:00', '2024-01-05 12:00:00'));
    await expectIntact(stale);

    const gone = await copyOfBase();
    ok(await gone.run(['forget', '--max-age-days', '30', '--host', 'b', '--allow-empty-group']));
    expect(await onDisk(gone)).toEqual(made.filter((m) => m.host === 'a').map((m) => m.id).sort());
  });

  it('an empty policy removes nothing and says so', async () => {
    const repo = await copyOfBase();
    for (const args of [[], ['--keep-last', '0', '--max-count', '0']]) {
      const r = ok(await repo.run(['forget', ...args]));
      expect(r.stdout).toContain('nothing removed');
    }
    expect(await onDisk(repo)).toEqual(allIds());
  });

  it('bad input exits 1 with a clear message and removes nothing', async () => {
    const repo = await copyOfBase();
    const cases: [string[], RegExp][] = [
      [['--keep-within', '3w'], /--keep-within: '3w' is not a duration \(unknown unit 'w'\).*y \(years\), m \(months\), d \(days\), h \(hours\)/],
      [['--keep-within', 'soon'], /--keep-within: 'soon' is not a duration/],
      [['--keep-daily', 'seven'], /--keep-daily 'seven' is not a count: give a whole number ≥ 0 or 'unlimited'/],
      [['--max-count=-1'], /--max-count '-1' is not a count/],
      [['--keep-last', '1', '--group-by', 'host,owner'], /--group-by: unknown field 'owner'/],
      [['--keep-last', '1', made[0]!.id], /give snapshot ids or a policy/],
      [['ffffffffff'], /no snapshot matches 'ffffffffff'/],
    ];
    for (const [args, message] of cases) {
      const r = await repo.run(['forget', ...args]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    expect(await onDisk(repo)).toEqual(allIds());
    expect(await onDisk(repo, 'locks')).toEqual([]);
  });
});
