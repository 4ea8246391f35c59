/**
 * `bh run` with [SSH] destinations on a real OpenSSH sshd on 127.0.0.1 (tests/helpers/sshd.ts):
 * the old [SSH] keys (plus bh's remote_dir, ssh_key, known_hosts) map onto the SFTP backend;
 * the backup into the local destination is copied to the server, where the repository is read
 * back from the server's disk; a second server on a port nobody listens on fails alone (exit 3).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobPaths } from '../src/jobs/state.js';
import { type RunResult, bh, hashTree, makeTempDir, removeDir } from './helpers/cli.js';
import { unusedPort } from './helpers/ports.js';
import { type Sshd, startSshd } from './helpers/sshd.js';

type Json = Record<string, unknown>;
const PASS = 'job pass for sftp';

let sshd: Sshd;
let tmp: string;

beforeAll(async () => {
  sshd = await startSshd();
  tmp = await makeTempDir('bh-jobs-sftp-');
});

afterAll(async () => {
  await sshd?.stop();
  if (tmp) await removeDir(tmp);
});

function detail(r: RunResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

describe('bh run with [SSH] destinations', () => {
  it('copies the backup to the SFTP server; an unreachable second server fails alone (exit 3)', async () => {
    const source = join(tmp, 'source');
    mkdirSync(join(source, 'etc'), { recursive: true });
    writeFileSync(join(source, 'etc/app.conf'), 'key = value\n');
    writeFileSync(join(source, 'data.bin'), Buffer.alloc(150_000, 9));
    const remoteDir = join(sshd.dir, 'repos-job');
    const down = await unusedPort();
    const config = join(tmp, 'sftp.ini');
    writeFileSync(
      config,
      `[META]\nschema_version = 3\n[DEFAULT]\nsource_dir = ${source}\nmode = incremental\n[MODES]\nlocal = True\nssh = True\n[BACKUPS]\nbackup_dirs = ${join(tmp, 'local')}\n` +
        `[SSH]\nssh_servers = 127.0.0.1:${sshd.port}, 127.0.0.1:${down}\nusername = root\nremote_dir = ${remoteDir}\nssh_key = ${sshd.userKey}\nknown_hosts = ${sshd.knownHosts}\n[ENCRYPTION]\npassphrase = \${JOB_PASS}\n`,
    );
    const stateDir = join(tmp, 'state');
    const r = await bh(['run', '--config', config, '--state-dir', stateDir], { env: { JOB_PASS: PASS, BH_RETRY_ATTEMPTS: '2', BH_RETRY_MAX_SECONDS: '2' } });
    expect(r.code, detail(r)).toBe(3);

    const run = (JSON.parse(readFileSync(jobPaths(stateDir, config).status, 'utf8')) as { runs: Json[] }).runs[0]!;
    const [local, sftp, unreachable] = run['destinations'] as Json[];
    expect(local!['ok']).toBe(true);
    expect(sftp!['location']).toBe(`sftp://root@127.0.0.1:${sshd.port}/${remoteDir}`);
    expect(sftp!['ok']).toBe(true);
    expect(sftp!['copiedFrom']).toBe(local!['location']);
    expect(unreachable!['location']).toBe(`sftp://root@127.0.0.1:${down}/${remoteDir}`);
    expect(unreachable!['ok']).toBe(false);

    // The server's side of the repository, read straight from its disk.
    const snapshots = await bh(['snapshots', '-r', remoteDir, '--json'], { env: { BH_PASSWORD: PASS } });
    expect(snapshots.code, detail(snapshots)).toBe(0);
    expect((JSON.parse(snapshots.stdout) as Json[]).map((s) => s['id'])).toEqual([sftp!['snapshotId']]);
    const target = join(tmp, 'restore');
    const restore = await bh(['restore', 'latest', '-r', remoteDir, '--target', target], { env: { BH_PASSWORD: PASS } });
    expect(restore.code, detail(restore)).toBe(0);
    expect(await hashTree(join(target, source))).toEqual(await hashTree(source));
  });
});
