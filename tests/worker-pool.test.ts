/**
 * The one worker pool (src/repo/worker-pool.ts), on real worker threads running
 * tests/fixtures/pool-worker.mjs (whose worker side is the pool's own answerRequests, from the
 * build the test setup made):
 * - answers come back to their requests, in order, and transferred buffers move both ways;
 * - a request that throws fails alone; a worker that exits or dies of an uncaught exception
 *   fails the requests it holds and every later one with an error naming the pool and the
 *   cause, instead of leaving them waiting;
 * - workers start one at a time as the load needs, or all at once (eager);
 * - with perWorker, requests wait in the pool and are still answered in order;
 * - close() lets each worker answer a farewell first, then fails later requests;
 * - the streaming form delivers every message with its worker and stops once;
 * - a missing build is named with the command that makes it; BH_WORKERS is parsed as documented;
 * - bh's file chunker, whose workers die as they start (key material they cannot load): the
 *   file in progress and later ones fail with the cause, and a backup stops with it instead of
 *   reporting every file as unreadable and saving a snapshot without them.
 *
 * bh's own pools are exercised through the real CLI by the backup, restore and check tests.
 */
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { entryStatOf } from '../src/fsx/index.js';
import type { MasterKeys } from '../src/repo/crypto.js';
import type { IndexedRepository } from '../src/repo/repository.js';
import { type PooledWorker, RequestPool, WorkerFailedError, WorkerPool, workerCount, workerScript } from '../src/repo/worker-pool.js';
import { type ArchiveError, Archiver } from '../src/snapshot/archiver.js';
import { FileChunkerPool } from '../src/snapshot/file-chunker.js';
import { initRepo, makeTempDir, randomFilesDir, removeDir } from './helpers/cli.js';
import { openLibraryRepo } from './helpers/repo-lib.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/pool-worker.mjs', import.meta.url));

type Request = { op: 'echo'; value: number } | { op: 'bytes'; bytes: Uint8Array } | { op: 'fail'; message: string } | { op: 'crash' } | { op: 'exit' };
type Response = { value: number; index: number } | Uint8Array | string;

const pools: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

function requestPool(size: number, options: { eager?: boolean; perWorker?: number } = {}): RequestPool<Request, Response> {
  const pool = new RequestPool<Request, Response>({ name: 'test', script: FIXTURE, size, workerData: (index) => ({ answer: true, index }), ...options });
  pools.push(pool);
  return pool;
}

const echo = (value: number): Request => ({ op: 'echo', value });

