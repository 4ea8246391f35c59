/**
 * Ctrl-C or SIGTERM stops a restore promptly (issue 11, item 5): it does not first finish the
 * reads and writes in flight (up to 32 MiB). The restore is slowed by --limit-download so that
 * most of its data is still in flight (read, waiting on the bandwidth limit) when the signal
 * arrives; then what is in the target afterwards shows how far it went, in bytes, not in time.
 *
 * Worker threads: a snapshot of less than 64 MiB is restored on the main thread alone, unless
 * BH_WORKERS says otherwise (README "Performance knobs"), so BH_WORKERS=1 puts this small restore
 * on the worker path (one reader thread), BH_WORKERS=0 keeps it on the main thread.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestRepo, backupSnapshot, describeRun, expectOk, hashTree, initRepo, makeTempDir, removeDir, signal, startRunning, waitFor } from './helpers/cli.js';
import { compareTrees } from './helpers/tree-compare.js';

const KiB = 1024;
const FILES = 64;
const FILE_SIZE = 256 * KiB;
const TOTAL = FILES * FILE_SIZE;
/** 2 MiB/s: the 16 MiB take about 8 s to restore; the burst lets the first 512 KiB through at once. */
const LIMIT_KIBS = '2048';

let tmp: string;
let repo: TestRepo;
let src: string;
let sourceHashes: Map<string, string>;
let snapshotId: string;

beforeAll(async () => {
  tmp = await makeTempDir('bh-restore-interrupt-');
  repo = await initRepo(tmp);
  src = join(tmp, 'src');
  mkdirSync(src);
  for (let i = 0; i < FILES; i++) writeFileSync(join(src, `f${String(i).padStart(2, '0')}.bin`), randomBytes(FILE_SIZE));
  sourceHashes = await hashTree(src);
  snapshotId = await backupSnapshot(repo, src);
});

afterAll(() => removeDir(tmp));

/** Bytes of file content on disk below `dir` (allocated blocks: holes and files just created count nothing). */
function bytesWritten(dir: string): number {
  let bytes = 0;
  let entries;
  try {
    entries = readdirSync(dir, { recursive: true, withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    // A file may be removed between the listing and the lstat.
    const st = lstatSync(join(entry.parentPath, entry.name), { throwIfNoEntry: false });
    bytes += (st?.blocks ?? 0) * 512;
  }
  return bytes;
}

describe('interrupting a slowed restore', () => {
  const cases = [
    { workers: '0', signalName: 'SIGINT' },
    { workers: '1', signalName: 'SIGINT' },
    { workers: '1', signalName: 'SIGTERM' },
  ] as const;
  for (const { workers, signalName } of cases) {
    it(`${signalName} with BH_WORKERS=${workers}: exit 130 soon after, the data in flight is not written, no partial file is left`, async () => {
      const target = join(tmp, `target-${workers}-${signalName}`);
      const root = join(target, src);
      const running = startRunning(['restore', snapshotId, '--target', target, '--limit-download', LIMIT_KIBS], { env: { ...repo.env, BH_WORKERS: workers } });
      // As soon as the first bytes land: everything else is read or queued by then, waiting on the limit.
      await waitFor(running, () => bytesWritten(root) > 0, 'the first bytes restored');
      const atSignal = bytesWritten(root);
      signal(running, signalName);
      const r = await running.done;
      expect(r.code, describeRun('interrupted restore', r)).toBe(130);
      expect(r.stderr).toContain('bh: interrupted');
      expect(readdirSync(join(repo.path, 'locks')), 'the lock is released').toEqual([]);

      // What is left is whole and right (unfinished files were removed), and far from all of it:
      // the restore stopped instead of writing the data it had in flight.
      const restored = await hashTree(root);
      for (const [path, hash] of restored) expect(hash, `${path} was left behind with wrong content`).toBe(sourceHashes.get(path));
      const restoredBytes = restored.size * FILE_SIZE;
      expect(restoredBytes, `restored ${restoredBytes} of ${TOTAL} bytes (${atSignal} on disk at the signal)`).toBeLessThanOrEqual(TOTAL / 4);

      // Restoring again into the same target completes it.
      expectOk(await repo.run(['restore', snapshotId, '--target', target]), 'restore after the interrupt');
      expect(await compareTrees(src, root)).toEqual([]);
      await removeDir(target);
    });
  }
});
