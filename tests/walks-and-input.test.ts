/**
 * Issue 11, items 8, 11, 12 and 13, through the real CLI and the library:
 * - tree walks (ls, find, diff, stats) over crafted repositories: a chain of 20 000 nested
 *   directories, and a DAG of shared subtrees holding 2^40 paths, which Ctrl-C and SIGTERM stop;
 * - --time refuses dates and times that do not exist;
 * - forget --keep-within with a duration past the representable dates keeps everything;
 * - malformed glob patterns are refused, naming the pattern (and file:line).
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import picomatch from 'picomatch';
import type { ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BlobType } from '../src/repo/crypto.js';
import { patternProblem, compilePatterns } from '../src/snapshot/exclude.js';
import { Finder } from '../src/snapshot/find.js';
import { type Duration, bucketOf, parseDuration, planForget, subtractDuration } from '../src/snapshot/forget.js';
import { type Snapshot, type SnapshotRecord, parseLocalTime } from '../src/snapshot/snapshot.js';
import { RestoreSizeCounter } from '../src/snapshot/stats.js';
import { type TreeNode, encodeTree } from '../src/snapshot/tree.js';
import { TreeReader, walkTree } from '../src/snapshot/walk.js';
import { type RunResult, type Running, type TestRepo, bh, describeRun, expectOk, initRepo, makeTempDir, removeDir, signal, startBh, startRunning, waitFor } from './helpers/cli.js';
import { openLibraryRepo } from './helpers/repo-lib.js';

let tmp: string;
/** Holds the crafted snapshots. */
let crafted: TestRepo;
/** Holds ordinary backups. */
let plain: TestRepo;
const CHAIN_DEPTH = 20_000;
const DAG_LEVELS = 40;
/** Snapshot ids: chains of CHAIN_DEPTH directories "d" ending in a file "f" or "g"; the DAG. */
let chainF: string;
let chainG: string;
let dag: string;

const NODE = { mode: 0o755, uid: 0, gid: 0, mtimeNs: 0n, ctimeNs: 0n, inode: 1n, device: 1n, links: 1, size: 0 };
const file = (name: string): TreeNode => ({ ...NODE, name: Buffer.from(name), type: 'file', content: [] });
const dir = (name: string, subtree: Buffer): TreeNode => ({ ...NODE, name: Buffer.from(name), type: 'dir', subtree });

function record(tree: Buffer): SnapshotRecord {
  return { version: 1, time: new Date().toISOString(), tree: tree.toString('hex'), paths: ['/crafted'], host: 'crafted', username: 'u', uid: 0, gid: 0, tags: [], mode: 'full', parent: null, excludes: [], program_version: 'crafted' };
}

/** Saves, through the library, one snapshot per root made by `build` (given a tree saver); returns their ids. */
async function craft(repo: TestRepo, build: (save: (nodes: TreeNode[]) => Promise<Buffer>) => Promise<Buffer[]>): Promise<string[]> {
  const opened = await openLibraryRepo(repo);
  const indexed = await opened.loadIndex(await opened.listSnapshots());
  const roots = await build(async (nodes) => (await indexed.saveBlob('tree', encodeTree(nodes))).id);
  await indexed.flush();
  const ids: string[] = [];
  for (const root of roots) ids.push(await opened.saveJson('snapshot', record(root)));
  return ids;
}

beforeAll(async () => {
  tmp = await makeTempDir('bh-walks-');
  crafted = await initRepo(tmp);
  plain = await initRepo(join(tmp, 'plain'));
  [chainF, chainG, dag] = await craft(crafted, async (save) => {
    const chain = async (leaf: string): Promise<Buffer> => {
      let tree = await save([file(leaf)]);
      for (let level = 0; level < CHAIN_DEPTH; level++) tree = await save([dir('d', tree)]);
      return tree;
    };
    // T_0 holds a file; T_k holds "a" and "b", both T_(k-1): 2^40 paths to a file "f".
    let shared = await save([file('f')]);
    for (let level = 0; level < DAG_LEVELS; level++) shared = await save([dir('a', shared), dir('b', shared)]);
    return [await chain('f'), await chain('g'), shared];
  }) as [string, string, string];
}, 180_000);

afterAll(() => removeDir(tmp));

/** bh processes started here; one still running when its test ends (a failed test) is killed, not left walking 2^40 paths. */
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

function start(repo: TestRepo, args: string[]): Running {
  const running = startRunning(args, { env: repo.env });
  children.push(running.child);
  return running;
}

