/**
 * The retry and throttle decorators around a real LocalBackend in a temp dir. Faults are
 * injected by a wrapper that fails the first k calls of one operation the way a dropped
 * connection (ECONNRESET), an S3 server under load (HTTP 503, as the AWS SDK reports it) or a
 * refused permission would; the files on disk show what really got stored.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlreadyExistsError, type Backend, type FileRef, LocalBackend, NotFoundError } from '../src/backends/index.js';
import { WHOLE } from './helpers/backend-contract.js';
import { BackendOperationError, TransientError, isTransient, retryOptionsFromEnv, withRetry } from '../src/backends/retry.js';
import { withThrottle } from '../src/backends/throttle.js';
import { bh, initRepo, makeTempDir, removeDir } from './helpers/cli.js';
import { compareTrees } from './helpers/tree-compare.js';

let dir: string;
let local: LocalBackend;

beforeAll(async () => {
  dir = await makeTempDir('bh-decorators-');
  local = new LocalBackend(join(dir, 'repo'));
  await local.create();
});

afterAll(async () => {
  await removeDir(dir);
});

type Operation = 'list' | 'stat' | 'read' | 'write' | 'remove';

/** Wraps `inner` so that the first `failures` calls of `operation` throw `makeError()`; counts calls. */
function faulty(inner: Backend, operation: Operation, failures: number, makeError: () => Error): Backend & { calls: number } {
  let left = failures;
  const wrapper = {
    calls: 0,
    location: inner.location,
    list: inner.list.bind(inner),
    stat: inner.stat.bind(inner),
    read: inner.read.bind(inner),
    write: inner.write.bind(inner),
    remove: inner.remove.bind(inner),
    create: inner.create.bind(inner),
    close: inner.close.bind(inner),
  };
  const original = wrapper[operation] as (...args: unknown[]) => Promise<unknown>;
  (wrapper as Record<Operation, unknown>)[operation] = async (...args: unknown[]): Promise<unknown> => {
    wrapper.calls++;
    if (left > 0) {
      left--;
      throw makeError();
    }
    return original(...args);
  };
  return wrapper;
}

const connectionReset = (): Error => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
const serviceUnavailable = (): Error => Object.assign(new Error('Service Unavailable'), { name: 'ServiceUnavailable', $metadata: { httpStatusCode: 503 } });
const permissionDenied = (): Error => Object.assign(new Error('EACCES: permission denied, open'), { code: 'EACCES' });
const forbidden = (): Error => Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });

const fast = { baseDelayMs: 5, maxDelayMs: 20 };
const randomRef = (): FileRef => ({ type: 'data', name: randomBytes(32).toString('hex') });
const fileOf = (ref: FileRef): string => join(dir, 'repo', 'data', ref.name.slice(0, 2), ref.name);

