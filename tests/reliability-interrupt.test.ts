/**
 * Ctrl-C (README "Exit codes": 130 "interrupted"): an interrupted backup stops cleanly. It makes
 * what it already packed durable (so the next run reuses it), writes no snapshot, releases its
 * lock and exits 130; the repository checks clean. An interrupted restore exits 130 too and
 * leaves no partial file that looks complete.
 *
 * One source tree (~64 MiB of incompressible data) is generated once. Signals are sent once the
 * backup's `--json` status lines show data being stored (or, for restore, once the first file
 * appears in the target), not after a fixed delay.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun, initRepo, makeTempDir, removeDir, signal, startRunning, waitFor, type RunResult, type Running, type TestRepo, hashTree } from './helpers/cli.js';

const MiB = 1024 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;

let work: string;
let source: string;
let sourceHashes: Map<string, string>;
let sourceBytes = 0;
let repo: TestRepo;


function namesIn(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => HEX64.test(n));
  } catch {
    return [];
  }
}

function start(args: string[], env: Record<string, string> = {}): Running {
  return startRunning(args, { env: { ...repo.env, ...env } });
}

interface StatusLine {
  message_type: string;
  bytes_read?: number;
  bytes_added?: number;
}

function jsonLines(text: string): StatusLine[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{') && l.endsWith('}'))
    .map((l) => JSON.parse(l) as StatusLine);
}

/** Waits for a `--json` status line showing data read (and so queued for storing), as a user watching progress would. */
function waitForReadData(running: Running): Promise<void> {
  return waitFor(running, () => jsonLines(running.stdout()).some((l) => l.message_type === 'status' && (l.bytes_read ?? 0) > 0), 'a status line with data read');
}

function summaryOf(r: RunResult): { snapshot_id: string; bytes_added: number; total_bytes: number } {
  const summary = jsonLines(r.stdout).find((l) => l.message_type === 'summary');
  if (!summary) throw new Error(`no summary: ${describeRun('backup', r)}`);
  return summary as unknown as { snapshot_id: string; bytes_added: number; total_bytes: number };
}

beforeAll(async () => {
  work = await makeTempDir('bh-interrupt-');
  source = join(work, 'src');
  for (let i = 0; i < 16; i++) {
    const dir = join(source, `part${i % 3}`);
    await mkdir(dir, { recursive: true });
    const size = 4 * MiB + 1237 * i;
    const pieces: Buffer[] = [];
    for (let left = size; left > 0; left -= MiB) pieces.push(randomBytes(Math.min(MiB, left)));
    await writeFile(join(dir, `file${i}.bin`), Buffer.concat(pieces));
    sourceBytes += size;
  }
  sourceHashes = await hashTree(source);
  repo = await initRepo(join(work, 'r'));
});

afterAll(async () => {
  if (work) await removeDir(work);
});

describe('interrupting bh', () => {
  let snapshotId: string;

  it('SIGINT during a backup: exit 130, no snapshot, lock released, check passes, the next backup reuses the data', async () => {
    const running = start(['backup', '--json', source]);
    await waitForReadData(running);
    signal(running, 'SIGINT');
    const r = await running.done;
    expect(r.code, describeRun('interrupted backup', r)).toBe(130);
    expect(r.stderr).toMatch(/interrupted/);
    expect(jsonLines(r.stdout).some((l) => l.message_type === 'summary')).toBe(false);
    expect(namesIn(join(repo.path, 'snapshots')), 'an interrupted backup must not write a snapshot').toEqual([]);
    expect(readdirSync(join(repo.path, 'locks')), 'the interrupted backup must release its lock').toEqual([]);
    // What was packed before the interrupt was made durable (packs and an index file).
    expect(namesIn(join(repo.path, 'index')).length).toBeGreaterThanOrEqual(1);

    const check = await repo.run(['check', '--read-data']);
    expect(check.code, describeRun('check', check)).toBe(0);

    const next = await repo.run(['backup', '--json', source]);
    expect(next.code, describeRun('backup after interrupt', next)).toBe(0);
    const summary = summaryOf(next);
    expect(summary.total_bytes).toBe(sourceBytes);
    expect(summary.bytes_added, 'the next backup must reuse what the interrupted one stored').toBeLessThan(summary.total_bytes);
    snapshotId = summary.snapshot_id;
    expect(namesIn(join(repo.path, 'snapshots'))).toEqual([snapshotId]);
    expect(readdirSync(join(repo.path, 'locks'))).toEqual([]);
  });

  it('SIGTERM during a backup behaves the same: exit 130, no snapshot, no lock left', async () => {
    // --mode full reads and chunks every file again (all of it deduplicated).
    const running = start(['backup', '--json', '--mode', 'full', source]);
    await waitForReadData(running);
    signal(running, 'SIGTERM');
    const r = await running.done;
    expect(r.code, describeRun('terminated backup', r)).toBe(130);
    expect(r.stderr).toMatch(/interrupted/);
    expect(namesIn(join(repo.path, 'snapshots'))).toEqual([snapshotId]);
    expect(readdirSync(join(repo.path, 'locks'))).toEqual([]);
  });

  it('SIGINT twice exits at once; the lock it could not release does not block the next backup', async () => {
    const running = start(['backup', '--json', '--mode', 'full', source]);
    await waitForReadData(running);
    signal(running, 'SIGINT');
    // The second Ctrl-C once the first was taken in (two signals sent at once may merge into one).
    let ended = false;
    void running.done.then(() => (ended = true));
    while (!ended && !running.stderr().includes('stopping')) await new Promise((resolve) => setTimeout(resolve, 1));
    running.child.kill('SIGINT');
    const r = await running.done;
    expect(r.code, describeRun('twice interrupted backup', r)).toBe(130);
    expect(namesIn(join(repo.path, 'snapshots'))).toEqual([snapshotId]);
    const check = await repo.run(['check']);
    expect(check.code, describeRun('check', check)).toBe(0);
    const next = await repo.run(['backup', '--json', source]);
    expect(next.code, describeRun('backup after double interrupt', next)).toBe(0);
    expect(summaryOf(next).bytes_added).toBeLessThan(MiB);
  });

  it('SIGINT during a restore: exit 130, and no partial file is left looking complete', async () => {
    const target = join(work, 'restore');
    const running = start(['restore', snapshotId, '--target', target]);
    const restoredRoot = join(target, source);
    const anyFile = (): boolean => {
      try {
        return readdirSync(restoredRoot, { recursive: true, withFileTypes: true }).some((e) => e.isFile());
      } catch {
        return false;
      }
    };
    await waitFor(running, anyFile, 'the first restored file');
    signal(running, 'SIGINT');
    const r = await running.done;
    expect(r.code, describeRun('interrupted restore', r)).toBe(130);
    expect(r.stderr).toMatch(/interrupted/);
    // Files that are there are whole and right; the one being written was removed.
    const restored = await hashTree(restoredRoot);
    expect(restored.size).toBeLessThan(sourceHashes.size);
    for (const [path, hash] of restored) expect(hash, `${path} was left behind with wrong content`).toBe(sourceHashes.get(path));

    // The repository is untouched: a full restore afterwards matches the source.
    const again = join(work, 'restore-again');
    const full = await repo.run(['restore', snapshotId, '--target', again]);
    expect(full.code, describeRun('restore', full)).toBe(0);
    expect(await hashTree(join(again, source))).toEqual(sourceHashes);
  });
});