function locksOf(repo: TestRepo): string[] {
  return readdirSync(join(repo.path, 'locks'));
}

/** Runs bh and counts its output lines as they come, keeping only the last line (a listing may be hundreds of MB). */
function runCountingLines(repo: TestRepo, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; lines: number; lastLine: string; stderr: string }> {
  const child = startBh(args, { env: { ...repo.env, ...env } });
  children.push(child);
  child.stdin!.end();
  let lines = 0;
  let tail = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) lines++;
    tail = (tail + chunk.toString('latin1')).slice(-3 * CHAIN_DEPTH);
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, lines, lastLine: tail.trimEnd().split('\n').pop()!, stderr }));
  });
}

/** A heap far below what a walk that copies its path per level needs at depth 20 000 (hundreds of MB). */
const SMALL_HEAP = { NODE_OPTIONS: '--max-old-space-size=64' };
const DEEP_DIRS = '/d'.repeat(CHAIN_DEPTH);

describe('item 8: walks over a chain of 20 000 nested directories', () => {
  it('ls lists every entry, in a small heap', async () => {
    const r = await runCountingLines(crafted, ['ls', chainF], SMALL_HEAP);
    expect(r.code, r.stderr).toBe(0);
    expect(r.lines).toBe(CHAIN_DEPTH + 1);
    expect(r.lastLine).toBe(`${DEEP_DIRS}/f`);
  });

  it('find finds the leaf, in a small heap', async () => {
    const r = expectOk(await crafted.run(['find', 'f', '--snapshot', chainF, '--json'], { env: SMALL_HEAP }), 'find');
    const groups = JSON.parse(r.stdout) as { snapshot: string; hits: number; matches: { path: string }[] }[];
    expect(groups.map((g) => [g.snapshot, g.hits])).toEqual([[chainF, 1]]);
    expect(groups[0]!.matches[0]!.path).toBe(`${DEEP_DIRS}/f`);
  });

  it('stats counts it in both modes', async () => {
    const size = JSON.parse(expectOk(await crafted.run(['stats', chainF, '--json']), 'stats').stdout) as Record<string, number>;
    expect([size['files'], size['dirs'], size['others']]).toEqual([1, CHAIN_DEPTH, 0]);
    const raw = JSON.parse(expectOk(await crafted.run(['stats', chainF, '--mode', 'raw-data', '--json']), 'stats raw-data').stdout) as Record<string, number>;
    expect([raw['tree_blobs'], raw['data_blobs'], raw['missing_blobs']]).toEqual([CHAIN_DEPTH + 1, 0, 0]);
  });

  it('diff finds the one changed leaf', async () => {
    const r = expectOk(await crafted.run(['diff', chainF, chainG, '--json']), 'diff');
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const changes = lines.filter((l) => l['message_type'] === 'change').map((l) => [l['modifier'], l['path']]);
    expect(changes).toEqual([
      ['-', `${DEEP_DIRS}/f`],
      ['+', `${DEEP_DIRS}/g`],
    ]);
    const stats = lines.find((l) => l['message_type'] === 'statistics') as { added: { tree_blobs: number } };
    expect(stats.added.tree_blobs).toBe(CHAIN_DEPTH + 1);
  });
});

describe('item 8: walks over a DAG of 2^40 paths', () => {
  it.each([
    ['find', 'SIGINT'],
    ['find', 'SIGTERM'],
    ['ls', 'SIGINT'],
    ['ls', 'SIGTERM'],
  ] as const)('%s is stopped by %s while it prints: exit 130, lock released', async (command, name) => {
    const args = command === 'find' ? ['find', 'f', '--snapshot', dag] : ['ls', dag];
    const running = start(crafted, args);
    await waitFor(running, () => running.stdout().length > 0, `${command} printing`);
    signal(running, name);
    const r = await running.done;
    expect(r.code, describeRun(command, r)).toBe(130);
    expect(r.stderr).toMatch(/bh: interrupted/);
    expect(locksOf(crafted)).toEqual([]);
  });

  it('find with a name pattern searches each shared subtree once: no match, at once', async () => {
    const r = expectOk(await start(crafted, ['find', 'nomatch', '--snapshot', dag, '--json']).done, 'find');
    expect(JSON.parse(r.stdout)).toEqual([]);
  });

  it('stats counts the 2^40 paths from each tree once', async () => {
    const size = JSON.parse(expectOk(await crafted.run(['stats', dag, '--json']), 'stats').stdout) as Record<string, number>;
    expect([size['files'], size['dirs']]).toEqual([2 ** DAG_LEVELS, 2 ** (DAG_LEVELS + 1) - 2]);
  });
});

