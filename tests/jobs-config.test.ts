/**
 * Job configs through the real CLI (`bh config check|example|init-key`, `bh run`): real files
 * in temp dirs; every validation error reported together with its line; ${ENV} secrets;
 * --config / --profile / the default path; the seed README's example blocks as they are;
 * secrets masked; the refusal of unencrypted configs; key files of mode 0600.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateJob } from '../src/jobs/config.js';
import { parseIni } from '../src/jobs/ini.js';
import { ROOT, bh, makeTempDir, removeDir, type RunResult } from './helpers/cli.js';

const SEED = join(ROOT, 'tests/fixtures/seed-readme');

let tmp: string;
beforeAll(async () => {
  tmp = await makeTempDir('bh-jobs-config-');
});
afterAll(async () => {
  await removeDir(tmp);
});

function detail(r: RunResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

let fileCount = 0;
function writeConfig(text: string, dir = tmp): string {
  const path = join(dir, `job-${++fileCount}.ini`);
  writeFileSync(path, text);
  return path;
}

function validJob(extra = ''): string {
  return `[META]\nschema_version = 3\n[DEFAULT]\nsource_dir = ${tmp}\nmode = full\n[MODES]\nlocal = True\nssh = False\n[BACKUPS]\nbackup_dirs = ${join(tmp, 'repo-a')}\n[ENCRYPTION]\npassphrase = \${JOB_PASS}\n${extra}`;
}

describe('bh config check', () => {
  it('lists every validation error together, each with line, section, key and a fix; exit 1', async () => {
    const config = writeConfig(
      [
        '[DEFAULT]', //                         1
        'source_dir = data', //                 2 relative
        'mode = sometimes', //                  3
        'compress_type = rar', //               4
        '[MODES]', //                           5
        'local = perhaps', //                   6
        'ssh = True', //                        7 ([SSH] lacks servers and username)
        's3 = yes', //                          8 ([S3] lacks bucket and region)
        'db = on', //                           9
        '[ENCRYPTION]', //                      10
        'enabled = False', //                   11 (and no secret)
        '[HOOKS]', //                           12
        'timeout_seconds = soon', //            13
        '[RETENTION]', //                       14
        'max_count = -1', //                    15
        '[SCHEDULE]', //                        16
        'times = 03:00, 25:61', //              17
        '[HEARTBEAT]', //                       18
        'url = file:///etc/passwd', //          19
        '[PREFLIGHT]', //                       20
        'staleness_factor = often', //          21
        '[SSH]', //                             22
        '[S3]', //                              23
      ].join('\n') + '\n',
    );
    const r = await bh(['config', 'check', '--config', config]);
    expect(r.code, detail(r)).toBe(1);
    const expected: [string, RegExp][] = [
      [':2 [DEFAULT] source_dir', /'data' is not an absolute path; write the full path/],
      [':3 [DEFAULT] mode', /'sometimes' is not a backup mode; write full, incremental or differential/],
      [':4 [DEFAULT] compress_type', /'rar' is not none, zip or zip_pw/],
      [':6 [MODES] local', /'perhaps' is not a boolean; write True or False/],
      [':9 [MODES] db', /is True, but neither \[DATABASE\] \(MySQL\/MariaDB\) nor \[POSTGRES\] names a database; add a \[DATABASE\] section/],
      [':22 [SSH] ssh_servers', /is not set; list the SSH servers/],
      [':22 [SSH] username', /is not set; set the SSH user name/],
      [':23 [S3] bucket', /is not set; set the bucket name/],
      [':23 [S3] region', /is not set; set the AWS region/],
      [':10 [ENCRYPTION]', /encryption is disabled and no secret is set, but bh encrypts every repository; add 'passphrase = \$\{BH_PASSPHRASE\}'.*bh config init-key/],
      [':13 [HOOKS] timeout_seconds', /'soon' is not a whole number/],
      [':15 [RETENTION] max_count', /'-1' is not a whole number/],
      [':17 [SCHEDULE] times', /'25:61' is not a time of day; use HH:MM/],
      [':19 [HEARTBEAT] url', /is not an http:\/\/ or https:\/\/ URL/],
      [':21 [PREFLIGHT] staleness_factor', /'often' is not a number/],
    ];
    expect(r.stderr, detail(r)).toContain(`${expected.length} problems in the configuration`);
    for (const [where, what] of expected) {
      const line = r.stderr.split('\n').find((l) => l.includes(`${config}${where}:`));
      expect(line, `${where} missing in\n${r.stderr}`).toBeDefined();
      expect(line).toMatch(what);
    }
  });

  it('names an unset ${ENV} variable and the key that uses it; bh run refuses too and writes nothing', async () => {
    const config = writeConfig(validJob());
    const env = { JOB_PASS: undefined };
    const check = await bh(['config', 'check', '--config', config], { env });
    expect(check.code, detail(check)).toBe(1);
    expect(check.stderr).toContain(`${config}:12 [ENCRYPTION] passphrase: environment variable JOB_PASS is not set; export JOB_PASS`);
    const stateDir = join(tmp, 'state-unset');
    const run = await bh(['run', '--config', config, '--state-dir', stateDir], { env });
    expect(run.code, detail(run)).toBe(1);
    expect(run.stderr).toContain('JOB_PASS is not set');
    expect(existsSync(join(tmp, 'repo-a'))).toBe(false);
    expect(existsSync(stateDir)).toBe(false);
    const empty = await bh(['config', 'check', '--config', config], { env: { JOB_PASS: '' } });
    expect(empty.code, detail(empty)).toBe(1);
    expect(empty.stderr).toContain(`${config}:12 [ENCRYPTION] passphrase: is empty once its \${…} variables are replaced`);
  });

  it('prints the resolved job with every secret masked, in text and JSON', async () => {
    const secret = 'pa%ss;wo#rd-never-printed';
    const config = writeConfig(validJob('[S3]\nsecret_key = literal-secret-key\n[TAILSCALE]\nauth_key = tskey-auth-secret\n'));
    const env = { JOB_PASS: secret };
    for (const args of [[], ['--json']]) {
      const r = await bh(['config', 'check', '--config', config, ...args], { env });
      expect(r.code, detail(r)).toBe(0);
      const all = r.stdout + r.stderr;
      for (const hidden of [secret, 'literal-secret-key', 'tskey-auth-secret']) expect(all).not.toContain(hidden);
      expect(all).toContain(join(tmp, 'repo-a'));
    }
    const text = await bh(['config', 'check', '--config', config], { env });
    expect(text.stdout).toMatch(/passphrase\s+\$\{JOB_PASS\} \(from the environment, masked\)/);
    expect(text.stdout).toMatch(/secret_key\s+\*+ \(masked\)/);
    const json = JSON.parse((await bh(['config', 'check', '--config', config, '--json'], { env })).stdout) as { destinations: { location: string }[]; secret: { kind: string } };
    expect(json.destinations).toEqual([{ kind: 'local', location: join(tmp, 'repo-a') }]);
    expect(json.secret).toEqual({ kind: 'passphrase' });
  });

  it('warns about an old schema_version, and about settings bh does not apply', async () => {
    const config = writeConfig(validJob('[DEDUP]\nenabled = False\n[RETENTION]\nmax_count = 5\n[TYPO]\nx = 1\n').replace('schema_version = 3', 'schema_version = 2'));
    const r = await bh(['config', 'check', '--config', config], { env: { JOB_PASS: 'x' } });
    expect(r.code, detail(r)).toBe(0);
    expect(r.stderr).toContain('config schema version mismatch: file has v2, bh reads v3');
    expect(r.stderr).toContain('[DEDUP] enabled = False is ignored: bh deduplicates every repository');
    expect(r.stderr).toMatch(/unknown section \[TYPO\] is ignored/);
    expect(r.stdout).toContain("retention:    after each complete backup, forget this job's snapshots beyond max_count 5 / max_age_days 0 (0: off; the newest is always kept), then prune");
  });

  it('refuses --config naming a missing file, even when config/config.ini exists', async () => {
    const cwd = join(tmp, 'cwd-missing');
    mkdirSync(join(cwd, 'config'), { recursive: true });
    writeFileSync(join(cwd, 'config/config.ini'), validJob());
    const r = await bh(['config', 'check', '--config', 'nope.ini'], { cwd, env: { JOB_PASS: 'x' } });
    expect(r.code, detail(r)).toBe(1);
    expect(r.stderr).toContain(`${join(cwd, 'nope.ini')}: no config file here (from --config)`);
  });

  it('reads config/config.ini by default and config/config.NAME.ini with --profile, relative to the working directory', async () => {
    const cwd = join(tmp, 'cwd-profiles');
    mkdirSync(join(cwd, 'config'), { recursive: true });
    writeFileSync(join(cwd, 'config/config.ini'), validJob());
    writeFileSync(join(cwd, 'config/config.staging.ini'), validJob().replace(join(tmp, 'repo-a'), join(tmp, 'repo-staging')));
    const env = { JOB_PASS: 'x' };
    const plain = await bh(['config', 'check', '--json'], { cwd, env });
    expect(plain.code, detail(plain)).toBe(0);
    expect(JSON.parse(plain.stdout).file).toBe(join(cwd, 'config/config.ini'));
    const staging = await bh(['config', 'check', '--profile', 'staging', '--json'], { cwd, env });
    expect(staging.code, detail(staging)).toBe(0);
    expect(JSON.parse(staging.stdout).destinations[0].location).toBe(join(tmp, 'repo-staging'));
    const missing = await bh(['config', 'check', '--profile', 'prod'], { cwd, env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`${join(cwd, 'config/config.prod.ini')}: no config file here (from --profile prod)`);
    const bad = await bh(['config', 'check', '--profile', '../etc'], { cwd, env });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("'../etc' is not a profile name");
  });

  it('prints an example that passes its own check', async () => {
    const example = await bh(['config', 'example']);
    expect(example.code, detail(example)).toBe(0);
    const config = writeConfig(example.stdout);
    const r = await bh(['config', 'check', '--config', config, '--json'], { env: { BACKUP_ENCRYPTION_PASSPHRASE: 'x' } });
    expect(r.code, detail(r)).toBe(0);
    expect(JSON.parse(r.stdout).destinations.map((d: { location: string }) => d.location)).toEqual(['/mnt/backup/bh', '/mnt/offsite/bh']);
  });
});

describe("the seed README's example configuration", () => {
  const files = readdirSync(SEED).filter((f) => f.endsWith('.ini'));

  it('parses every example block as it is', () => {
    expect(files.length).toBe(6);
    for (const file of files) expect(() => parseIni(readFileSync(join(SEED, file), 'utf8'), file)).not.toThrow();
    const preflight = parseIni(readFileSync(join(SEED, 'preflight.ini'), 'utf8'), 'preflight.ini').sections.get('PREFLIGHT')!;
    // The old tool read these with their comments attached ("DATA # XFS / ext4 LABEL").
    expect(preflight.entries.get('expected_label')!.value).toBe('DATA');
    expect(preflight.entries.get('staleness_factor')!.value).toBe('2.0');
    expect(preflight.entries.get('auto_fix_ownership')!.value).toBe('False');
    const encryption = parseIni(readFileSync(join(SEED, 'encryption.ini'), 'utf8'), 'encryption.ini').sections.get('ENCRYPTION')!;
    expect(encryption.entries.get('workers')!.value).toBe('4');
    expect(encryption.entries.has('key_file')).toBe(false);
  });

  it('makes a valid job together with the required sections', async () => {
    const blocks = ['encryption.ini', 'tailscale.ini', 'preflight.ini', 'webhook.ini', 'heartbeat.ini'].map((f) => readFileSync(join(SEED, f), 'utf8'));
    const head = `[META]\nschema_version = 3\n[DEFAULT]\nsource_dir = ${tmp}\nmode = incremental\n[MODES]\nlocal = True\nssh = False\n[BACKUPS]\nbackup_dirs = ${join(tmp, 'seed-repo')}\n`;
    const config = writeConfig(head + blocks.join(''));
    const env = { BACKUP_ENCRYPTION_PASSPHRASE: 'seed-pass', TAILSCALE_AUTH_KEY: 'tskey-seed', WEBHOOK_AUTH_TOKEN: 'Bearer seed' };
    const r = await bh(['config', 'check', '--config', config, '--json'], { env });
    expect(r.code, detail(r)).toBe(0);
    const job = JSON.parse(r.stdout) as { heartbeat: boolean; warnings: string[] };
    expect(job.heartbeat).toBe(true);
    expect(job.warnings.join('\n')).toContain('[TAILSCALE] is not applied');
    expect(job.warnings.join('\n')).toContain('[PREFLIGHT] expected_label is not checked by bh yet');
    expect(job.warnings.join('\n')).toContain('bh never mounts');
    expect(r.stdout + r.stderr).not.toContain('seed-pass');
    // The env-secrets block names four variables: each one unset is reported by name.
    const envBlock = parseIni(head.replace('ssh = False', 'ssh = True') + readFileSync(join(SEED, 'env-secrets.ini'), 'utf8'), 'env.ini');
    expect(() => validateJob(envBlock, {})).toThrow(/SSH_PASSWORD is not set[\s\S]*BACKUP_ENCRYPTION_PASSPHRASE is not set/);
  });
});

describe('bh config init-key', () => {
  it('writes 32 random bytes with mode 0600, prints the path and a warning, and never overwrites', async () => {
    const path = join(tmp, 'keys/backup.key');
    mkdirSync(join(tmp, 'keys'));
    const r = await bh(['config', 'init-key', path]);
    expect(r.code, detail(r)).toBe(0);
    expect(r.stdout).toContain(`wrote a new 32-byte key to ${path}`);
    expect(r.stdout).toContain(`key_file = ${path}`);
    expect(r.stderr).toMatch(/losing this file loses every backup/);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const key = readFileSync(path);
    expect(key.length).toBe(32);

    const again = await bh(['config', 'init-key', path]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists; bh never overwrites a key file');
    expect(readFileSync(path).equals(key)).toBe(true);

    const other = join(tmp, 'keys/second.key');
    await bh(['config', 'init-key', other]);
    expect(readFileSync(other).equals(key)).toBe(false);

    // The key opens a job's repositories.
    const config = writeConfig(validJob().replace('passphrase = ${JOB_PASS}', `key_file = ${path}`));
    const check = await bh(['config', 'check', '--config', config]);
    expect(check.code, detail(check)).toBe(0);
    expect(check.stdout).toContain(`key file ${path}`);
    const wrongSize = join(tmp, 'keys/short.key');
    writeFileSync(wrongSize, 'short');
    const bad = await bh(['config', 'check', '--config', writeConfig(validJob().replace('passphrase = ${JOB_PASS}', `key_file = ${wrongSize}`))]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`${wrongSize} holds 5 bytes, a key file holds exactly 32`);
  });
});

describe('mapping onto repositories', () => {
  it('makes one repository per backup dir, SSH server and S3 bucket, with credentials in the backend options only', () => {
    const text = `[DEFAULT]\nsource_dir = /data\nmode = differential\n[MODES]\nlocal = yes\nssh = on\ns3 = 1\n[BACKUPS]\nbackup_dirs = /b1,\n  /b2\n[SSH]\nssh_servers = a.example, b.example:2222\nusername = backup\npassword = \${SSHPW}\nremote_dir = /srv/bh\nbandwidth_limit = 512\n[S3]\nbucket = bkt\nprefix = /hosts/h1/\nregion = eu-west-1\naccess_key = AK\nsecret_key = \${S3SECRET}\nendpoint = http://127.0.0.1:9000\nmax_concurrency = 4\n[ENCRYPTION]\npassphrase = p\n`;
    const job = validateJob(parseIni(text, 'map.ini'), { SSHPW: 'ssh-secret', S3SECRET: 's3-secret' });
    expect(job.mode).toBe('differential');
    expect(job.destinations.map((d) => d.location)).toEqual(['/b1', '/b2', 'sftp:backup@a.example:/srv/bh', 'sftp://backup@b.example:2222//srv/bh', 's3:bkt/hosts/h1']);
    const [, , sftp, , s3] = job.destinations;
    expect(sftp!.backend.env['BH_SSH_PASSWORD']).toBe('ssh-secret');
    expect(sftp!.backend.limitUpload).toBe(512);
    expect(s3!.backend).toMatchObject({ s3Region: 'eu-west-1', s3Endpoint: 'http://127.0.0.1:9000', connections: 4 });
    expect(s3!.backend.env).toMatchObject({ AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 's3-secret' });
    expect(job.destinations[0]!.backend.env['BH_SSH_PASSWORD']).toBeUndefined();
    expect(job.secretVariables.sort()).toEqual(['S3SECRET', 'SSHPW']);
    for (const d of job.destinations) expect(d.location).not.toMatch(/secret/);
  });
});
