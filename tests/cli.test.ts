import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BH, ROOT, backupSnapshot, bh, describeRun, expectOk, initRepoAt, makeTempDir, randomFilesDir, removeDir, type TestRepo } from './helpers/cli.js';
import { compareTrees } from './helpers/tree-compare.js';

/**
 * The command paths commandsFor() registers for each argument list, and every command's paths,
 * from the built dist/cli.js in a child process (vitest's resolver picks clipanion's ESM build,
 * which Node itself cannot load).
 */
function registered(argLists: string[][]): { all: string[][]; picked: string[][] } {
  const script = `
    import { commandsFor } from './dist/cli.js';
    const paths = (commands) => commands.flatMap((c) => c.paths.map((p) => p.join(' ')));
    const all = await commandsFor([]);
    const picked = await Promise.all(JSON.parse(process.argv[1]).map(async (args) => paths(await commandsFor(args))));
    let reachable = true;
    for (const c of all) for (const p of c.paths) reachable &&= (await commandsFor(p)).includes(c);
    process.stdout.write(JSON.stringify({ all: paths(all), picked, reachable }));`;
  const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(argLists)], { cwd: ROOT, encoding: 'utf8' }));
  expect(out.reachable).toBe(true);
  return { all: out.all, picked: out.picked };
}

describe('the command line', () => {
  it('registers only the commands of the first word, or all of them when it names none, and every command is reachable', () => {
    const { all, picked } = registered([['backup', '/srv', '--host', 'a'], ['key', 'list'], [], ['--help'], ['--version'], ['bakup']]);
    expect(all.length).toBeGreaterThan(20);
    expect(picked[0]).toEqual(['backup']);
    expect([...picked[1]!].sort()).toEqual(['key add', 'key list', 'key passwd', 'key remove']);
    for (const list of picked.slice(2)) expect(list).toEqual(all);
  });

  it('prints every command in the general help, one command in its own help, and suggestions for a typo', async () => {
    const { all } = registered([]);
    const help = await bh(['--help']);
    expect(help.code).toBe(0);
    for (const path of all) expect(help.stdout).toContain(`bh ${path}`);
    const backupHelp = await bh(['backup', '--help']);
    expect(backupHelp.code).toBe(0);
    expect(backupHelp.stdout).toContain('bh backup');
    expect(backupHelp.stdout).not.toContain('bh restore');
    const typo = await bh(['bakup']);
    expect(typo.code).not.toBe(0);
    expect(typo.stdout + typo.stderr).toContain('bh backup');
  });
});

const ESC = '\x1b';

/**
 * What `bh ARGS` prints on a pseudo-terminal (util-linux script), as a user at a terminal runs
 * it, whatever its exit code. The terminal type is fixed, so colours depend on bh alone.
 */
function onTerminal(args: string[], env: Record<string, string> = {}): Promise<string> {
  const command = [process.execPath, BH, ...args].map((word) => `'${word}'`).join(' ');
  // A user's terminal: Node counts colours from TERM, and as 2 (none for us) whenever CI is set.
  const options = { cwd: ROOT, env: { ...process.env, TERM: 'xterm-256color', NO_COLOR: undefined, FORCE_COLOR: undefined, CI: undefined, ...env } };
  return new Promise((resolve) => execFile('script', ['-q', '-e', '-c', command, '/dev/null'], options, (_error, stdout) => resolve(stdout)));
}

describe('colours', () => {
  it('help and usage errors are coloured on a terminal only, and never with NO_COLOR', async () => {
    const colourful = { TERM: 'xterm-256color', FORCE_COLOR: undefined, NO_COLOR: undefined };
    const piped = await bh(['prune', '--help'], { env: colourful });
    expect(piped.code).toBe(0);
    expect(piped.stdout).toContain('bh prune');
    expect(piped.stdout).not.toContain(ESC);
    const pipedError = await bh(['prune', '--no-such-option'], { env: colourful });
    expect(pipedError.code).toBe(1);
    expect(pipedError.stdout + pipedError.stderr).toContain('--no-such-option');
    expect(pipedError.stdout + pipedError.stderr).not.toContain(ESC);
    const generalHelp = await bh(['--help'], { env: colourful });
    expect(generalHelp.stdout).not.toContain(ESC);

    expect(await onTerminal(['prune', '--help'])).toContain(ESC);
    const noColor = await onTerminal(['prune', '--help'], { NO_COLOR: '1' });
    expect(noColor).toContain('bh prune');
    expect(noColor).not.toContain(ESC);
    const noColorError = await onTerminal(['prune', '--no-such-option'], { NO_COLOR: '1' });
    expect(noColorError).toContain('--no-such-option');
    expect(noColorError).not.toContain(ESC);
  });
});

