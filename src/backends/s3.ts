/**
 * A repository in an S3 bucket (AWS or an S3-compatible server: MinIO, Ceph RGW, Garage, s3rver).
 *
 * Locations:
 *   s3:BUCKET[/PREFIX]                       endpoint from --s3-endpoint / BH_S3_ENDPOINT, else AWS
 *   s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX] endpoint given in the URL (implies path-style)
 * `s3:HOST/BUCKET` (restic's form) is not accepted: it cannot be told apart from `s3:BUCKET/PREFIX`.
 *
 * Keys mirror the local layout under the prefix: `P/config`, `P/keys/<id>`, `P/data/<xx>/<id>`,
 * `P/index/<id>`, `P/snapshots/<id>`, `P/locks/<id>`. Names are validated (64 lowercase hex) before
 * any key is built. S3 has no rename, and needs none: a PUT is atomic (readers see the old object,
 * none, or all of the new one) and files are content-addressed and written once. An exclusive
 * write (`config`, the one file whose name is not its hash) is a single PUT with
 * `If-None-Match: *`, so of two racing `bh init` one gets 412 (AlreadyExistsError); a server
 * that answers 501 (no conditional writes) gets a plain PUT, after init has checked that no
 * config exists. Other bodies over the multipart threshold go up in parts (aborted on failure);
 * uploads a killed process left behind are aborted by the first write of a later process once
 * they are older than a day. There are no temporary files (`temporaries` is absent).
 *
 * Retries: the SDK's own retries are off (maxAttempts 1); errors that are worth retrying (network,
 * timeouts, 5xx, throttling) carry `transient: true` for the logging retry decorator, so attempts
 * do not multiply and every retry is logged once.
 */
import { createHash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';

import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type BucketLocationConstraint,
  type CompletedPart,
  type S3ClientConfig,
  type StorageClass,
} from '@aws-sdk/client-s3';

import { AlreadyExistsError, NotFoundError, ShortReadError, TooLargeError, describeRef, isWholeFile, type Backend, type ReadExtent, type WholeFile, type FileInfo, type FileRef, type FileType, type WriteOptions } from './backend.js';
import type { BackendOptions } from './options.js';

const NAME_RE = /^[0-9a-f]{64}$/;
const MiB = 1024 * 1024;
/** S3's smallest part (all but the last); also the smallest threshold settable from the environment. */
const MIN_PART_SIZE = 5 * MiB;
const DAY_MS = 24 * 60 * 60 * 1000;
const FOLDERS: readonly Exclude<FileType, 'config'>[] = ['keys', 'data', 'index', 'snapshots', 'locks'];
/** Classes whose objects cannot be read without a restore request: restore and check would fail. */
const ARCHIVE_CLASSES = new Set(['GLACIER', 'DEEP_ARCHIVE']);
const STORAGE_CLASSES = new Set(['STANDARD', 'REDUCED_REDUNDANCY', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER_IR', 'EXPRESS_ONEZONE', ...ARCHIVE_CLASSES]);
const TRANSIENT_NAMES = new Set(['TimeoutError', 'BadDigest', 'RequestTimeout', 'RequestTimeTooSkewed', 'SlowDown', 'Throttling', 'ThrottlingException', 'TooManyRequestsException', 'InternalError', 'ServiceUnavailable', 'RequestTimeoutException']);
const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'ERR_STREAM_PREMATURE_CLOSE']);

/** Where a repository lives in S3, parsed from its location string. */
export interface S3Location {
  bucket: string;
  /** Key prefix without leading or trailing slash; '' for the bucket's root. */
  prefix: string;
  /** Endpoint given in the location itself (s3:https://host/bucket/prefix). */
  endpoint?: string;
}

