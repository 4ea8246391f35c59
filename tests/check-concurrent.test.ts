/**
 * Issue 12, item 1: `bh check` holds only a shared lock, so backups finish while it runs. It
 * lists the snapshots before it loads the index (docs/FORMAT.md §10, read order): a snapshot it
 * sees then has its index file in place. Read the other way round, a backup finishing between
 * the two reads yields a false "data blob … is not in any index".
 *
 * Real bh processes: two backup loops (each backs up a small file whose content changes every
 * time, so every snapshot needs a new data blob, in a new pack and index file) run while check
 * runs again and again. Every check must exit 0 with no error line.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { backupSnapshot, describeRun, initRepo, makeTempDir, removeDir, type RunResult, type TestRepo } from './helpers/cli.js';

/** Check runs at least; and at least this many backups must finish while checks run. */
const CHECK_RUNS = 20;
const BACKUPS_DURING_CHECKS = 20;
const BACKUP_LOOPS = 2;

let work: string;
let repo: TestRepo;

beforeAll(async () => {
  work = await makeTempDir('bh-check-concurrent-');
  repo = await initRepo(work);
});

afterAll(async () => {
  if (work) await removeDir(work);
});

it(`check passes while backups finish beside it (>= ${CHECK_RUNS} runs)`, async () => {
  let stop = false;
  let finishedDuringChecks = 0;
  let checking = false;
  /** Backs up its own folder, its file changed each time, until told to stop; resolves to the number of backups. */
  const backupLoop = async (loop: number): Promise<number> => {
    const source = join(work, `source-${loop}`);
    await mkdir(source, { recursive: true });
    let backups = 0;
    while (!stop) {
      await writeFile(join(source, 'changing.bin'), randomBytes(4096));
      await backupSnapshot(repo, source, ['--host', `loop-${loop}`]);
      backups++;
      if (checking) finishedDuringChecks++;
    }
    return backups;
  };

  // One snapshot before any check, so the first check has something to walk.
  await mkdir(join(work, 'first'));
  await writeFile(join(work, 'first', 'file'), randomBytes(4096));
  await backupSnapshot(repo, join(work, 'first'));

  const loops = Array.from({ length: BACKUP_LOOPS }, (_, i) => backupLoop(i));
  const checks: RunResult[] = [];
  let backups = 0;
  try {
    checking = true;
    while (checks.length < CHECK_RUNS || finishedDuringChecks < BACKUPS_DURING_CHECKS) {
      const result = await repo.run(['check']);
      checks.push(result);
      if (result.code !== 0 || /^error/m.test(result.stdout + result.stderr)) break;
    }
    checking = false;
  } finally {
    stop = true;
    backups = (await Promise.all(loops)).reduce((a, b) => a + b, 0);
  }

  const failed = checks.filter((r) => r.code !== 0 || /^error/m.test(r.stdout + r.stderr));
  expect(failed.map((r) => describeRun(`check ${checks.indexOf(r) + 1} of ${checks.length}`, r))).toEqual([]);
  expect(checks.length).toBeGreaterThanOrEqual(CHECK_RUNS);
  expect(finishedDuringChecks).toBeGreaterThanOrEqual(BACKUPS_DURING_CHECKS);
  // Sound after it all, and every snapshot is there: the first, and one per backup of the loops.
  const last = await repo.run(['check', '--read-data']);
  expect(last.code, describeRun('final check', last)).toBe(0);
  const listed = await repo.run(['snapshots', '--json']);
  expect((JSON.parse(listed.stdout) as unknown[]).length).toBe(1 + backups);
}, 300_000);