describe('item 8: a tree that repeats one above it on its path', () => {
  // Impossible in a repository (a tree would hold its own hash), so this is a forged source:
  // tree A holds "x" → B, B holds "y" → A (and a file, to match).
  const A = Buffer.alloc(32, 0xaa);
  const B = Buffer.alloc(32, 0xbb);
  const blobs = new Map([
    [A.toString('hex'), encodeTree([dir('x', B)])],
    [B.toString('hex'), encodeTree([file('file'), dir('y', A)])],
  ]);
  const forged = { loadBlob: async (_type: BlobType, id: Uint8Array): Promise<Buffer> => blobs.get(Buffer.from(id).toString('hex'))! };
  const reader = (warnings: string[]): TreeReader => new TreeReader(forged, { onWarning: (m) => warnings.push(m) });

  it('is listed, not entered, with a warning: walk, find and stats end', async () => {
    const warnings: string[] = [];
    const paths: string[] = [];
    for await (const entry of walkTree(reader(warnings), A)) paths.push(entry.path);
    expect(paths).toEqual(['/x', '/x/file', '/x/y']);

    const found: string[] = [];
    for await (const hit of new Finder(reader(warnings), compilePatterns(['*'])).find(A)) found.push(hit.path);
    expect(found).toEqual(['/x', '/x/file', '/x/y']);

    const counter = new RestoreSizeCounter(reader(warnings));
    await counter.addSnapshot(A);
    expect(counter.result()).toMatchObject({ files: 1, dirs: 2 });

    expect(warnings).toHaveLength(3);
    for (const warning of warnings) expect(warning).toMatch(/^\/x\/y: its tree aaaaaaaaaaaaaaaa… is also the tree of a directory above it/);
  });
});

describe('item 11: --time refuses dates and times that do not exist', () => {
  it.each([
    ['20261301_000000', /there is no month 13/],
    ['20260230_120000', /month 02 of 2026 has no day 30 \(it has 28 days\)/],
    ['20230229_000000', /month 02 of 2023 has no day 29/],
    ['2100-02-29 00:00:00', /month 02 of 2100 has no day 29/],
    ['2026-04-31 12:00:00', /month 04 of 2026 has no day 31/],
    ['2026-00-10 12:00:00', /there is no month 00/],
    ['2026-01-00 12:00:00', /has no day 00/],
    ['2026-01-01 25:61:61', /there is no time 25:61:61/],
    ['2026-01-01 24:00:00', /there is no time 24:00:00/],
    ['2026-01-01 23:60:00', /there is no time 23:60:00/],
    ['2026-01-01 23:59:60', /there is no time 23:59:60/],
    ['2026-01-01', /not a time in an accepted form/],
  ])('%s', (text, why) => {
    expect(() => parseLocalTime(text)).toThrow(why);
    expect(() => parseLocalTime(text)).toThrow(/^'.*': .*; give a local time as "YYYY-MM-DD HH:MM:SS" or YYYYMMDD_HHMMSS$/);
  });

  it('reads both forms as local times, leap days and years below 100 included', () => {
    const local = (d: Date): number[] => [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
    expect(local(parseLocalTime('20240229_235959'))).toEqual([2024, 2, 29, 23, 59, 59]);
    expect(local(parseLocalTime('2000-02-29 00:00:00'))).toEqual([2000, 2, 29, 0, 0, 0]);
    expect(local(parseLocalTime('2026-12-31T23:59:59'))).toEqual([2026, 12, 31, 23, 59, 59]);
    expect(local(parseLocalTime('0050-01-15 12:00:00'))).toEqual([50, 1, 15, 12, 0, 0]);
  });

  it('accepts exactly the dates of the calendar (property)', () => {
    const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9999 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }), fc.integer({ min: 0, max: 24 }), fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 60 }), (year, month, day, hour, minute, second) => {
        // The model: the last day of a month is the day before the first of the next one, in UTC.
        const lastDay = new Date(0);
        lastDay.setUTCFullYear(year, month, 0);
        const valid = month >= 1 && month <= 12 && day >= 1 && day <= lastDay.getUTCDate() && hour <= 23 && minute <= 59 && second <= 59;
        const text = `${pad(year, 4)}${pad(month)}${pad(day)}_${pad(hour)}${pad(minute)}${pad(second)}`;
        if (!valid) {
          expect(() => parseLocalTime(text)).toThrow(/give a local time/);
          return;
        }
        const date = parseLocalTime(text);
        // (An hour a DST change skips moves on; the year, minutes and seconds stay.)
        expect([date.getFullYear(), date.getMinutes(), date.getSeconds()]).toEqual([year, minute, second]);
      }),
      { numRuns: 2000 },
    );
  });

  it('restore and backup refuse them before touching the repository (exit 1)', async () => {
    const source = join(tmp, 'time-src');
    mkdirSync(source);
    writeFileSync(join(source, 'a'), 'a\n');
    expectOk(await plain.run(['backup', source, '--time', '2026-01-01 12:00:00']), 'backup');
    const target = join(tmp, 'time-target');
    const restore = await plain.run(['restore', 'latest', '--time', '20261301_000000', '--target', target]);
    expect(restore.code, describeRun('restore', restore)).toBe(1);
    expect(restore.stderr).toMatch(/--time '20261301_000000': there is no month 13/);
    expect(readdirSync(tmp)).not.toContain('time-target');
    const backup = await plain.run(['backup', source, '--time', '2026-01-01 25:61:61']);
    expect(backup.code, describeRun('backup', backup)).toBe(1);
    expect(backup.stderr).toMatch(/--time '2026-01-01 25:61:61': there is no time 25:61:61/);
    expect(JSON.parse(expectOk(await plain.run(['snapshots', '--json']), 'snapshots').stdout)).toHaveLength(1);
  });
});

