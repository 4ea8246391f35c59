/**
 * Two storage races of issue 11, through the real CLI on local repositories:
 * - `bh init` run concurrently on one location: config is created exclusively, so exactly one
 *   init wins; the others exit 1 saying a repository appeared meanwhile and take their key
 *   files back, so the repository opens with the winner's password only.
 * - temporary files of killed writes (`data/xx/.tmp-…`): check lists them as notes, prune keeps
 *   the young ones (a write may still be running) and removes those older than the stale time.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STALE_MS } from '../src/repo/lock.js';
import { bh, describeRun, expectOk, initRepo, makeTempDir, removeDir, signal, startRunning, waitFor, type RunResult, type TestRepo } from './helpers/cli.js';

let work: string;

beforeAll(async () => {
  work = await makeTempDir('bh-init-temporaries-');
});
afterAll(async () => {
  await removeDir(work);
});

const LOST_RACE = /a repository appeared at .* meanwhile \(another 'bh init' wrote its config first\)/;
const ALREADY_THERE = /already holds a bh repository/;

const init = (location: string, password: string): Promise<RunResult> => bh(['init', '--json'], { env: { BH_REPO: location, BH_PASSWORD: password } });
const snapshots = (location: string, password: string): Promise<RunResult> => bh(['snapshots', '--json'], { env: { BH_REPO: location, BH_PASSWORD: password } });
const configId = (location: string): string => (JSON.parse(readFileSync(join(location, 'config'), 'utf8')) as { id: string }).id;
const keyFiles = (location: string): string[] => readdirSync(join(location, 'keys'));

describe('concurrent bh init on one location', () => {
  it('an init that loses the race after its first look exits 1 saying a repository appeared, and takes its key file back', async () => {
    const location = join(work, 'paused');
    // The loser passes its first look (no config yet) and creates the folders; frozen then,
    // while it derives its key, it has written neither its key file nor config.
    const loser = startRunning(['init'], { env: { BH_REPO: location, BH_PASSWORD: 'loser password' } });
    await waitFor(loser, () => existsSync(join(location, 'data', 'ff')), 'the folders of the first init');
    expect(existsSync(join(location, 'config'))).toBe(false);

    const winner = expectOk(await init(location, 'winner password'), 'the second init');
    signal(loser, 'SIGCONT');
    const lost = await loser.done;
    expect(lost.code, describeRun('the first init', lost)).toBe(1);
    expect(lost.stderr).toMatch(LOST_RACE);

    expect(winner.stdout).toContain(configId(location));
    expect(keyFiles(location)).toHaveLength(1);
    expectOk(await snapshots(location, 'winner password'), 'snapshots with the winner password');
    expect((await snapshots(location, 'loser password')).code).toBe(12);
  });

  it('8 at once: exactly one exits 0, the others 1; one key file, and the winner\'s password opens it', async () => {
    const location = join(work, 'eight');
    const passwords = Array.from({ length: 8 }, (_, i) => `password ${i}`);
    const results = await Promise.all(passwords.map((password) => init(location, password)));
    const winners = results.flatMap((r, i) => (r.code === 0 ? [i] : []));
    expect(winners, results.map((r, i) => describeRun(`init ${i}`, r)).join('\n')).toHaveLength(1);
    for (const r of results) {
      if (r.code === 0) continue;
      expect(r.code, describeRun('a losing init', r)).toBe(1);
      // Refused by the first look when the winner's config was already there, else by the race.
      expect(r.stderr).toMatch(new RegExp(`${LOST_RACE.source}|${ALREADY_THERE.source}`));
    }
    const winner = winners[0]!;
    expect(results[winner]!.stdout).toContain(configId(location));
    expect(keyFiles(location)).toHaveLength(1);
    expectOk(await snapshots(location, passwords[winner]!), 'snapshots with the winner password');
    expect((await snapshots(location, passwords[(winner + 1) % passwords.length]!)).code).toBe(12);
  });
});

interface PruneSummary {
  temporaries: string[];
  temporaries_young: string[];
  bytes_temporaries: number;
}

interface Finding {
  level: string;
  subject: string;
  message: string;
}

function jsonLines(r: RunResult): Record<string, unknown>[] {
  return r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function prune(repo: TestRepo, args: string[] = []): Promise<PruneSummary> {
  const r = expectOk(await repo.run(['prune', '--json', ...args]), `prune ${args.join(' ')}`);
  return jsonLines(r).find((l) => l['message_type'] === 'summary') as unknown as PruneSummary;
}

/** The findings of `bh check --json`, which must pass (notes are not errors). */
async function checkFindings(repo: TestRepo): Promise<Finding[]> {
  const r = expectOk(await repo.run(['check', '--json']), 'check');
  return jsonLines(r)
    .filter((l) => l['message_type'] === 'finding')
    .map((l) => ({ level: l['level'], subject: l['subject'], message: l['message'] }) as Finding);
}

describe('temporary files of killed writes', () => {
  it('check lists them as notes; prune keeps one younger than the stale time and removes it once older', async () => {
    const repo = await initRepo(await mkdtemp(join(work, 'r-')));
    // What a backup killed while writing a pack leaves: part of the pack, under a temporary
    // name beside where the pack would have gone (mode 0600, as the backend creates it).
    const pack = randomBytes(32).toString('hex');
    const relative = `data/${pack.slice(0, 2)}/.tmp-${randomBytes(12).toString('hex')}`;
    const leftover = join(repo.path, relative);
    await mkdir(join(repo.path, 'data', pack.slice(0, 2)), { recursive: true });
    await writeFile(leftover, randomBytes(200_000), { mode: 0o600 });

    // Just written: a write may still be running.
    const young = (await checkFindings(repo)).filter((f) => f.subject === relative);
    expect(young).toEqual([{ level: 'note', subject: relative, message: expect.stringMatching(/^temporary file of a write in progress or interrupted \(200000 bytes, last written .*\); prune removes it once it is 30 minutes old$/) as unknown }]);
    expect(await prune(repo)).toMatchObject({ temporaries: [], temporaries_young: [relative], bytes_temporaries: 0 });
    expect(existsSync(leftover)).toBe(true);

    // Last written longer ago than the stale time: no running write owns it.
    const old = new Date(Date.now() - STALE_MS - 60_000);
    await utimes(leftover, old, old);
    const stale = (await checkFindings(repo)).filter((f) => f.subject === relative);
    expect(stale).toEqual([{ level: 'note', subject: relative, message: `temporary file of an interrupted write (200000 bytes, last written ${new Date(Math.floor(statSync(leftover).mtimeMs)).toISOString()}); harmless, prune removes it` }]);
    const human = expectOk(await repo.run(['prune', '--dry-run']), 'prune --dry-run');
    expect(human.stdout).toContain('would remove 1 temporary files of interrupted writes (195 KiB)');
    expect(existsSync(leftover)).toBe(true);

    expect(await prune(repo)).toMatchObject({ temporaries: [relative], temporaries_young: [], bytes_temporaries: 200_000 });
    expect(existsSync(leftover)).toBe(false);
  });
});