describe('withRetry', () => {
  it('retries a write that fails with ECONNRESET and stores the file; each retry is logged', async () => {
    const lines: string[] = [];
    const inner = faulty(local, 'write', 2, connectionReset);
    const ref = randomRef();
    const data = randomBytes(1000);
    await withRetry(inner, { ...fast, log: (l) => lines.push(l) }).write(ref, data);
    expect(readFileSync(fileOf(ref)).equals(data)).toBe(true);
    expect(inner.calls).toBe(3);
    expect(lines).toEqual([
      `bh: retrying write data/${ref.name} after read ECONNRESET (attempt 2/6)`,
      `bh: retrying write data/${ref.name} after read ECONNRESET (attempt 3/6)`,
    ]);
  });

  it('retries reads on an HTTP 503 as the AWS SDK reports it', async () => {
    const ref = randomRef();
    const data = randomBytes(500);
    await local.write(ref, data);
    const lines: string[] = [];
    const inner = faulty(local, 'read', 3, serviceUnavailable);
    const got = await withRetry(inner, { ...fast, log: (l) => lines.push(l) }).read(ref, { offset: 100, length: 50 });
    expect(got.equals(data.subarray(100, 150))).toBe(true);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toContain('retrying read data/');
  });

  it('gives up after the attempt bound with an error naming the operation and the file; nothing is stored', async () => {
    const lines: string[] = [];
    const inner = faulty(local, 'write', 100, connectionReset);
    const ref = randomRef();
    const error = await withRetry(inner, { ...fast, attempts: 4, log: (l) => lines.push(l) }).write(ref, randomBytes(10)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendOperationError);
    expect((error as Error).message).toBe(`${local.location}: write data/${ref.name}: read ECONNRESET (gave up after 4 attempts)`);
    expect(inner.calls).toBe(4);
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(/\(attempt 4\/4\)$/);
    expect(existsSync(fileOf(ref))).toBe(false);
  });

  it('gives up when the time bound is reached, before the attempt bound', async () => {
    const inner = faulty(local, 'list', 100, connectionReset);
    const started = Date.now();
    const error = await withRetry(inner, { baseDelayMs: 40, maxDelayMs: 40, attempts: 100, maxElapsedMs: 200, log: () => {} }).list('index').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendOperationError);
    expect((error as Error).message).toContain('list index: read ECONNRESET');
    expect(inner.calls).toBeLessThan(12);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('does not retry permanent errors: permission denied, HTTP 403, a backend-marked permanent error', async () => {
    for (const makeError of [permissionDenied, forbidden, () => Object.assign(connectionReset(), { transient: false })]) {
      const lines: string[] = [];
      const inner = faulty(local, 'write', 1, makeError);
      const ref = randomRef();
      const error = await withRetry(inner, { ...fast, log: (l) => lines.push(l) }).write(ref, randomBytes(10)).catch((e: unknown) => e);
      expect((error as Error).message).toMatch(new RegExp(`: write data/${ref.name}: `));
      expect(inner.calls).toBe(1);
      expect(lines).toEqual([]);
    }
  });

  it('passes NotFoundError through unchanged and at once', async () => {
    const lines: string[] = [];
    const error = await withRetry(local, { ...fast, log: (l) => lines.push(l) }).read(randomRef(), WHOLE).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect(lines).toEqual([]);
  });

  it('retries errors a backend marks with TransientError, also when wrapped as a cause', async () => {
    const inner = faulty(local, 'stat', 1, () => new Error('sftp stat failed', { cause: new TransientError('No response from server') }));
    const ref = randomRef();
    await local.write(ref, Buffer.from('x'));
    expect((await withRetry(inner, { ...fast, log: () => {} }).stat(ref)).size).toBe(1);
    expect(inner.calls).toBe(2);
  });

  it('takes its bounds from BH_RETRY_* and refuses values that are not positive numbers', () => {
    expect(retryOptionsFromEnv({})).toEqual({});
    expect(retryOptionsFromEnv({ BH_RETRY_ATTEMPTS: '3', BH_RETRY_MAX_SECONDS: '2.5', BH_RETRY_DELAY_MS: '10' })).toEqual({ attempts: 3, maxElapsedMs: 2500, baseDelayMs: 10 });
    expect(() => retryOptionsFromEnv({ BH_RETRY_ATTEMPTS: '0' })).toThrow(/BH_RETRY_ATTEMPTS='0'/);
    expect(() => retryOptionsFromEnv({ BH_RETRY_ATTEMPTS: '1.5' })).toThrow(/positive integer/);
    expect(() => retryOptionsFromEnv({ BH_RETRY_MAX_SECONDS: 'soon' })).toThrow(/BH_RETRY_MAX_SECONDS/);
  });

  it('classifies the errors remote backends raise', () => {
    const transient = [
      connectionReset(),
      serviceUnavailable(),
      Object.assign(new Error('Too Many Requests'), { $metadata: { httpStatusCode: 429 } }),
      Object.assign(new Error('slow down'), { name: 'SlowDown' }),
      Object.assign(new Error('x'), { code: 'EAI_AGAIN' }),
      Object.assign(new Error('x'), { code: 'ETIMEDOUT' }),
      Object.assign(new Error('x'), { code: 'EPIPE' }),
      new Error('No response from server'),
      new Error('Not connected'),
      new Error('Channel closed'),
      Object.assign(new Error('Connection lost'), { code: 7 }),
    ];
    const permanent = [
      permissionDenied(),
      forbidden(),
      Object.assign(new Error('Not Found'), { $metadata: { httpStatusCode: 404 } }),
      new Error('unexpected token'),
      new TypeError('x is undefined'),
      new NotFoundError('somewhere', { type: 'config', name: 'config' }),
    ];
    for (const e of transient) expect(isTransient(e), e.message).toBe(true);
    for (const e of permanent) expect(isTransient(e), e.message).toBe(false);
  });

  it('an exclusive write whose stored attempt lost its answer succeeds on retry; another writer\'s file stays AlreadyExistsError', async () => {
    const target = new LocalBackend(join(dir, 'exclusive'));
    await target.create();
    const config: FileRef = { type: 'config', name: 'config' };
    const stored = (): string => readFileSync(join(dir, 'exclusive', 'config'), 'utf8');
    // The first write reaches the store, then the connection drops before the answer.
    let answersLost = 1;
    const lossy: Backend = {
      ...faulty(target, 'write', 0, connectionReset),
      write: async (ref, data, options) => {
        await target.write(ref, data, options);
        if (answersLost-- > 0) throw connectionReset();
      },
    };
    const lines: string[] = [];
    await withRetry(lossy, { ...fast, log: (l) => lines.push(l) }).write(config, Buffer.from('mine'), { exclusive: true });
    expect(stored()).toBe('mine');
    expect(lines).toHaveLength(1);

    // Here the first attempt stores nothing and the second finds another writer's config.
    const flaky = faulty(target, 'write', 1, connectionReset);
    const theirs = withRetry(flaky, { ...fast, log: () => undefined }).write(config, Buffer.from('theirs'), { exclusive: true });
    await expect(theirs).rejects.toBeInstanceOf(AlreadyExistsError);
    expect(flaky.calls).toBe(2);
    expect(stored()).toBe('mine');
  });

  it('passes exclusive writes and temporary files through, with the throttle around it', async () => {
    const target = new LocalBackend(join(dir, 'through'));
    await target.create();
    const be = withThrottle(withRetry(target, fast), { uploadKiBs: 10_000, downloadKiBs: 10_000 });
    const config: FileRef = { type: 'config', name: 'config' };
    await be.write(config, Buffer.from('one'), { exclusive: true });
    await expect(be.write(config, Buffer.from('two'), { exclusive: true })).rejects.toBeInstanceOf(AlreadyExistsError);
    expect(readFileSync(join(dir, 'through', 'config'), 'utf8')).toBe('one');
    const leftover = join(dir, 'through', 'locks', `.tmp-${'0f'.repeat(12)}`);
    await writeFile(leftover, 'part');
    const listed = await be.temporaries!.list();
    expect(listed).toEqual([{ path: `locks/.tmp-${'0f'.repeat(12)}`, size: 4, mtimeMs: statSync(leftover).mtimeMs }]);
    await be.temporaries!.remove(listed[0]!);
    expect(existsSync(leftover)).toBe(false);
  });
});

describe('withThrottle', () => {
  it('paces writes: 256 KiB at 256 KiB/s take about a second (at least 1 s minus the burst)', async () => {
    const throttled = withThrottle(local, { uploadKiBs: 256, downloadKiBs: 0 });
    const refs = Array.from({ length: 8 }, randomRef);
    const started = performance.now();
    // Concurrent writes share one bucket.
    await Promise.all(refs.map((ref) => throttled.write(ref, [randomBytes(16 * 1024), randomBytes(16 * 1024)])));
    const seconds = (performance.now() - started) / 1000;
    expect(seconds).toBeGreaterThanOrEqual(1 - 0.25 - 0.05);
    for (const ref of refs) expect(statSync(fileOf(ref)).size).toBe(32 * 1024);
  });

  it('paces reads: 384 KiB at 256 KiB/s take at least 1.5 s minus the burst', async () => {
    const ref = randomRef();
    const data = randomBytes(128 * 1024);
    await local.write(ref, data);
    const throttled = withThrottle(local, { uploadKiBs: 0, downloadKiBs: 256 });
    const started = performance.now();
    const parts = await Promise.all([throttled.read(ref, WHOLE), throttled.read(ref, { offset: 0, length: 64 * 1024 }), throttled.read(ref, { offset: 64 * 1024, length: 64 * 1024 }), throttled.read(ref, WHOLE)]);
    const seconds = (performance.now() - started) / 1000;
    expect(seconds).toBeGreaterThanOrEqual(1.5 - 0.25 - 0.05);
    expect(Buffer.concat(parts.slice(1, 3)).equals(data)).toBe(true);
  });

  it('a read whose signal aborts while it waits stops waiting and rejects with the reason', async () => {
    const ref = randomRef();
    await local.write(ref, randomBytes(128 * 1024));
    // At 1 KiB/s the read would wait two minutes, past the test's timeout.
    const throttled = withThrottle(local, { uploadKiBs: 0, downloadKiBs: 1 });
    const controller = new AbortController();
    const read = throttled.read(ref, WHOLE, controller.signal);
    const reason = new Error('the caller gave up');
    setTimeout(() => controller.abort(reason), 50);
    await expect(read).rejects.toBe(reason);
  });

  it('refuses a negative limit', () => {
    expect(() => withThrottle(local, { uploadKiBs: -1, downloadKiBs: 0 })).toThrow(/--limit-upload/);
  });

  it('bh backup --limit-upload 200 of 400 KiB takes at least ~1.5 s and restores', async () => {
    const repo = await initRepo(join(dir, 'cli'));
    const source = join(dir, 'cli', 'source');
    await mkdir(source);
    // Random bytes do not compress: about 400 KiB reach the backend.
    await writeFile(join(source, 'a.bin'), randomBytes(250 * 1024));
    await writeFile(join(source, 'b.bin'), randomBytes(150 * 1024));
    const started = performance.now();
    const backup = await repo.run(['backup', '--limit-upload', '200', source]);
    const seconds = (performance.now() - started) / 1000;
    expect(backup.code, backup.stderr).toBe(0);
    expect(seconds).toBeGreaterThanOrEqual(1.5);
    const target = join(dir, 'cli', 'restored');
    const restore = await bh(['restore', 'latest', '--target', target, '--limit-download', '400'], { env: repo.env });
    expect(restore.code, restore.stderr).toBe(0);
    expect(await compareTrees(source, join(target, source), { ignoreRootMtime: true })).toEqual([]);
  });
});
