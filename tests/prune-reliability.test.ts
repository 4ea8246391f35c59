/**
 * Prune under stress, through the real CLI:
 * - kill -9 at each step of its execution (frozen there by BH_TEST_PAUSE_AT, then SIGKILLed)
 *   and after random short delays: afterwards every snapshot restores byte-exact, check
 *   --read-data passes, and the next prune completes;
 * - backups of three hosts running while a fourth process runs `forget --prune` in a loop, on a
 *   local and on an S3 repository: afterwards check --read-data passes and every remaining
 *   snapshot restores byte-exact.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupSnapshot, hashTree, initRepo, initRepoAt, makeTempDir, randomFilesDir, removeDir, startBh, type TestRepo } from './helpers/cli.js';
import { startS3Server } from './helpers/s3-server.js';
import { openLibraryRepo } from './helpers/repo-lib.js';

let work: string;
let dirs = 0;

beforeAll(async () => {
  work = await makeTempDir('bh-prune-rel-');
});
afterAll(async () => {
  await removeDir(work);
});

async function removeSnapshot(repo: TestRepo, id: string): Promise<void> {
  await (await openLibraryRepo(repo)).removeFile('snapshot', id);
}

/** Every snapshot restores to exactly what `expected` says its source held. */
async function expectAllRestore(repo: TestRepo, expected: Map<string, { source: string; hashes: Map<string, string> }>): Promise<void> {
  const list = JSON.parse((await repo.run(['snapshots', '--json'])).stdout) as { id: string }[];
  expect(list.length).toBeGreaterThan(0);
  for (const { id } of list) {
    const want = expected.get(id);
    expect(want, `snapshot ${id} is one the test made`).toBeDefined();
    const target = join(work, `restore-${randomBytes(4).toString('hex')}`);
    const result = await repo.run(['restore', id, '--target', target]);
    expect(result.code, result.stderr).toBe(0);
    expect(await hashTree(join(target, want!.source))).toEqual(want!.hashes);
    await rm(target, { recursive: true, force: true });
  }
}

async function expectCheckPasses(repo: TestRepo): Promise<void> {
  const result = await repo.run(['check', '--read-data']);
  expect(result.code, result.stdout + result.stderr).toBe(0);
}

/**
 * A repository where a prune has every kind of work: packs condemned by an earlier prune to
 * delete, a partly used pack to repack, unused packs to condemn.
 */
async function repositoryWithPruneWork(): Promise<{ repo: TestRepo; expected: Map<string, { source: string; hashes: Map<string, string> }> }> {
  const repo = await initRepo(await mkdtemp(join(work, 'r-')));
  const keep = await randomFilesDir(work, 3, 250_000);
  const gone = await randomFilesDir(work, 1, 300_000);
  const first = await backupSnapshot(repo, keep);
  const doomed = await backupSnapshot(repo, gone);
  await removeSnapshot(repo, doomed);
  const condemning = await repo.run(['prune', '--delete-after', '0s']);
  expect(condemning.code, condemning.stderr).toBe(0);
  await rm(join(keep, 'f1'));
  const second = await backupSnapshot(repo, keep);
  await removeSnapshot(repo, first);
  return { repo, expected: new Map([[second, { source: keep, hashes: await hashTree(keep) }]]) };
}

function waitForExit(child: ReturnType<typeof startBh>): Promise<void> {
  return new Promise((resolve) => child.on('close', () => resolve()));
}

