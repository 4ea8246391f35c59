/**
 * System snapshots of this machine's real state, with its own tools: as root (checked against
 * what the tools themselves print, so the test holds whatever is installed), and as a throwaway
 * user made by the test, whose home holds dotfiles, a script, a user unit, a crontab (the real cron's), an npm -g package
 * installed by the real npm into the user's prefix, and a pip --user package (its dist-info
 * written by the test; the real pip lists it). The restore script of that capture writes the
 * user's files as the user, through the real runuser. And two captures around a real
 * `apt-get install` of a package the test builds (so no mirror is needed; purged afterwards).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BH, type TestRepo, initRepo, makeTempDir, removeDir } from './helpers/cli.js';
import { withAptTurn } from './helpers/apt-turn.js';

const USER = `bhsys${process.pid}`;
/** A package with no files, built and installed by the test, purged after it. */
const PACKAGE = `bh-test-empty-${process.pid}`;
const CRONTAB = '17 4 * * * $HOME/bin/hello\n';
let dir: string;
let repo: TestRepo;
let home: string;
let uid: number;

/** The packages apt-mark says were installed by hand. */
function aptManual(): string[] {
  return execFileSync('apt-mark', ['showmanual'], { encoding: 'utf8' }).split('\n').filter((l) => l !== '');
}