/** Everything the backend runs with, resolved from the options and the environment. */
export interface S3Settings extends S3Location {
  /** The location string as the user gave it, for messages. */
  location: string;
  region: string;
  pathStyle: boolean;
  /** Requests in flight at once; also the HTTP agent's socket limit. */
  connections: number;
  /** Bodies larger than this go up as multipart uploads. */
  multipartThreshold: number;
  partSize: number;
  /** Storage class of data packs, and of index and snapshot files (keys, config, locks stay STANDARD). */
  storageClassData?: StorageClass;
  storageClassMetadata?: StorageClass;
  /** Keys per ListObjectsV2 page (S3's maximum is 1000). */
  listPageSize: number;
  /** Multipart uploads under the prefix older than this are aborted as left over by a dead process. */
  staleUploadAgeMs: number;
  /** AWS_PROFILE, for the SDK's shared-config credentials. */
  profile?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** A failed S3 request: names the operation and the key; `transient` tells the retry decorator to try again. */
export class S3RequestError extends Error {
  readonly transient: boolean;
  readonly status: number | undefined;

  constructor(location: string, operation: string, key: string, cause: unknown) {
    const status = httpStatusOf(cause);
    const hint = status === 301 ? ' (the bucket is in another region: pass --s3-region or set BH_S3_REGION)' : '';
    super(`${location}: S3 ${operation} ${key} failed: ${detailOf(cause, status)}${hint}`, { cause });
    this.name = 'S3RequestError';
    this.status = status;
    this.transient = isTransient(cause, status);
  }
}

/** Parses `s3:bucket/prefix` or `s3:http(s)://host[:port]/bucket/prefix`. */
export function parseS3Location(location: string): S3Location {
  if (!location.startsWith('s3:')) throw new Error(`not an S3 location: '${location}'`);
  let rest = location.slice(3);
  let endpoint: string | undefined;
  const scheme = /^(https?):\/\/([^/]+)\/?/.exec(rest);
  if (scheme) {
    endpoint = `${scheme[1]}://${scheme[2]}`;
    rest = rest.slice(scheme[0].length);
  }
  rest = rest.replace(/^\/+/, '').replace(/\/+$/, '');
  const [bucket = '', ...segments] = rest.split('/');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    throw new Error(`invalid S3 location '${location}': '${bucket}' is not a valid bucket name (3-63 lowercase letters, digits, dots, hyphens); use s3:BUCKET/PREFIX or s3:https://HOST/BUCKET/PREFIX`);
  }
  for (const segment of segments) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new Error(`invalid S3 location '${location}': the prefix must not contain empty, '.' or '..' segments`);
    }
  }
  return { bucket, prefix: segments.join('/'), ...(endpoint === undefined ? {} : { endpoint }) };
}

function storageClassFrom(env: BackendOptions['env'], variable: string): StorageClass | undefined {
  const value = env[variable];
  if (value === undefined || value === '') return undefined;
  if (!STORAGE_CLASSES.has(value)) throw new Error(`${variable}=${value} is not an S3 storage class (one of ${[...STORAGE_CLASSES].join(', ')})`);
  if (ARCHIVE_CLASSES.has(value)) throw new Error(`${variable}=${value}: objects in archive classes cannot be read back without a restore request, so restore, check --read-data and prune would fail; use GLACIER_IR or an IA class`);
  return value as StorageClass;
}

function positiveIntegerFrom(env: BackendOptions['env'], variable: string): number | undefined {
  const value = env[variable];
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${variable}=${value} must be a positive whole number`);
  return n;
}

/** Resolves flags, the environment and the location into settings (flags win over BH_S3_*). */
export function resolveS3Settings(location: string, options: BackendOptions): S3Settings {
  const { env } = options;
  const parsed = parseS3Location(location);
  const endpoint = options.s3Endpoint ?? nonEmpty(env['BH_S3_ENDPOINT']) ?? parsed.endpoint;
  if (endpoint !== undefined && !/^https?:\/\/[^/]+/.test(endpoint)) throw new Error(`invalid S3 endpoint '${endpoint}': expected http(s)://HOST[:PORT]`);
  const thresholdMiB = positiveIntegerFrom(env, 'BH_S3_MULTIPART_MIB');
  const multipartThreshold = Math.max(MIN_PART_SIZE, (thresholdMiB ?? 8) * MiB);
  const accessKeyId = nonEmpty(env['AWS_ACCESS_KEY_ID']);
  const secretAccessKey = nonEmpty(env['AWS_SECRET_ACCESS_KEY']);
  const sessionToken = nonEmpty(env['AWS_SESSION_TOKEN']);
  const storageClassData = storageClassFrom(env, 'BH_S3_STORAGE_CLASS_DATA');
  const storageClassMetadata = storageClassFrom(env, 'BH_S3_STORAGE_CLASS_METADATA');
  const profile = nonEmpty(env['AWS_PROFILE']);
  return {
    ...parsed,
    location,
    ...(endpoint === undefined ? {} : { endpoint }),
    region: options.s3Region ?? nonEmpty(env['BH_S3_REGION']) ?? nonEmpty(env['AWS_REGION']) ?? nonEmpty(env['AWS_DEFAULT_REGION']) ?? 'us-east-1',
    pathStyle: options.s3PathStyle ?? (env['BH_S3_PATH_STYLE'] === '1' || parsed.endpoint !== undefined),
    connections: Math.max(1, options.connections ?? 8),
    multipartThreshold,
    partSize: multipartThreshold,
    ...(storageClassData === undefined ? {} : { storageClassData }),
    ...(storageClassMetadata === undefined ? {} : { storageClassMetadata }),
    listPageSize: 1000,
    staleUploadAgeMs: DAY_MS,
    ...(profile === undefined ? {} : { profile }),
    ...(accessKeyId !== undefined && secretAccessKey !== undefined
      ? { credentials: { accessKeyId, secretAccessKey, ...(sessionToken === undefined ? {} : { sessionToken }) } }
      : {}),
  };
}