describe('prune killed with SIGKILL', () => {
  for (const step of ['repacked', 'index-written', 'old-index-removed', 'deleting']) {
    it(`at step ${step}: nothing a snapshot uses is lost, and the next prune finishes`, async () => {
      const { repo, expected } = await repositoryWithPruneWork();
      const child = startBh(['prune', '--delete-after', '0s', '--max-unused', '0%'], { env: { ...repo.env, BH_TEST_PAUSE_AT: step } });
      let stderr = '';
      const exited = waitForExit(child);
      await new Promise<void>((resolve, reject) => {
        child.stderr!.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (stderr.includes(`bh: test pause at ${step}`)) resolve();
        });
        child.on('close', () => reject(new Error(`prune ended before pausing at ${step}: ${stderr}`)));
      });
      child.kill('SIGKILL');
      await exited;

      await expectCheckPasses(repo);
      await expectAllRestore(repo, expected);
      const next = await repo.run(['prune', '--delete-after', '0s', '--max-unused', '0%', '--json']);
      expect(next.code, next.stderr).toBe(0);
      const last = await repo.run(['prune', '--delete-after', '0s', '--max-unused', '0%', '--json']);
      const summary = JSON.parse(last.stdout.trim().split('\n').pop()!) as { condemn: string[]; delete: string[]; repack: string[]; waiting: string[] };
      // Finished: a further prune finds nothing to condemn, repack or wait for.
      expect([...summary.condemn, ...summary.repack, ...summary.waiting]).toEqual([]);
      await expectCheckPasses(repo);
      await expectAllRestore(repo, expected);
    }, 240_000);
  }

  it('after random short delays', async () => {
    for (let round = 0; round < 3; round++) {
      const { repo, expected } = await repositoryWithPruneWork();
      const child = startBh(['prune', '--delete-after', '0s', '--max-unused', '0%'], { env: repo.env });
      const exited = waitForExit(child);
      await new Promise((resolve) => setTimeout(resolve, 600 + Math.random() * 1500));
      child.kill('SIGKILL');
      await exited;
      await expectCheckPasses(repo);
      await expectAllRestore(repo, expected);
      expect((await repo.run(['prune', '--delete-after', '0s'])).code).toBe(0);
      await expectAllRestore(repo, expected);
    }
  }, 400_000);
});

/**
 * Where the multi-host test runs: a local repository, and an S3 repository on a real
 * S3-protocol server (s3rver behind the test guard, tests/helpers/s3-server.ts).
 */
const SHARED_REPOSITORIES: { label: string; open: () => Promise<{ repo: TestRepo; stop: () => Promise<void> }> }[] = [
  { label: 'local', open: async () => ({ repo: await initRepo(await mkdtemp(join(work, 'r-'))), stop: async () => {} }) },
  {
    label: 'S3',
    open: async () => {
      const server = await startS3Server();
      const repo = await initRepoAt(`s3:${server.bucket}/multi-host`, { ...server.env, BH_PASSWORD: 'correct horse battery staple' });
      return { repo, stop: () => server.stop() };
    },
  },
];

describe.each(SHARED_REPOSITORIES)('three hosts backing up into one $label repository while forget --prune runs in a loop', ({ open }) => {
  it('leaves a repository that check --read-data passes, every remaining snapshot restoring byte-exact', async () => {
    const { repo, stop } = await open();
    try {
      const expected = new Map<string, { source: string; hashes: Map<string, string> }>();
      const shared = randomBytes(400_000);
      const hosts = ['h1', 'h2', 'h3'];
      let backupsRunning = hosts.length;

      const host = async (name: string): Promise<void> => {
        const dir = join(work, `host-${name}-${dirs++}`);
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, 'shared'), shared); // the same on every host: stored once
        for (let round = 0; round < 4; round++) {
          await rm(join(dir, `round-${round - 1}`), { force: true });
          await writeFile(join(dir, `round-${round}`), randomBytes(300_000));
          const hashes = await hashTree(dir);
          const id = await backupSnapshot(repo, dir, ['--host', name]);
          expected.set(id, { source: dir, hashes });
        }
        backupsRunning--;
      };

      // The fourth process: each host keeps its newest snapshot; prune (default two-phase margin)
      // condemns what the forgotten ones alone used, while the backups go on.
      const forgetLoop = async (): Promise<number> => {
        let rounds = 0;
        while (backupsRunning > 0 || rounds < 2) {
          const result = await repo.run(['forget', '--keep-last', '1', '--prune', '--retry-lock', '1m']);
          expect(result.code, result.stderr).toBe(0);
          rounds++;
        }
        return rounds;
      };

      const [rounds] = await Promise.all([forgetLoop(), ...hosts.map(host)]);
      expect(rounds).toBeGreaterThanOrEqual(2);
      // A last forget (the loop's final round may have begun before the last backups ended),
      // then two prunes with nothing running and no margin: whatever was condemned goes now.
      expect((await repo.run(['forget', '--keep-last', '1'])).code).toBe(0);
      for (let i = 0; i < 2; i++) {
        const result = await repo.run(['prune', '--delete-after', '0s']);
        expect(result.code, result.stderr).toBe(0);
      }
      const remaining = JSON.parse((await repo.run(['snapshots', '--json'])).stdout) as { id: string; hostname?: string; host?: string }[];
      expect(remaining).toHaveLength(hosts.length);
      await expectCheckPasses(repo);
      await expectAllRestore(repo, expected);
    } finally {
      await stop();
    }
  }, 600_000);
});