describe('RequestPool', () => {
  it('answers each request, in order, and moves the buffers of the transfer lists both ways', async () => {
    const pool = requestPool(2);
    const sent = [1, 2, 3, 4, 5].map((n) => new Uint8Array(1000).fill(n));
    const answers = sent.map((bytes) => pool.request({ op: 'bytes', bytes }, [bytes.buffer]));
    // Moved, not copied: the caller's buffers are detached.
    expect(sent.map((bytes) => bytes.byteLength)).toEqual([0, 0, 0, 0, 0]);
    const received = (await Promise.all(answers)) as Uint8Array[];
    expect(received.map((bytes) => [bytes.length, bytes[0], bytes[999]])).toEqual([1, 2, 3, 4, 5].map((n) => [1000, n, n]));
    expect(await Promise.all([7, 8, 9].map((n) => pool.request(echo(n))))).toEqual([7, 8, 9].map((value) => ({ value, index: expect.any(Number) })));
  });

  it('a request that throws fails alone: the worker answers the next', async () => {
    const pool = requestPool(1);
    const failing = pool.request({ op: 'fail', message: 'no such thing' });
    const next = pool.request(echo(1));
    await expect(failing).rejects.toThrow(/^no such thing$/);
    expect(await next).toEqual({ value: 1, index: 0 });
  });

  it('a worker that exits fails the requests it holds and every later one, naming the pool and the cause', async () => {
    const pool = requestPool(1);
    const exiting = pool.request({ op: 'exit' });
    const queuedBehind = pool.request(echo(1));
    const expected = "bh's test worker thread failed: it exited with code 3";
    await expect(exiting).rejects.toThrow(expected);
    await expect(queuedBehind).rejects.toThrow(expected);
    await expect(queuedBehind).rejects.toBeInstanceOf(WorkerFailedError);
    await expect(pool.request(echo(2))).rejects.toThrow(expected);
  });

  it('a worker that dies of an uncaught exception fails what it holds, and the pool', async () => {
    const pool = requestPool(1);
    const crashing = pool.request({ op: 'crash' });
    const queuedBehind = pool.request(echo(1));
    const [crashed, behind] = await Promise.allSettled([crashing, queuedBehind]);
    // The answer the worker sent just before it broke may reach the pool before or after the
    // report of its death (Node orders neither against the other: Node 24 often reports first).
    if (crashed.status === 'fulfilled') expect(crashed.value).toBe('crashing');
    else expect(String(crashed.reason)).toContain("bh's test worker thread failed: the worker broke");
    expect(behind.status).toBe('rejected');
    expect(String((behind as PromiseRejectedResult).reason)).toContain("bh's test worker thread failed: the worker broke");
    await expect(pool.request(echo(2))).rejects.toThrow("bh's test worker thread failed: the worker broke");
  });

  it('starts a worker only when those started are all busy; eager starts them all', async () => {
    const lazy = requestPool(3);
    // One at a time: the first worker is idle each time, so it does it all.
    for (const n of [1, 2, 3]) expect(await lazy.request(echo(n))).toEqual({ value: n, index: 0 });
    // At once: each finds the ones before busy.
    const together = await Promise.all([4, 5, 6, 7].map((n) => lazy.request(echo(n))));
    expect(together.map((answer) => (answer as { index: number }).index)).toEqual([0, 1, 2, 0]);

    // Eager: the workers exist before any request, and the least loaded (the first of equals) gets it.
    const eager = requestPool(3, { eager: true });
    expect(await eager.request(echo(1))).toEqual({ value: 1, index: 0 });
  });

  it('perWorker: requests beyond it wait in the pool, and are answered in order', async () => {
    const pool = requestPool(2, { eager: true, perWorker: 1 });
    const values = Array.from({ length: 12 }, (_, i) => i);
    const answers = await Promise.all(values.map((n) => pool.request(echo(n))));
    expect(answers.map((answer) => (answer as { value: number }).value)).toEqual(values);
    // Both workers took part.
    expect(new Set(answers.map((answer) => (answer as { index: number }).index))).toEqual(new Set([0, 1]));
  });

  it('close() lets each worker answer the farewell first, then fails later requests', async () => {
    const pool = requestPool(2, { eager: true });
    await pool.close(echo(0));
    await expect(pool.request(echo(1))).rejects.toThrow("bh's test workers were stopped");
  });

  it('a missing build is named, with the command that makes it', () => {
    const script = workerScript('repo/no-such-worker.js');
    expect(script).toMatch(/\/dist\/repo\/no-such-worker\.js$/);
    expect(() => new RequestPool({ name: 'test', script, size: 1, workerData: () => undefined })).toThrow(`bh's worker script ${script} is missing: build bh first ('npm run build')`);
  });
});