describe('options shared by the commands', () => {
  let tmp: string;
  let repo: TestRepo;
  /** One source directory and snapshot per host; c's is the newest. */
  const sources: Record<string, string> = {};
  const snapshots: Record<string, string> = {};
  /** Local time is UTC for every bh here, so recorded times are predictable. */
  const ENV = { BH_PASSWORD: 'options', TZ: 'UTC' };

  beforeAll(async () => {
    tmp = await makeTempDir('bh-cli-options-');
    repo = await initRepoAt(join(tmp, 'repo'), ENV);
    for (const [i, host] of ['a', 'b', 'c'].entries()) {
      sources[host] = await randomFilesDir(tmp, 2, 1000 + i);
      snapshots[host] = await backupSnapshot(repo, sources[host]!, ['--host', host, '--time', `2024-03-0${i + 1} 12:00:00`]);
    }
  });
  afterAll(() => removeDir(tmp));

  it('--time takes "YYYY-MM-DD HH:MM:SS" and YYYYMMDD_HHMMSS, on backup and on restore', async () => {
    const older = await backupSnapshot(repo, sources['a']!, ['--host', 'time', '--time', '20200102_030405']);
    const newer = await backupSnapshot(repo, sources['b']!, ['--host', 'time', '--time', '2020-01-03 04:05:06']);
    const listed = JSON.parse(expectOk(await repo.run(['snapshots', '--host', 'time', '--json']), 'snapshots').stdout) as { id: string; time: string }[];
    expect(listed.map((s) => [s.id, s.time])).toEqual([
      [older, '2020-01-02T03:04:05.000Z'],
      [newer, '2020-01-03T04:05:06.000Z'],
    ]);
    for (const [time, source, other] of [
      ['20200103_000000', sources['a']!, sources['b']!],
      ['2020-01-03 04:05:06', sources['b']!, sources['a']!],
    ] as const) {
      const target = join(tmp, `time-${time.replace(/\W/g, '')}`);
      expectOk(await repo.run(['restore', 'latest', '--host', 'time', '--time', time, '--target', target]), `restore --time ${time}`);
      expect(await compareTrees(source, join(target, source))).toEqual([]);
      expect(existsSync(join(target, other))).toBe(false);
    }
  });

  it('--host is repeatable wherever snapshots are filtered: any of the hosts', async () => {
    const hostsOf = async (args: string[]): Promise<string[]> => {
      const r = expectOk(await repo.run([...args, '--json']), args.join(' '));
      return (JSON.parse(r.stdout) as { host: string }[]).map((s) => s.host);
    };
    expect(await hostsOf(['snapshots', '--host', 'a', '--host', 'b'])).toEqual(['a', 'b']);
    expect(await hostsOf(['snapshots', '--host', 'c', '--host', 'a', '--host', 'nowhere'])).toEqual(['a', 'c']);

    const target = join(tmp, 'hosts-restore');
    expectOk(await repo.run(['restore', 'latest', '--host', 'a', '--host', 'b', '--target', target]), 'restore');
    expect(await compareTrees(sources['b']!, join(target, sources['b']!))).toEqual([]);
    expect(existsSync(join(target, sources['c']!))).toBe(false);

    const ls = expectOk(await repo.run(['ls', 'latest', '--host', 'a', '--host', 'b', '--json']), 'ls');
    expect(ls.stdout).toContain(`${sources['b']!}/f0`);
    expect(ls.stdout).not.toContain(sources['c']!);

    const diff = expectOk(await repo.run(['diff', snapshots['a']!, 'latest', '--host', 'a', '--host', 'b', '--json']), 'diff');
    expect(diff.stdout).toContain(`"target_snapshot":"${snapshots['b']}"`);

    const stats = JSON.parse(expectOk(await repo.run(['stats', '--host', 'a', '--host', 'b', '--json']), 'stats').stdout) as { snapshots_count: number };
    expect(stats.snapshots_count).toBe(2);

    const found = JSON.parse(expectOk(await repo.run(['find', 'f1', '--host', 'b', '--host', 'c', '--json']), 'find').stdout) as { snapshot: string }[];
    expect(found.map((g) => g.snapshot)).toEqual([snapshots['b'], snapshots['c']]);

    const copyTarget = await initRepoAt(join(tmp, 'copy-target'), ENV);
    expectOk(await copyTarget.run(['copy', '--from-repo', repo.path, '--host', 'a', '--host', 'c'], { env: { BH_FROM_PASSWORD: ENV.BH_PASSWORD } }), 'copy');
    const copied = JSON.parse(expectOk(await copyTarget.run(['snapshots', '--json']), 'snapshots of the copy').stdout) as { host: string }[];
    expect(copied.map((s) => s.host)).toEqual(['a', 'c']);
  });

  it('single JSON documents (snapshots, stats, key list, cat, find) are one parseable document', async () => {
    const documents: [string[], 'line' | 'indented'][] = [
      [['snapshots', '--json'], 'line'],
      [['stats', '--json'], 'line'],
      [['stats', '--mode', 'raw-data', '--json'], 'line'],
      [['key', 'list', '--json'], 'line'],
      [['find', 'f0', '--json'], 'line'],
      [['cat', 'snapshot', snapshots['a']!], 'indented'],
      [['cat', 'snapshot', snapshots['a']!, '--json'], 'line'],
    ];
    for (const [args, form] of documents) {
      const r = expectOk(await repo.run(args), args.join(' '));
      expect(r.stdout.endsWith('\n'), args.join(' ')).toBe(true);
      expect(() => JSON.parse(r.stdout), describeRun(args.join(' '), r)).not.toThrow();
      expect(r.stdout.trimEnd().includes('\n'), args.join(' ')).toBe(form === 'indented');
    }
    const record = JSON.parse(expectOk(await repo.run(['cat', 'snapshot', snapshots['a']!]), 'cat').stdout) as { host: string };
    expect(record.host).toBe('a');
  });
});
