/**
 * The S3 backend against a real S3-protocol server (s3rver in a child process, behind the guard
 * of tests/helpers/s3-server.ts that enforces `If-None-Match: *` and answers the multipart-upload
 * listing s3rver lacks). Objects are checked in s3rver's data directory, not through bh.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateMultipartUploadCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { NotFoundError, openBackend, type FileRef, type FileType } from '../src/backends/index.js';
import { S3Backend, S3RequestError, parseS3Location, resolveS3Settings, type S3Settings } from '../src/backends/s3.js';
import { WHOLE, describeBackendContract } from './helpers/backend-contract.js';
import { initRepoAt } from './helpers/cli.js';
import { startS3Server, type S3TestServer } from './helpers/s3-server.js';

const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');
const ref = (type: FileType, content: string | Buffer): FileRef => ({ type, name: sha(content) });
const CONFIG: FileRef = { type: 'config', name: 'config' };

let server: S3TestServer;
let prefixes = 0;
const open: S3Backend[] = [];

beforeAll(async () => {
  server = await startS3Server();
});

afterAll(async () => {
  await Promise.all(open.map((b) => b.close()));
  await server?.stop();
});

/** A backend on a new prefix of the test bucket, with `overrides` on the resolved settings. */
function backendAt(prefix: string, overrides: Partial<S3Settings> = {}): S3Backend {
  const settings = resolveS3Settings(`s3:${server.bucket}/${prefix}`, { env: server.env });
  const backend = new S3Backend({ ...settings, ...overrides });
  open.push(backend);
  return backend;
}

const freshPrefix = (): string => `t${++prefixes}`;

