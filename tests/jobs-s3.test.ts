/**
 * `bh run` with an [S3] destination on a real S3-protocol server (s3rver behind its guard,
 * tests/helpers/s3-server.ts): the old [S3] keys map onto the S3 backend, the snapshot backed up
 * into the local destination is copied into the bucket and restores byte for byte from there,
 * the credentials never show; and an S3 endpoint nobody listens on fails alone (exit 3).
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobName, jobPaths } from '../src/jobs/state.js';
import { type RunResult, bh, hashTree, makeTempDir, removeDir } from './helpers/cli.js';
import { unusedPort } from './helpers/ports.js';
import { type S3TestServer, startS3Server } from './helpers/s3-server.js';

type Json = Record<string, unknown>;
const PASS = 'job pass for s3';
const S3_SECRET = 'S3RVER';

let server: S3TestServer;
let tmp: string;
let source: string;

beforeAll(async () => {
  server = await startS3Server('bh-jobs');
  tmp = await makeTempDir('bh-jobs-s3-');
  source = join(tmp, 'source');
  mkdirSync(join(source, 'd'), { recursive: true });
  writeFileSync(join(source, 'one.txt'), 'one\n');
  writeFileSync(join(source, 'd/two.bin'), Buffer.alloc(200_000, 3));
});

afterAll(async () => {
  await server?.stop();
  if (tmp) await removeDir(tmp);
});

function detail(r: RunResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

function writeJob(name: string, endpoint: string, prefix: string): string {
  const config = join(tmp, `${name}.ini`);
  writeFileSync(
    config,
    `[META]\nschema_version = 3\n[DEFAULT]\nsource_dir = ${source}\nmode = incremental\n[MODES]\nlocal = True\nssh = False\ns3 = True\n[BACKUPS]\nbackup_dirs = ${join(tmp, `${name}-local`)}\n` +
      `[S3]\nbucket = ${server.bucket}\nprefix = ${prefix}\nregion = us-east-1\naccess_key = \${S3_KEY}\nsecret_key = \${S3_SECRET}\nendpoint = ${endpoint}\npath_style = True\n[ENCRYPTION]\npassphrase = \${JOB_PASS}\n`,
  );
  return config;
}

const jobEnv = { JOB_PASS: PASS, S3_KEY: 'S3RVER', S3_SECRET, AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, BH_RETRY_ATTEMPTS: '2', BH_RETRY_MAX_SECONDS: '2' };

describe('bh run with an [S3] destination', () => {
  it('copies the backup into the bucket, from where it restores byte for byte; no credential is printed or stored', async () => {
    const config = writeJob('s3ok', server.endpoint, 'hosts/h1');
    const stateDir = join(tmp, 'state');
    const r = await bh(['run', '--config', config, '--state-dir', stateDir, '--json'], { env: jobEnv });
    expect(r.code, detail(r)).toBe(0);
    const run = JSON.parse(r.stdout.split('\n').find((l) => l.includes('"message_type":"run"'))!) as Json;
    const [local, s3] = run['destinations'] as Json[];
    expect(s3!['location']).toBe(`s3:${server.bucket}/hosts/h1`);
    expect(s3!['copiedFrom']).toBe(local!['location']);
    expect(s3!['initialized']).toBe(true);

    // The repository is in s3rver's own store, under the prefix.
    const snapshotsDir = join(server.dataDir, server.bucket, 'hosts/h1/snapshots');
    expect(readdirSync(snapshotsDir).filter((f) => f.endsWith('._S3rver_object')).map((f) => f.slice(0, 64))).toEqual([s3!['snapshotId']]);

    const target = join(tmp, 'restore');
    const restore = await bh(['restore', 'latest', '-r', `s3:${server.bucket}/hosts/h1`, '--target', target], { env: { ...server.env, BH_PASSWORD: PASS } });
    expect(restore.code, detail(restore)).toBe(0);
    expect(await hashTree(join(target, source))).toEqual(await hashTree(source));

    const status = readFileSync(jobPaths(stateDir, config).status, 'utf8');
    for (const text of [r.stdout, r.stderr, status]) {
      expect(text).not.toContain(PASS);
      expect(text).not.toContain(`secret_key = ${S3_SECRET}`);
    }
    const check = await bh(['config', 'check', '--config', config], { env: jobEnv });
    expect(check.stdout).toMatch(/secret_key\s+\$\{S3_SECRET\} \(from the environment, masked\)/);
  });

  it('an S3 endpoint nobody listens on fails alone: the local destination gets its snapshot, exit 3', async () => {
    const closedPort = await unusedPort();
    const config = writeJob('s3down', `http://127.0.0.1:${closedPort}`, 'down');
    const stateDir = join(tmp, 'state-down');
    const r = await bh(['run', '--config', config, '--state-dir', stateDir], { env: jobEnv });
    expect(r.code, detail(r)).toBe(3);
    const run = (JSON.parse(readFileSync(jobPaths(stateDir, config).status, 'utf8')) as { runs: Json[] }).runs[0]!;
    const [local, s3] = run['destinations'] as Json[];
    expect(local!['ok']).toBe(true);
    expect(s3!['ok']).toBe(false);
    expect(String(s3!['error'])).not.toBe('');
    // The backend's retries are warnings of the run: on stderr and in the job's log.
    const log = readFileSync(join(stateDir, `${jobName(config)}.log`), 'utf8');
    expect(log).toMatch(/"level":"warn".*"msg":"retrying [^"]+ after /);
    expect(r.stderr).toMatch(/warning: retrying .* after /);
    const snapshots = await bh(['snapshots', '-r', join(tmp, 's3down-local'), '--json'], { env: { BH_PASSWORD: PASS } });
    expect((JSON.parse(snapshots.stdout) as Json[]).length).toBe(1);
  });
});