/** Runs bh as the throwaway user, its environment a login's (HOME, PATH with its npm prefix). */
function bhAsUser(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const env = { HOME: home, PATH: `${home}/.npm-global/bin:/usr/local/bin:/usr/sbin:/usr/bin:/bin`, NPM_CONFIG_PREFIX: `${home}/.npm-global`, BH_PASSWORD: 'correct horse battery staple', BH_REPO: repo.path };
  const result = spawnSync('runuser', ['-u', USER, '--', process.execPath, BH, ...args], { env, encoding: 'utf8', cwd: home });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

beforeAll(async () => {
  dir = await makeTempDir('bh-system-real-');
  await chmod(dir, 0o755);
  repo = await initRepo(dir);
  home = join(dir, 'home');
  await mkdir(home);
  execFileSync('useradd', ['--no-create-home', '--home-dir', home, '--shell', '/bin/bash', USER]);
  uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim());
  await writeFile(join(home, '.bashrc'), 'alias ll="ls -l"\n');
  await writeFile(join(home, '.gitconfig'), '[user]\n\tname = Test User\n');
  await mkdir(join(home, 'bin'));
  await writeFile(join(home, 'bin/hello'), '#!/bin/sh\necho hello\n', { mode: 0o750 });
  await mkdir(join(home, '.config/systemd/user/timers.target.wants'), { recursive: true });
  await writeFile(join(home, '.config/systemd/user/tidy.timer'), '[Timer]\nOnCalendar=daily\n[Install]\nWantedBy=timers.target\n');
  execFileSync('ln', ['-s', '../tidy.timer', join(home, '.config/systemd/user/timers.target.wants/tidy.timer')]);
  // A package for npm -g, installed by the real npm from a tarball made here (no registry needed).
  const pkg = join(dir, 'pkg');
  await mkdir(pkg);
  await writeFile(join(pkg, 'package.json'), JSON.stringify({ name: 'bh-demo-tool', version: '1.2.3', bin: { 'bh-demo': 'cli.js' } }));
  await writeFile(join(pkg, 'cli.js'), '#!/usr/bin/env node\n');
  const tarball = join(pkg, execFileSync('npm', ['pack', '--silent'], { cwd: pkg, encoding: 'utf8' }).trim());
  // A package pip lists as --user: its metadata where pip looks for the user's packages.
  const site = execFileSync('python3', ['-c', 'import site; print(site.getusersitepackages())'], { env: { ...process.env, HOME: home }, encoding: 'utf8' }).trim();
  await mkdir(join(site, 'bh_demo_pkg-0.4.0.dist-info'), { recursive: true });
  await writeFile(join(site, 'bh_demo_pkg-0.4.0.dist-info/METADATA'), 'Metadata-Version: 2.1\nName: bh-demo-pkg\nVersion: 0.4.0\n');
  execFileSync('chown', ['-R', `${USER}:${USER}`, home, repo.path]);
  execFileSync('crontab', ['-u', USER, '-'], { input: CRONTAB });
  const install = spawnSync('runuser', ['-u', USER, '--', 'npm', 'install', '--global', '--offline', '--no-audit', '--no-fund', tarball], { env: { HOME: home, PATH: '/usr/local/bin:/usr/sbin:/usr/bin:/bin', NPM_CONFIG_PREFIX: `${home}/.npm-global` }, encoding: 'utf8', cwd: home });
  expect(install.status, install.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  spawnSync('dpkg', ['--purge', PACKAGE]);
  spawnSync('crontab', ['-u', USER, '-r']);
  spawnSync('userdel', [USER]);
  await removeDir(dir);
});

describe('a capture of this machine', () => {
  it('as root: holds what the machine’s own tools print, and names only tools that are really missing as not installed', async () => {
    const output = join(dir, 'root-capture.json');
    // Others may install packages on this machine meanwhile: the capture holds apt-mark's list of just before or just after it.
    const manualBefore = aptManual();
    const result = spawnSync(process.execPath, [BH, 'system', 'snapshot', '--output', output, '--no-history', '--json'], { encoding: 'utf8', env: { ...process.env, BH_REPO: undefined } as NodeJS.ProcessEnv });
    const manualAfter = aptManual();
    expect(result.status, result.stderr).toBe(0);
    const { capture } = JSON.parse(await readFile(output, 'utf8')) as { capture: { user: { name: string }; categories: Record<string, { items: { name: string }[]; files: { path: string; sha256: string }[] }>; skipped: { tool?: string; reason: string }[] } };
    expect(capture.user.name).toBe('root');
    expect([manualBefore, manualAfter]).toContainEqual((capture.categories['apt']?.items ?? []).map((i) => i.name));
    const hosts = capture.categories['hosts']!.files[0]!;
    expect(hosts.sha256).toBe(createHash('sha256').update(await readFile('/etc/hosts')).digest('hex'));
    for (const skipped of capture.skipped.filter((s) => s.reason === 'not installed')) {
      expect(spawnSync('sh', ['-c', 'command -v "$1"', 'sh', skipped.tool!]).status, `${skipped.tool} is said to be missing`).not.toBe(0);
    }
  });

  it('as a user: its dotfiles, script, user unit, crontab, npm -g and pip --user packages; the restore script puts files and crontab back as that user', async () => {
    const snapshot = bhAsUser(['system', 'snapshot', '--json']);
    expect(snapshot.status, snapshot.stderr).toBe(0);
    const id = (JSON.parse(snapshot.stdout) as { snapshot_id: string }).snapshot_id;
    const target = join(dir, 'restored');
    expect((await repo.run(['restore', id, '--target', target])).code).toBe(0);
    const capture = JSON.parse(await readFile(join(target, 'system.json'), 'utf8')) as { user: { name: string; home: string }; categories: Record<string, { items: { name: string; detail?: Record<string, string> }[]; files: { path: string }[] }> };
    expect(capture.user).toMatchObject({ name: USER, home });
    expect(capture.categories['npm']!.items).toContainEqual({ name: 'bh-demo-tool', detail: { version: '1.2.3' } });
    expect(capture.categories['pip']!.items).toEqual([{ name: 'bh-demo-pkg', detail: { version: '0.4.0' } }]);
    expect(capture.categories['dotfiles']!.files.map((f) => f.path)).toEqual(['.bashrc', '.gitconfig']);
    expect(capture.categories['scripts']!.files.map((f) => f.path)).toEqual(['bin/hello']);
    expect(capture.categories['systemd-user']!.items).toEqual([{ name: 'tidy.timer', detail: { wantedBy: 'timers.target' } }]);
    expect(await readFile(join(target, 'files/output/crontab'), 'utf8')).toBe(CRONTAB);

    const script = join(dir, 'restore.sh');
    expect((await repo.run(['system', 'restore-script', id, '--output', script])).code).toBe(0);
    const dry = spawnSync('bash', [script, '--dry-run'], { encoding: 'utf8', input: '' });
    expect(dry.status, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`+ runuser -u ${USER} -- npm install --global -- bh-demo-tool\n`);
    expect(dry.stdout).toContain(`+ runuser -u ${USER} -- python3 -m pip install --user -- bh-demo-pkg\n`);
    expect(dry.stdout).toContain(`+ runuser -u ${USER} -- systemctl --user enable -- tidy.timer\n`);
    expect(dry.stdout).toContain(`+ write ${home}/bin/hello (owner ${USER}, mode 0750, 21 bytes)\n`);

    // For real, the user's part: files gone from the home come back, owned by the user.
    for (const file of ['.bashrc', 'bin/hello']) await rm(join(home, file));
    execFileSync('crontab', ['-u', USER, '-r']);
    const only = join(dir, 'files.sh');
    expect((await repo.run(['system', 'restore-script', id, '--only', 'dotfiles,scripts,cron', '--output', only])).code).toBe(0);
    const real = spawnSync('bash', [only], { encoding: 'utf8', input: '' });
    expect(real.status, real.stderr).toBe(0);
    for (const [file, mode] of [['.bashrc', 0o644], ['bin/hello', 0o750]] as const) {
      const st = await stat(join(home, file));
      expect(st.uid, file).toBe(uid);
      expect(st.mode & 0o777, file).toBe(mode);
      expect(await readFile(join(home, file), 'utf8')).toBe(await readFile(join(target, 'files/home', file), 'utf8'));
    }
    expect(execFileSync('crontab', ['-u', USER, '-l'], { encoding: 'utf8' })).toBe(CRONTAB);
  });

  it('diff of two captures around a real apt-get install of a small package shows exactly that package', async () => {
    // The package is built here, so the install needs no mirror; apt-get marks it installed by hand.
    const pkg = join(dir, 'deb');
    await mkdir(join(pkg, 'DEBIAN'), { recursive: true });
    await writeFile(join(pkg, 'DEBIAN/control'), `Package: ${PACKAGE}\nVersion: 1.0\nArchitecture: all\nMaintainer: bh tests <root@localhost>\nDescription: empty package of bh's system snapshot tests\n`);
    execFileSync('dpkg-deb', ['--build', pkg, join(dir, 'empty.deb')], { stdio: 'ignore' });
    // apt-mark alone on PATH: the captures read the real package database, and nothing else changes between them.
    const tools = join(dir, 'apt-only');
    await mkdir(tools);
    execFileSync('ln', ['-s', '/usr/bin/apt-mark', join(tools, 'apt-mark')]);
    const emptyHome = join(dir, 'empty-home');
    await mkdir(emptyHome);
    const capture = async (): Promise<string> => {
      const result = await repo.run(['system', 'snapshot', '--home', emptyHome, '--no-history', '--json'], { env: { PATH: tools, HOME: emptyHome } });
      expect(result.code, result.stderr).toBe(0);
      return (JSON.parse(result.stdout) as { snapshot_id: string }).snapshot_id;
    };
    // The packaging tests install bh's own .deb: not while these captures are taken.
    const { manualBefore, before, after, manualAfter } = await withAptTurn(async () => {
      const manualBefore = aptManual();
      const before = await capture();
      const install = spawnSync('apt-get', ['install', '-y', '-o', 'DPkg::Lock::Timeout=300', join(dir, 'empty.deb')], { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      expect(install.status, install.stderr).toBe(0);
      const after = await capture();
      return { manualBefore, before, after, manualAfter: aptManual() };
    });
    const diff = await repo.run(['system', 'diff', before, after, '--json']);
    expect(diff.code, diff.stderr).toBe(0);
    // On a quiet machine that is our package alone; what others installed or removed meanwhile (this
    // machine is shared) is in apt-mark's lists too, and so in the diff.
    const added = manualAfter.filter((name) => !manualBefore.includes(name));
    const removed = manualBefore.filter((name) => !manualAfter.includes(name));
    expect(added).toContain(PACKAGE);
    expect(JSON.parse(diff.stdout)).toEqual([{ category: 'apt', added: added.map((name) => ({ name })), removed: removed.map((name) => ({ name })), changed: [], filesAdded: [], filesRemoved: [], filesChanged: [] }]);
  }, 360_000);
});