describe('WorkerPool (messages of the user’s own)', () => {
  it('delivers every message with the worker that sent it, and stops once when a worker dies', async () => {
    const received: { part: number; index: number; from: number }[] = [];
    const stops: Error[] = [];
    let done: () => void;
    const allReceived = new Promise<void>((resolve) => (done = resolve));
    let stopped: () => void;
    const firstStop = new Promise<void>((resolve) => (stopped = resolve));
    const pool = new WorkerPool<{ count: number } | { op: 'exit' }, { part: number; index: number }>({
      name: 'streaming',
      script: FIXTURE,
      size: 2,
      eager: true,
      workerData: (index) => ({ answer: false, index }),
      onMessage: (worker: PooledWorker, message) => {
        received.push({ ...message, from: worker.index });
        if (received.length === 6) done();
      },
      onStop: (error) => {
        stops.push(error);
        stopped();
      },
    });
    pools.push(pool);
    const [first, second] = pool.started;
    pool.post(first!, { count: 2 });
    pool.post(second!, { count: 4 });
    await allReceived;
    // Each worker's own messages, in its order, attributed to it.
    expect(received.filter((m) => m.from === 0).map((m) => [m.index, m.part])).toEqual([[0, 0], [0, 1]]);
    expect(received.filter((m) => m.from === 1).map((m) => [m.index, m.part])).toEqual([[1, 0], [1, 1], [1, 2], [1, 3]]);

    pool.post(first!, { op: 'exit' });
    await firstStop;
    expect(stops[0]).toBeInstanceOf(WorkerFailedError);
    expect(stops[0]!.message).toBe("bh's streaming worker thread failed: it exited with code 3");
    expect(pool.failure).toBe(stops[0]);
    await pool.close();
    expect(stops).toHaveLength(1);
  });
});

describe('workerCount', () => {
  const saved = process.env['BH_WORKERS'];
  afterEach(() => {
    if (saved === undefined) delete process.env['BH_WORKERS'];
    else process.env['BH_WORKERS'] = saved;
  });

  it('BH_WORKERS when set (a whole number, at least 0), else the default given', () => {
    const count = (value: string | undefined): number => {
      if (value === undefined) delete process.env['BH_WORKERS'];
      else process.env['BH_WORKERS'] = value;
      return workerCount(5);
    };
    expect([count(undefined), count(''), count('3'), count('2.7'), count('0'), count('-2'), count('many')]).toEqual([5, 5, 3, 2, 0, 0, 0]);
  });
});

describe("bh's pools when their workers die", () => {
  let work: string;
  let indexed: IndexedRepository;
  let source: string;
  beforeAll(async () => {
    work = await makeTempDir('bh-pool-');
    const repo = await initRepo(work);
    source = await randomFilesDir(work, 3, 1000);
    const library = await openLibraryRepo(repo);
    indexed = await library.loadIndex(await library.listSnapshots());
  });
  afterAll(async () => {
    await removeDir(work);
  });

  /** The repository's keys, except for the key material workers get: 5 bytes, which a worker cannot load, so it dies as it starts. */
  function withBrokenWorkerKeys(): MasterKeys {
    return Object.create(indexed.keys, { serialize: { value: () => Buffer.alloc(5) } }) as MasterKeys;
  }
  const DIED = "bh's file chunker worker thread failed: sealed key material has 5 bytes, expected 32 or 96";

  it('the file chunker fails the file in progress and every later one with the cause', async () => {
    const { min, avg, max } = indexed.repo.config.chunker;
    const chunker = new FileChunkerPool(withBrokenWorkerKeys(), indexed.repo.config.compression, { min, avg, max }, undefined, 2);
    const path = Buffer.from(join(source, 'f0'));
    const scanned = entryStatOf(lstatSync(path, { bigint: true }));
    const chunk = (): Promise<unknown> => chunker.chunk(path, scanned, { seal: true, noAtime: false }, () => Promise.resolve());
    try {
      await expect(chunk()).rejects.toThrow(DIED);
      await expect(chunk()).rejects.toBeInstanceOf(WorkerFailedError);
    } finally {
      await chunker.close();
    }
  });

  it('a backup whose chunk workers die stops with that error, rather than leaving every file out of its snapshot', async () => {
    const broken = Object.create(indexed, { keys: { value: withBrokenWorkerKeys() } }) as IndexedRepository;
    const errors: ArchiveError[] = [];
    const archiver = new Archiver(broken, { paths: [source], exclude: () => false, onError: (error) => errors.push(error) });
    try {
      await expect(archiver.run()).rejects.toThrow(DIED);
      expect(errors).toEqual([]);
    } finally {
      await archiver.close();
    }
  });
});