export async function openS3Backend(location: string, options: BackendOptions): Promise<Backend> {
  return new S3Backend(resolveS3Settings(location, options));
}

/** At most `limit` calls of `run` in flight; the rest wait in order. */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

export class S3Backend implements Backend {
  readonly location: string;
  private readonly client: S3Client;
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly limiter: Limiter;
  private readonly root: string;
  /** The clean-up of stale multipart uploads, started by the first write of this process. */
  private staleCleanup: Promise<void> | undefined;

  constructor(readonly settings: S3Settings) {
    // The SDK is pinned (package.json): its notice that later releases need Node 22 is noise to bh's users.
    process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
    this.location = settings.location;
    this.root = settings.prefix === '' ? '' : `${settings.prefix}/`;
    this.limiter = new Limiter(settings.connections);
    const agentOptions = { keepAlive: true, maxSockets: settings.connections };
    this.agent = settings.endpoint?.startsWith('http:') ? new HttpAgent(agentOptions) : new HttpsAgent(agentOptions);
    const config: S3ClientConfig = {
      region: settings.region,
      forcePathStyle: settings.pathStyle,
      maxAttempts: 1,
      // Non-AWS servers often reject or mis-store the SDK's default checksum trailers.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        httpAgent: this.agent as HttpAgent,
        httpsAgent: this.agent as HttpsAgent,
        connectionTimeout: 10_000,
        requestTimeout: 120_000,
      },
      ...(settings.endpoint === undefined ? {} : { endpoint: settings.endpoint }),
      ...(settings.credentials === undefined ? {} : { credentials: settings.credentials }),
      ...(settings.profile === undefined ? {} : { profile: settings.profile }),
    };
    this.client = new S3Client(config);
  }

  // ---- keys ----------------------------------------------------------------------------------

  private keyOf(ref: FileRef): string {
    const { type, name } = ref;
    if (type === 'config') {
      if (name !== 'config') throw new Error(`invalid config file name ${JSON.stringify(name)}: must be "config"`);
      return `${this.root}config`;
    }
    if (!FOLDERS.includes(type)) throw new Error(`invalid file type ${JSON.stringify(type)}`);
    if (typeof name !== 'string' || !NAME_RE.test(name)) throw new Error(`invalid ${type} file name ${JSON.stringify(name)}: must be 64 lowercase hex digits`);
    return type === 'data' ? `${this.root}data/${name.slice(0, 2)}/${name}` : `${this.root}${type}/${name}`;
  }

  /** One request through the concurrency limit; failures become S3RequestError naming `key`. */
  private async request<T>(operation: string, key: string, send: () => Promise<T>): Promise<T> {
    try {
      return await this.limiter.run(send);
    } catch (error) {
      throw new S3RequestError(this.location, operation, key, error);
    }
  }

  // ---- Backend -------------------------------------------------------------------------------

  async create(): Promise<void> {
    const { bucket } = this.settings;
    const exists = await this.request('HeadBucket', bucket, () => this.client.send(new HeadBucketCommand({ Bucket: bucket }))).then(
      () => true,
      (error: S3RequestError) => {
        if (error.status === 404) return false;
        throw error;
      },
    );
    if (!exists) {
      const location = this.settings.region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: this.settings.region as BucketLocationConstraint } };
      try {
        await this.request('CreateBucket', bucket, () => this.client.send(new CreateBucketCommand({ Bucket: bucket, ...location })));
      } catch (error) {
        const code = errorName((error as S3RequestError).cause);
        if (code === 'BucketAlreadyOwnedByYou') return;
        if ((error as S3RequestError).status === 403) {
          throw new Error(`${this.location}: bucket ${bucket} does not exist and cannot be created with these credentials (CreateBucket: access denied); create it first or use credentials that may`);
        }
        if (code === 'BucketAlreadyExists') throw new Error(`${this.location}: bucket name ${bucket} is taken by another account; choose another bucket`);
        throw error;
      }
    }
  }

  async write(ref: FileRef, data: Buffer | readonly Buffer[], options: WriteOptions = {}): Promise<void> {
    const key = this.keyOf(ref);
    // Best effort: servers without ListMultipartUploads (s3rver), or credentials without it, skip it.
    this.staleCleanup ??= this.abortStaleUploads().then(() => undefined, () => undefined);
    const parts = Array.isArray(data) ? data : [data as Buffer];
    const size = parts.reduce((n, p) => n + p.length, 0);
    const storageClass = ref.type === 'data' ? this.settings.storageClassData : ref.type === 'index' || ref.type === 'snapshots' ? this.settings.storageClassMetadata : undefined;
    const common = { Bucket: this.settings.bucket, Key: key, ...(storageClass === undefined ? {} : { StorageClass: storageClass }) };
    // An exclusive write is one conditional PUT whatever its size (a PUT takes up to 5 GiB).
    if (size > this.settings.multipartThreshold && !options.exclusive) {
      await this.writeMultipart(key, common, parts);
      return;
    }
    const body = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    const put = (conditional: boolean) =>
      this.request('PutObject', key, () =>
        this.client.send(new PutObjectCommand({ ...common, Body: body, ContentLength: body.length, ContentMD5: md5(body), ...(conditional ? { IfNoneMatch: '*' } : {}) })),
      );
    if (!options.exclusive) {
      await put(false);
      return;
    }
    try {
      await put(true);
    } catch (error) {
      const status = (error as S3RequestError).status;
      if (status === 412) throw new AlreadyExistsError(this.location, ref);
      // 409: another conditional write of this key is in progress; asking again tells who won.
      if (status === 409) throw Object.assign(new Error(`${(error as Error).message} (another conditional write of this key was in progress)`, { cause: error }), { transient: true });
      // Servers without conditional writes: bh init has checked that no config exists.
      if (status === 501) await put(false);
      else throw error;
    }
  }

  private async writeMultipart(key: string, common: { Bucket: string; Key: string; StorageClass?: StorageClass }, parts: readonly Buffer[]): Promise<void> {
    const created = await this.request('CreateMultipartUpload', key, () => this.client.send(new CreateMultipartUploadCommand(common)));
    const uploadId = created.UploadId;
    if (!uploadId) throw new S3RequestError(this.location, 'CreateMultipartUpload', key, new Error('the server returned no UploadId'));
    const ids = { Bucket: common.Bucket, Key: key, UploadId: uploadId };
    try {
      const bodies = splitIntoParts(parts, this.settings.partSize);
      // Every part settles before the upload is completed or aborted: a part still uploading
      // when the abort lands may be stored anyway (AWS says so) and trips servers that clean up
      // the upload's folder under it.
      const settled = await Promise.allSettled(
        bodies.map(async (body, i): Promise<CompletedPart> => {
          const PartNumber = i + 1;
          const res = await this.request(`UploadPart ${PartNumber}/${bodies.length}`, key, () =>
            this.client.send(new UploadPartCommand({ ...ids, PartNumber, Body: body, ContentLength: body.length, ContentMD5: md5(body) })),
          );
          return { PartNumber, ETag: res.ETag };
        }),
      );
      const failed = settled.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
      if (failed) throw failed.reason;
      const completed = settled.map((outcome) => (outcome as PromiseFulfilledResult<CompletedPart>).value);
      await this.request('CompleteMultipartUpload', key, () => this.client.send(new CompleteMultipartUploadCommand({ ...ids, MultipartUpload: { Parts: completed } })));
    } catch (error) {
      // Parts left behind cost storage; if this abort fails too, a later process's clean-up gets them.
      await this.request('AbortMultipartUpload', key, () => this.client.send(new AbortMultipartUploadCommand(ids))).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Aborts multipart uploads under this repository's prefix that are older than the stale age:
   * what a process killed mid-upload left behind (S3 bills their parts until aborted). Uploads
   * younger than that may belong to a backup running now and are left alone.
   */
  async abortStaleUploads(): Promise<number> {
    const { bucket } = this.settings;
    const cutoff = Date.now() - this.settings.staleUploadAgeMs;
    let aborted = 0;
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.request('ListMultipartUploads', `${bucket}/${this.root}`, () =>
        this.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: this.root, KeyMarker, UploadIdMarker })),
      );
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId || !upload.Initiated || upload.Initiated.getTime() > cutoff) continue;
        const ids = { Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId };
        await this.request('AbortMultipartUpload', upload.Key, () => this.client.send(new AbortMultipartUploadCommand(ids)));
        aborted++;
      }
      if (!page.IsTruncated) return aborted;
      KeyMarker = page.NextKeyMarker;
      UploadIdMarker = page.NextUploadIdMarker;
    }
  }

  async read(ref: FileRef, extent: ReadExtent): Promise<Buffer> {
    const key = this.keyOf(ref);
    const range = isWholeFile(extent) ? undefined : extent;
    if (range !== undefined) {
      const { offset, length } = range;
      if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
        throw new RangeError(`invalid byte range offset=${offset} length=${length} for ${describeRef(ref)}`);
      }
      if (length === 0) {
        // An empty range has no HTTP form; the file must still exist and reach the offset.
        const { size } = await this.stat(ref);
        if (size < offset) throw new ShortReadError(this.location, ref, 0, 0);
        return Buffer.alloc(0);
      }
    }
    // Always an explicit first-last range: some servers get suffix ranges (bytes=-N) wrong.
    const Range = range === undefined ? undefined : `bytes=${range.offset}-${range.offset + range.length - 1}`;
    let bytes: Buffer | { tooLarge: number };
    try {
      bytes = await this.request('GetObject', key, async () => {
        const res = await this.client.send(new GetObjectCommand({ Bucket: this.settings.bucket, Key: key, Range }));
        if (isWholeFile(extent) && (res.ContentLength ?? 0) > extent.atMost) {
          // Refused before its body is read: the connection goes with the unread body.
          (res.Body as { destroy?: () => void } | undefined)?.destroy?.();
          return { tooLarge: res.ContentLength! };
        }
        const body = res.Body ? await res.Body.transformToByteArray() : new Uint8Array(0);
        const got = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
        if (res.ContentLength !== undefined && got.length !== res.ContentLength) {
          throw Object.assign(new Error(`the response ended after ${got.length} of ${res.ContentLength} bytes`), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
        }
        return got;
      });
    } catch (error) {
      const { status } = error as S3RequestError;
      if (isMissing(error)) throw new NotFoundError(this.location, ref);
      // 416: the range starts at or past the end of the object.
      if (status === 416 && range !== undefined) throw new ShortReadError(this.location, ref, range.length, 0);
      throw error;
    }
    if (!Buffer.isBuffer(bytes)) throw new TooLargeError(this.location, ref, bytes.tooLarge, (extent as WholeFile).atMost);
    if (range !== undefined && bytes.length < range.length) throw new ShortReadError(this.location, ref, range.length, bytes.length);
    return bytes;
  }

  async stat(ref: FileRef): Promise<FileInfo> {
    const key = this.keyOf(ref);
    try {
      const res = await this.request('HeadObject', key, () => this.client.send(new HeadObjectCommand({ Bucket: this.settings.bucket, Key: key })));
      return { name: ref.name, size: res.ContentLength ?? 0 };
    } catch (error) {
      if (isMissing(error)) throw new NotFoundError(this.location, ref);
      throw error;
    }
  }

  async list(type: FileType): Promise<FileInfo[]> {
    if (type === 'config') {
      try {
        return [await this.stat({ type: 'config', name: 'config' })];
      } catch (error) {
        if (error instanceof NotFoundError) return [];
        throw error;
      }
    }
    if (!FOLDERS.includes(type)) throw new Error(`invalid file type ${JSON.stringify(type)}`);
    const folder = `${this.root}${type}/`;
    // Only keys this backend would build for the name: stray objects are not repository files.
    const keyRe = type === 'data' ? /^([0-9a-f]{2})\/([0-9a-f]{64})$/ : /^()([0-9a-f]{64})$/;
    const out: FileInfo[] = [];
    let ContinuationToken: string | undefined;
    do {
      let page;
      try {
        page = await this.request('ListObjectsV2', folder, () =>
          this.client.send(new ListObjectsV2Command({ Bucket: this.settings.bucket, Prefix: folder, MaxKeys: this.settings.listPageSize, ContinuationToken })),
        );
      } catch (error) {
        if (errorName((error as S3RequestError).cause) === 'NoSuchBucket') return [];
        throw error;
      }
      for (const object of page.Contents ?? []) {
        const match = keyRe.exec(object.Key?.slice(folder.length) ?? '');
        if (!match || (type === 'data' && !match[2]!.startsWith(match[1]!))) continue;
        out.push({ name: match[2]!, size: object.Size ?? 0 });
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken !== undefined);
    return out;
  }

  async remove(ref: FileRef): Promise<void> {
    const key = this.keyOf(ref);
    try {
      await this.request('DeleteObject', key, () => this.client.send(new DeleteObjectCommand({ Bucket: this.settings.bucket, Key: key })));
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }

  async close(): Promise<void> {
    await this.staleCleanup;
    this.client.destroy();
    this.agent.destroy();
  }
}

// ---- helpers -------------------------------------------------------------------------------------

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function md5(body: Buffer): string {
  return createHash('md5').update(body).digest('base64');
}

/** Cuts the concatenation of `parts` into bodies of `size` bytes (the last one shorter), copying only where a body spans parts. */
function splitIntoParts(parts: readonly Buffer[], size: number): Buffer[] {
  const out: Buffer[] = [];
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for (const part of parts) {
    for (let at = 0; at < part.length; ) {
      const take = Math.min(size - pendingBytes, part.length - at);
      pending.push(part.subarray(at, at + take));
      pendingBytes += take;
      at += take;
      if (pendingBytes === size) {
        out.push(pending.length === 1 ? pending[0]! : Buffer.concat(pending));
        pending = [];
        pendingBytes = 0;
      }
    }
  }
  if (pendingBytes > 0) out.push(pending.length === 1 ? pending[0]! : Buffer.concat(pending));
  return out;
}

function errorName(error: unknown): string | undefined {
  return error instanceof Error ? error.name : undefined;
}

function httpStatusOf(error: unknown): number | undefined {
  const metadata = (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata;
  return metadata?.httpStatusCode;
}

function isMissing(error: unknown): boolean {
  const cause = error instanceof S3RequestError ? error.cause : error;
  const name = errorName(cause);
  return name === 'NoSuchKey' || name === 'NotFound' || name === 'NoSuchBucket' || httpStatusOf(cause) === 404;
}

function isTransient(error: unknown, status: number | undefined): boolean {
  if (status !== undefined && (status >= 500 || status === 429 || status === 408)) return true;
  if (TRANSIENT_NAMES.has(errorName(error) ?? '')) return true;
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
  // A request cut before any response: Node says "socket hang up" with ECONNRESET, or aborts.
  return status === undefined && error instanceof Error && /socket hang up|aborted|premature close/i.test(error.message);
}

function detailOf(error: unknown, status: number | undefined): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const name = error.name !== 'Error' ? error.name : typeof code === 'string' ? code : undefined;
  const message = error.message && error.message !== 'UnknownError' ? error.message : 'no error message';
  const parts = [status === undefined ? undefined : `HTTP ${status}`, name, message].filter((p) => p !== undefined && p !== '');
  // SDK messages for bodiless errors (HEAD) are just the name; do not repeat it.
  return [...new Set(parts)].join(': ');
}