function rawClient(): S3Client {
  return new S3Client({ endpoint: server.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
}

describeBackendContract('s3', async () => {
  const backend = backendAt(freshPrefix());
  await backend.create();
  return { backend };
});

describe('S3 locations', () => {
  it('parses s3:bucket, s3:bucket/prefix and s3:http(s)://host/bucket/prefix', () => {
    expect(parseS3Location('s3:my-bucket')).toEqual({ bucket: 'my-bucket', prefix: '' });
    expect(parseS3Location('s3:my-bucket/a/b/')).toEqual({ bucket: 'my-bucket', prefix: 'a/b' });
    expect(parseS3Location('s3:https://s3.example.com/bkt/repo')).toEqual({ bucket: 'bkt', prefix: 'repo', endpoint: 'https://s3.example.com' });
    expect(parseS3Location('s3:http://127.0.0.1:9000/bkt')).toEqual({ bucket: 'bkt', prefix: '', endpoint: 'http://127.0.0.1:9000' });
  });

  it('refuses bad bucket names and prefixes with a message that says what to write', () => {
    expect(() => parseS3Location('s3:')).toThrow(/not a valid bucket name.*s3:BUCKET\/PREFIX/);
    expect(() => parseS3Location('s3:Upper/x')).toThrow(/not a valid bucket name/);
    expect(() => parseS3Location('s3:bkt/a//b')).toThrow(/empty, '.' or '..'/);
    expect(() => parseS3Location('s3:bkt/../x')).toThrow(/'..'/);
  });

  it('takes flags over BH_S3_*, and the endpoint in the URL implies path style', () => {
    const env = { BH_S3_ENDPOINT: 'http://env:1', BH_S3_REGION: 'eu-west-1', BH_S3_PATH_STYLE: '1' };
    const fromEnv = resolveS3Settings('s3:bkt/p', { env });
    expect(fromEnv).toMatchObject({ endpoint: 'http://env:1', region: 'eu-west-1', pathStyle: true, bucket: 'bkt', prefix: 'p' });
    const fromFlags = resolveS3Settings('s3:bkt/p', { env, s3Endpoint: 'https://flag', s3Region: 'us-west-2', s3PathStyle: false });
    expect(fromFlags).toMatchObject({ endpoint: 'https://flag', region: 'us-west-2', pathStyle: false });
    expect(resolveS3Settings('s3:http://h:9/bkt', { env: {} })).toMatchObject({ endpoint: 'http://h:9', pathStyle: true, region: 'us-east-1' });
    expect(resolveS3Settings('s3:bkt', { env: {} }).credentials).toBeUndefined();
  });

  it('checks storage classes and the multipart threshold from the environment', () => {
    expect(resolveS3Settings('s3:bkt', { env: { BH_S3_STORAGE_CLASS_DATA: 'STANDARD_IA' } }).storageClassData).toBe('STANDARD_IA');
    expect(() => resolveS3Settings('s3:bkt', { env: { BH_S3_STORAGE_CLASS_DATA: 'GLACIER' } })).toThrow(/cannot be read back/);
    expect(() => resolveS3Settings('s3:bkt', { env: { BH_S3_STORAGE_CLASS_METADATA: 'cheap' } })).toThrow(/not an S3 storage class/);
    expect(resolveS3Settings('s3:bkt', { env: { BH_S3_MULTIPART_MIB: '64' } }).multipartThreshold).toBe(64 * 1024 * 1024);
    // Below S3's 5 MiB part minimum, the minimum is used.
    expect(resolveS3Settings('s3:bkt', { env: { BH_S3_MULTIPART_MIB: '1' } }).partSize).toBe(5 * 1024 * 1024);
    expect(() => resolveS3Settings('s3:bkt', { env: { BH_S3_MULTIPART_MIB: 'lots' } })).toThrow(/positive whole number/);
  });
});

describe('S3 backend on s3rver', () => {
  it('stores each file type under the prefix at the local layout', async () => {
    const prefix = freshPrefix();
    const be = backendAt(`${prefix}/deep`);
    await be.create();
    await be.write(CONFIG, Buffer.from('cfg'));
    const pack = ref('data', 'a pack');
    await be.write(pack, Buffer.from('pack bytes'));
    const snap = ref('snapshots', 's');
    await be.write(snap, Buffer.from('snap'));
    const file = (key: string): string => readFileSync(server.objectFile(server.bucket, key), 'utf8');
    expect(file(`${prefix}/deep/config`)).toBe('cfg');
    expect(file(`${prefix}/deep/data/${pack.name.slice(0, 2)}/${pack.name}`)).toBe('pack bytes');
    expect(file(`${prefix}/deep/snapshots/${snap.name}`)).toBe('snap');
  });

  it('lists past a page: follows continuation tokens', async () => {
    // Seven keys per page: 45 index files and 30 packs take several pages each.
    const be = backendAt(freshPrefix(), { listPageSize: 7 });
    const index = Array.from({ length: 45 }, (_, i) => ref('index', `index ${i}`));
    const packs = Array.from({ length: 30 }, (_, i) => ref('data', `pack ${i}`));
    await Promise.all([...index, ...packs].map((r) => be.write(r, Buffer.from(r.name.slice(0, 5)))));
    server.requests.length = 0;
    expect((await be.list('index')).map((f) => f.name).sort()).toEqual(index.map((r) => r.name).sort());
    const listed = await be.list('data');
    expect(listed.map((f) => f.name).sort()).toEqual(packs.map((r) => r.name).sort());
    expect(listed.every((f) => f.size === 5)).toBe(true);
    // 45/7 → 7 pages, 30/7 → 5 pages, each after the first carrying a continuation token.
    expect(server.requests.filter((r) => r.includes('list-type=2'))).toHaveLength(12);
    expect(server.requests.filter((r) => r.includes('continuation-token='))).toHaveLength(10);
  });

  it('ignores stray keys that bh would never write', async () => {
    const prefix = freshPrefix();
    const be = backendAt(prefix);
    const good = ref('data', 'good');
    await be.write(good, Buffer.from('good'));
    const s3 = rawClient();
    const { PutObjectCommand } = await import('@aws-sdk/client-s3');
    const misplaced = sha('misplaced');
    for (const key of [`data/${misplaced.startsWith('00') ? '01' : '00'}/${misplaced}`, `data/${good.name.slice(0, 2)}/README`, `keys/${sha('k').toUpperCase()}`, `keys/sub/${sha('k')}`]) {
      await s3.send(new PutObjectCommand({ Bucket: server.bucket, Key: `${prefix}/${key}`, Body: 'junk' }));
    }
    s3.destroy();
    expect(await be.list('data')).toEqual([{ name: good.name, size: 4 }]);
    expect(await be.list('keys')).toEqual([]);
  });

  it('writes bodies over the threshold as multipart uploads that read back exactly', async () => {
    const prefix = freshPrefix();
    const be = backendAt(prefix, { multipartThreshold: 256 * 1024, partSize: 256 * 1024 });
    const big = [Buffer.alloc(300 * 1024, 1), Buffer.alloc(0), Buffer.alloc(500 * 1024 + 99, 2), Buffer.from('tail')];
    for (let i = 0; i < big[2]!.length; i += 1000) big[2]![i] = i & 0xff;
    const joined = Buffer.concat(big);
    const r = ref('data', joined);
    server.requests.length = 0;
    await be.write(r, big);
    const ops = server.requests.filter((q) => q.includes(r.name));
    expect(ops.filter((q) => q.startsWith('POST') && q.endsWith('?uploads='))).toHaveLength(1);
    // 800 KiB + 103 bytes in 256 KiB parts: 4 parts.
    expect(ops.filter((q) => q.startsWith('PUT') && q.includes('partNumber='))).toHaveLength(4);
    expect(ops.filter((q) => q.startsWith('POST') && q.includes('uploadId='))).toHaveLength(1);
    expect(readFileSync(server.objectFile(server.bucket, `${prefix}/data/${r.name.slice(0, 2)}/${r.name}`)).equals(joined)).toBe(true);
    expect((await be.read(r, WHOLE)).equals(joined)).toBe(true);
    expect((await be.read(r, { offset: 256 * 1024 - 10, length: 20 })).equals(joined.subarray(256 * 1024 - 10, 256 * 1024 + 10))).toBe(true);
    // At or under the threshold: one PUT.
    server.requests.length = 0;
    const small = Buffer.alloc(256 * 1024, 3);
    await be.write(ref('data', small), small);
    expect(server.requests.filter((q) => q.startsWith('PUT'))).toHaveLength(1);
    expect(server.requests.some((q) => q.includes('uploads') || q.includes('uploadId'))).toBe(false);
  });

  it('a multipart upload whose part fails is aborted: no object, no parts left behind', async () => {
    const prefix = freshPrefix();
    const be = backendAt(prefix, { multipartThreshold: 64 * 1024, partSize: 64 * 1024 });
    const body = Buffer.alloc(200 * 1024, 9);
    const r = ref('data', body);
    server.dropNext(new RegExp(`^PUT .*${r.name}\\?partNumber=2&`));
    const error = await be.write(r, body).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(S3RequestError);
    expect((error as S3RequestError).message).toMatch(new RegExp(`S3 UploadPart 2/4 ${prefix}/data/${r.name.slice(0, 2)}/${r.name} failed`));
    expect((error as S3RequestError).transient).toBe(true);
    expect(server.requests.some((q) => q.startsWith('DELETE') && q.includes(`${r.name}?uploadId=`))).toBe(true);
    const uploads = join(server.dataDir, server.bucket, '._S3rver_uploads');
    const left = existsSync(uploads) ? readdirSync(uploads).filter((id) => readFileSync(join(uploads, id, 'key'), 'utf8').startsWith(`${prefix}/`)) : [];
    expect(left).toEqual([]);
    await expect(be.stat(r)).rejects.toBeInstanceOf(NotFoundError);
    // The same write goes through once the network behaves.
    await be.write(r, body);
    expect((await be.read(r, WHOLE)).equals(body)).toBe(true);
  });

  it('aborts stale multipart uploads under its prefix only, and young ones are left alone', async () => {
    const prefix = freshPrefix();
    const s3 = rawClient();
    const startUpload = async (key: string): Promise<string> => {
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: server.bucket, Key: key }));
      await s3.send(new UploadPartCommand({ Bucket: server.bucket, Key: key, UploadId, PartNumber: 1, Body: Buffer.alloc(1000, 7) }));
      return UploadId!;
    };
    const mine = await startUpload(`${prefix}/data/ab/${'ab'.padEnd(64, '0')}`);
    const other = await startUpload(`elsewhere/data/ab/${'ab'.padEnd(64, '1')}`);
    const uploadDir = (id: string): string => join(server.dataDir, server.bucket, '._S3rver_uploads', id);
    expect(existsSync(uploadDir(mine)) && existsSync(uploadDir(other))).toBe(true);

    // With the default age (a day), nothing here is stale.
    expect(await backendAt(prefix).abortStaleUploads()).toBe(0);
    expect(existsSync(uploadDir(mine))).toBe(true);

    // The first write of a process cleans up; close() waits for it.
    await new Promise((r) => setTimeout(r, 20));
    const be = backendAt(prefix, { staleUploadAgeMs: 10 });
    await be.write(ref('locks', 'lock'), Buffer.from('lock'));
    await be.close();
    expect(existsSync(uploadDir(mine))).toBe(false);
    expect(existsSync(uploadDir(other))).toBe(true);
    expect(readdirSync(join(server.dataDir, server.bucket, '._S3rver_uploads'))).toEqual([other]);
    s3.destroy();
  });

  it('puts data packs in their storage class; keys, config and locks stay STANDARD', async () => {
    const prefix = freshPrefix();
    const settings = resolveS3Settings(`s3:${server.bucket}/${prefix}`, { env: { ...server.env, BH_S3_STORAGE_CLASS_DATA: 'STANDARD_IA', BH_S3_STORAGE_CLASS_METADATA: 'ONEZONE_IA' } });
    const be = new S3Backend(settings);
    open.push(be);
    const pack = ref('data', 'p');
    const index = ref('index', 'i');
    const key = ref('keys', 'k');
    for (const r of [pack, index, key]) await be.write(r, Buffer.from('x'));
    const classOf = (k: string): unknown => (JSON.parse(readFileSync(server.objectFile(server.bucket, k).replace(/object$/, 'metadata.json'), 'utf8')) as Record<string, unknown>)['x-amz-storage-class'];
    expect(classOf(`${prefix}/data/${pack.name.slice(0, 2)}/${pack.name}`)).toBe('STANDARD_IA');
    expect(classOf(`${prefix}/index/${index.name}`)).toBe('ONEZONE_IA');
    expect(classOf(`${prefix}/keys/${key.name}`)).toBeUndefined();
  });

  it('an exclusive write is a conditional PUT: the second is refused (HTTP 412) and the first stays', async () => {
    const prefix = freshPrefix();
    const a = backendAt(prefix);
    const b = backendAt(prefix);
    await a.write(CONFIG, Buffer.from('first'), { exclusive: true });
    await expect(b.write(CONFIG, Buffer.from('second'), { exclusive: true })).rejects.toThrow(/config already exists; refusing to overwrite/);
    expect(readFileSync(server.objectFile(server.bucket, `${prefix}/config`), 'utf8')).toBe('first');
    // Above the multipart threshold too: one conditional PUT, never an unconditional multipart upload.
    const small = backendAt(freshPrefix(), { multipartThreshold: 1000, partSize: 1000 });
    server.requests.length = 0;
    const big = ref('keys', 'big');
    await small.write(big, Buffer.alloc(5000, 1), { exclusive: true });
    await expect(small.write(big, Buffer.alloc(5000, 2), { exclusive: true })).rejects.toThrow(/already exists/);
    expect(server.requests.filter((r) => r.startsWith('POST'))).toEqual([]);
    // Content-addressed files may be written again (same name, same bytes).
    const k = ref('keys', 'same');
    await a.write(k, Buffer.from('same'));
    await b.write(k, Buffer.from('same'));
  });

  it('two racing `bh init` on one location: exactly one wins, and its password opens the repository', async () => {
    const location = `s3:${server.bucket}/${freshPrefix()}`;
    const attempt = (password: string) => initRepoAt(location, { ...server.env, BH_PASSWORD: password }).then((repo) => ({ repo, password }), (error: Error) => error);
    const results = await Promise.all([attempt('pw-one'), attempt('pw-two')]);
    const winners = results.filter((r): r is Exclude<typeof r, Error> => !(r instanceof Error));
    const losers = results.filter((r): r is Error => r instanceof Error);
    expect(winners).toHaveLength(1);
    // Refused by init's first look, or by the conditional PUT when both looked before either wrote.
    expect(losers[0]!.message).toMatch(/already holds a bh repository|a repository appeared at .* meanwhile/);
    const opened = await winners[0]!.repo.run(['snapshots', '--json']);
    expect(opened.code, opened.stderr).toBe(0);
  });

  it('bh init creates a missing bucket', async () => {
    const bucket = 'made-by-init';
    expect(existsSync(join(server.dataDir, bucket))).toBe(false);
    const repo = await initRepoAt(`s3:${bucket}/repo`, { ...server.env, BH_PASSWORD: 'pw' });
    expect(existsSync(server.objectFile(bucket, 'repo/config'))).toBe(true);
    expect(readdirSync(join(server.dataDir, bucket, 'repo', 'keys')).filter((f) => f.endsWith('._S3rver_object'))).toHaveLength(1);
    const again = await repo.run(['init']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already holds a bh repository/);
  });

  it('a missing bucket or repository is "no repository" (exit 10) for other commands', async () => {
    const r = await initRepoAt(`s3:${server.bucket}/exists`, { ...server.env, BH_PASSWORD: 'pw' });
    const noBucket = await r.run(['snapshots'], { env: { BH_REPO: 's3:no-such-bucket/x' } });
    expect(noBucket.code, noBucket.stderr).toBe(10);
    expect(noBucket.stderr).toMatch(/no bh repository at s3:no-such-bucket\/x/);
    const noRepo = await r.run(['snapshots'], { env: { BH_REPO: `s3:${server.bucket}/nothing-here` } });
    expect(noRepo.code).toBe(10);
  });

  it('openBackend picks S3 for s3: locations', async () => {
    const be = await openBackend(`s3:${server.bucket}/${freshPrefix()}`, { env: server.env });
    try {
      await be.write(ref('keys', 'via openBackend'), Buffer.from('k'));
      expect(await be.list('keys')).toHaveLength(1);
      await expect(be.read(ref('keys', 'absent'), WHOLE)).rejects.toBeInstanceOf(NotFoundError);
    } finally {
      await be.close();
    }
  });

  it('a dead server: the error names the operation and the key and is marked transient', async () => {
    const be = backendAt(freshPrefix(), { endpoint: 'http://127.0.0.1:1' });
    const r = ref('snapshots', 'unreachable');
    const error = await be.read(r, WHOLE).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(S3RequestError);
    expect((error as S3RequestError).message).toMatch(new RegExp(`S3 GetObject t\\d+/snapshots/${r.name} failed: .*ECONNREFUSED`));
    expect((error as S3RequestError).transient).toBe(true);
    const denied = await backendAt(freshPrefix(), { bucket: 'no-such-bucket' }).write(r, Buffer.from('x')).catch((e: unknown) => e);
    expect((denied as S3RequestError).message).toMatch(/S3 PutObject .* failed: HTTP 404: NoSuchBucket/);
    expect((denied as S3RequestError).transient).toBe(false);
  });
});
