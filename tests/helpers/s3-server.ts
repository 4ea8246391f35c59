/**
 * A real S3-protocol server for tests: s3rver 3.7.1 in a child process on 127.0.0.1, storing in
 * a temp directory, behind a small guard proxy (also on 127.0.0.1) that the clients talk to.
 *
 * s3rver is the store: every object bh writes is a file in its directory. The guard exists only
 * because s3rver lacks three things real S3 has and bh relies on (../../../shared/PEERS.md):
 * - it ignores `If-None-Match: *` on PUT: the guard answers 412 when the object exists (and
 *   serialises conditional PUTs of one key, so two racing ones cannot both win);
 * - it has no ListMultipartUploads (GET ?uploads) and no AbortMultipartUpload (DELETE ?uploadId):
 *   the guard answers both from s3rver's own upload folders (`<bucket>/._S3rver_uploads/<id>/key`,
 *   initiation time = the folder's mtime), so clean-up of stale uploads acts on s3rver's real state.
 * Everything else is forwarded untouched. A child process (not in-process) so that a test can
 * SIGKILL the server mid-operation and start it again on the same port and directory; while it
 * is down the guard drops every client connection, as a dead server would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './cli.js';
import { unusedPort } from './ports.js';

const S3RVER = join(ROOT, 'node_modules/s3rver/bin/s3rver.js');
const UPLOADS = '._S3rver_uploads';

export interface S3TestServer {
  /** What clients use: the guard's URL, e.g. http://127.0.0.1:PORT. */
  endpoint: string;
  /** The bucket created at start. */
  bucket: string;
  /** s3rver's data directory (`<dir>/<bucket>/<key>._S3rver_object`). */
  dataDir: string;
  /** Environment for bh: endpoint, path style, region, credentials (s3rver's default account). */
  env: Record<string, string>;
  /**
   * Network fault: the next request whose "METHOD /bucket/key?query" matches `pattern` has its
   * connection cut before it reaches s3rver.
   */
  dropNext(pattern: RegExp): void;
  /** Every request the guard saw, as "METHOD /bucket/key?query" (tests may clear it). */
  requests: string[];
  /** The file s3rver stores an object's bytes in (and `.replace('object', 'metadata.json')` its headers). */
  objectFile(bucket: string, key: string): string;
  /** SIGKILLs s3rver (the guard stays up and drops connections until restart). */
  kill(): Promise<void>;
  /** Starts s3rver again on the same port and directory. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`s3rver exited with ${child.exitCode} before listening`);
    const up = await new Promise<boolean>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/', method: 'GET' }, (res) => {
        res.resume();
        resolve(true);
      });
      req.on('error', () => resolve(false));
      req.end();
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`s3rver did not listen on ${port} within 15 s`);
}

function xml(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`);
}

const escapeXml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export async function startS3Server(bucket = 'bh-test'): Promise<S3TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'bh-s3rver-'));
  const upstreamPort = await unusedPort();
  let child: ChildProcess | undefined;

  const startChild = async (): Promise<void> => {
    const proc = spawn(process.execPath, ['--openssl-legacy-provider', S3RVER, '-d', dataDir, '-a', '127.0.0.1', '-p', String(upstreamPort), '--silent', '--no-vhost-buckets', '--configure-bucket', bucket], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    child = proc;
    await waitForPort(upstreamPort, proc);
  };

  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const upstream = httpRequest({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
      upRes.on('error', () => res.destroy());
    });
    // A dead upstream looks like a dead server to the client: the connection drops.
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  };

  const head = (path: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const r = httpRequest({ host: '127.0.0.1', port: upstreamPort, method: 'HEAD', path }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      r.on('error', reject);
      r.end();
    });

  /** Per key: the conditional PUT in progress, so two racing ones are decided one after the other. */
  const conditional = new Map<string, Promise<void>>();

  const conditionalPut = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    const before = conditional.get(path) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    conditional.set(path, before.then(() => mine));
    await before;
    try {
      if ((await head(path)) === 200) {
        req.resume();
        xml(res, 412, '<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>If-None-Match</Condition></Error>');
        return;
      }
      await new Promise<void>((resolve) => {
        res.on('close', resolve);
        forward(req, res);
      });
    } finally {
      release();
    }
  };

  const uploadsDir = (b: string): string => join(dataDir, b, UPLOADS);

  const listUploads = async (res: ServerResponse, b: string, prefix: string): Promise<void> => {
    const entries: string[] = [];
    const ids = await readdir(uploadsDir(b)).catch(() => [] as string[]);
    for (const id of ids.sort()) {
      const dir = join(uploadsDir(b), id);
      const key = await readFile(join(dir, 'key'), 'utf8').catch(() => undefined);
      if (key === undefined || !key.startsWith(prefix)) continue;
      const initiated = (await stat(dir)).mtime.toISOString();
      entries.push(`<Upload><Key>${escapeXml(key)}</Key><UploadId>${id}</UploadId><Initiated>${initiated}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`);
    }
    xml(res, 200, `<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${b}</Bucket><Prefix>${escapeXml(prefix)}</Prefix><IsTruncated>false</IsTruncated>${entries.join('')}</ListMultipartUploadsResult>`);
  };

  const abortUpload = async (res: ServerResponse, b: string, uploadId: string): Promise<void> => {
    if (!/^[0-9a-f]+$/.test(uploadId)) return xml(res, 400, '<Error><Code>InvalidArgument</Code></Error>');
    const dir = join(uploadsDir(b), uploadId);
    if (!(await stat(dir).then(() => true, () => false))) return xml(res, 404, '<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist</Message></Error>');
    await rm(dir, { recursive: true, force: true });
    res.writeHead(204);
    res.end();
  };

  const requests: string[] = [];
  const drops: RegExp[] = [];
  const guard: Server = createServer((req, res) => {
    const line = `${req.method} ${req.url}`;
    requests.push(line);
    const drop = drops.findIndex((pattern) => pattern.test(line));
    if (drop >= 0) {
      drops.splice(drop, 1);
      req.socket.destroy();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://guard');
    const [, b = '', ...keyParts] = url.pathname.split('/');
    const key = decodeURIComponent(keyParts.join('/'));
    const handle = async (): Promise<void> => {
      if (req.method === 'GET' && key === '' && url.searchParams.has('uploads')) return listUploads(res, b, url.searchParams.get('prefix') ?? '');
      if (req.method === 'DELETE' && key !== '' && url.searchParams.has('uploadId')) return abortUpload(res, b, url.searchParams.get('uploadId') ?? '');
      if (req.method === 'PUT' && key !== '' && req.headers['if-none-match'] === '*' && !url.searchParams.has('uploadId')) return conditionalPut(req, res, url.pathname);
      forward(req, res);
    };
    handle().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => guard.listen(0, '127.0.0.1', resolve));
  const address = guard.address();
  const endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

  await startChild();

  const kill = async (): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGKILL');
    });
  };

  return {
    endpoint,
    bucket,
    dataDir,
    env: {
      BH_S3_ENDPOINT: endpoint,
      BH_S3_PATH_STYLE: '1',
      BH_S3_REGION: 'us-east-1',
      // s3rver's built-in account (it does not check secret keys).
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
    },
    requests,
    dropNext: (pattern) => drops.push(pattern),
    objectFile: (b, key) => join(dataDir, b, `${key}._S3rver_object`),
    kill,
    restart: startChild,
    stop: async () => {
      await kill();
      guard.closeAllConnections();
      await new Promise<void>((resolve) => guard.close(() => resolve()));
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