describe('item 12: keep-within past the representable dates keeps everything', () => {
  const DAY = 86_400_000;
  const now = new Date('2026-06-01T12:00:00Z');
  const five = Array.from({ length: 5 }, (_, i): Snapshot => ({ id: String(i).repeat(64), record: { ...record(Buffer.alloc(32)), time: new Date(now.getTime() - (i + 1) * DAY).toISOString() } }));
  const kept = (policy: Parameters<typeof planForget>[1]): number => planForget(five, policy, { groupBy: [], now }).flatMap((g) => g.keep).length;

  it.each(['300000y', '3600000m', '110000000d', '9007199254740991h', '1y9007199254740991d'])('--keep-within %s', (text) => {
    expect(kept({ within: parseDuration(text), last: 1 })).toBe(5);
  });

  it('a huge max-age-days removes nothing', () => {
    expect(kept({ last: 5, maxAgeDays: Number.MAX_SAFE_INTEGER })).toBe(5);
    expect(kept({ maxAgeDays: Number.MAX_SAFE_INTEGER })).toBe(5);
  });

  it('reads years below 100 as themselves, not as 19xx', () => {
    const year = (y: number, month = 0, day = 1): Date => {
      const date = new Date(2000, 0, 1, 12);
      date.setFullYear(y, month, day);
      return date;
    };
    expect(subtractDuration(year(2021, 5, 1), parseDuration('1950y')).getFullYear()).toBe(71);
    // 1 January of the year 50 was a Saturday (proleptic Gregorian): in the last ISO week of the year 49.
    expect(bucketOf('weekly', year(50))).toBe('49-W52');
  });

  it('a longer keep-within never keeps less (property, through the overflow)', () => {
    const component = fc.oneof(fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
    const duration = fc.record({ years: component, months: component, days: component, hours: component });
    fc.assert(
      fc.property(duration, duration, (a: Duration, b: Duration) => {
        const longer: Duration = { years: a.years + b.years, months: a.months + b.months, days: a.days + b.days, hours: a.hours + b.hours };
        // A zero duration is no rule at all (the empty policy keeps everything); sums past 2^53 cannot be given.
        if (Object.values(a).every((v) => v === 0) || !Object.values(longer).every(Number.isSafeInteger)) return;
        expect(kept({ within: longer })).toBeGreaterThanOrEqual(kept({ within: a }));
      }),
    );
  });

  it('bh forget --keep-within 300000y --keep-last 1 removes none of 5 snapshots', async () => {
    const repo = await initRepo(join(tmp, 'forget'));
    const source = join(tmp, 'forget-src');
    mkdirSync(source);
    writeFileSync(join(source, 'a'), 'a\n');
    for (let day = 1; day <= 5; day++) expectOk(await repo.run(['backup', source, '--time', `2026-01-0${day} 12:00:00`]), 'backup');
    const r = expectOk(await repo.run(['forget', '--keep-within', '300000y', '--keep-last', '1', '--json']), 'forget');
    const plan = JSON.parse(r.stdout) as { groups: { keep: unknown[]; remove: unknown[] }[]; removed: string[] };
    expect(plan.removed).toEqual([]);
    expect(plan.groups.map((g) => [g.keep.length, g.remove.length])).toEqual([[5, 0]]);
    expect(JSON.parse(expectOk(await repo.run(['snapshots', '--json']), 'snapshots').stdout)).toHaveLength(5);
  });
});

describe('item 13: malformed glob patterns are refused', () => {
  it.each([
    ['[', /a '\[' is not closed/],
    ['*.[ch', /a '\[' is not closed/],
    ['[]', /a '\[' is not closed/],
    ['[!]', /a '\[' is not closed/],
    ['{a,b', /a '\{' is not closed/],
    ['{a,{b,c}', /a '\{' is not closed/],
    ['[z-a]', /the range z-a is reversed \(write a-z\)/],
    ['x[a-cZ-A]', /the range Z-A is reversed/],
    ['a\\', /ends with a lone '\\'/],
    ['!(a', /does not compile as a glob: check its parentheses/],
  ])('%s', (pattern, why) => {
    expect(patternProblem(pattern)).toMatch(why);
    expect(() => compilePatterns(['*.ok', pattern])).toThrow(`invalid pattern '${pattern}': `);
  });

  it.each(['*.tmp', '[a-z]*', '[a-a]', '[]a]', '[!a]', '[^a]', '[a-]', '[[:alpha:]]*', '\\[literal', '*.{c,h}', '{a,{b,c}}', '{a}', 'a]', 'x}', 'Copy (2).txt', '**/build/*.o', '/home/*/.cache'])('%s is a glob', (pattern) => {
    expect(patternProblem(pattern)).toBeUndefined();
  });

  it('what passes the check, picomatch compiles (property)', () => {
    const glob = fc.array(fc.constantFrom('[', ']', '{', '}', '\\', ',', '-', '!', '^', '*', '?', ':', '(', ')', '@', '/', 'a', 'z', 'A'), { maxLength: 8 }).map((chars) => chars.join(''));
    fc.assert(
      fc.property(glob, (pattern) => {
        if (patternProblem(pattern) === undefined) expect(picomatch.makeRe(pattern, { dot: true }).source).not.toBe('$^');
      }),
      { numRuns: 5000 },
    );
  });

  it('backup, restore and find refuse them before taking a lock (exit 1), an exclude file with file:line', async () => {
    const source = join(tmp, 'pattern-src');
    mkdirSync(source);
    writeFileSync(join(source, 'a'), 'a\n');
    const excludes = join(tmp, 'excludes');
    writeFileSync(excludes, '# comment\n*.tmp\n\n[z-a]\n');
    const before = JSON.parse(expectOk(await plain.run(['snapshots', '--json']), 'snapshots').stdout) as unknown[];
    const runs: [string[], RegExp][] = [
      [['backup', source, '--exclude', '['], /invalid pattern '\[': a '\[' is not closed/],
      [['backup', source, '--exclude-file', excludes], new RegExp(`invalid pattern '\\[z-a\\]' at ${excludes}:4: the range z-a is reversed`)],
      [['restore', 'latest', '--target', join(tmp, 'pattern-target'), '--include', '{a,b'], /invalid pattern '\{a,b': a '\{' is not closed/],
      [['restore', 'latest', '--target', join(tmp, 'pattern-target'), '--exclude', '[z-a]'], /invalid pattern '\[z-a\]'/],
      [['find', '*.ok', '[z-a]'], /invalid pattern '\[z-a\]'/],
    ];
    for (const [args, message] of runs) {
      const r: RunResult = await plain.run(args);
      expect(r.code, describeRun(args.join(' '), r)).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(locksOf(plain)).toEqual([]);
    }
    expect(readdirSync(tmp)).not.toContain('pattern-target');
    expect(JSON.parse(expectOk(await plain.run(['snapshots', '--json']), 'snapshots').stdout)).toHaveLength(before.length);
  });

  it('bh config check refuses them in exclude_patterns, with the line', async () => {
    const config = join(tmp, 'job.ini');
    writeFileSync(config, `[DEFAULT]\nsource_dir = ${tmp}\nmode = full\nexclude_patterns = *.tmp, [z-a]\n[MODES]\nlocal = True\n[BACKUPS]\nbackup_dirs = ${join(tmp, 'job-repo')}\n[ENCRYPTION]\npassphrase = secret\n`);
    const r = await bh(['config', 'check', '--config', config]);
    expect(r.code, describeRun('config check', r)).toBe(1);
    expect(r.stderr).toMatch(/:4 \[DEFAULT\] exclude_patterns: '\[z-a\]' is not a valid pattern: the range z-a is reversed/);
  });
});
