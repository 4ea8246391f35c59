/**
 * The install routes, for real: scripts/build-deb.sh runs once for the whole file; it packs the
 * npm package (`npm pack`), installs it with `npm install -g` into a fresh prefix (native
 * addons built there, scripts allowed by the names the README gives), and builds the .deb from
 * that install. The tests then use the installed `bh` of the prefix, an install with the
 * scripts blocked, and the .deb: lintian, `apt-get install ./bh_….deb` as root, the installed
 * /usr/bin/bh, man page and completion, and `apt-get remove`, which must leave no file behind.
 * The system-wide install is removed again (and the system user the package made) however the
 * tests end.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, describeRun, makeTempDir, randomFilesDir, removeDir, type RunResult } from './helpers/cli.js';
import { compareTrees } from './helpers/tree-compare.js';
import { withAptTurn } from './helpers/apt-turn.js';

const exec = promisify(execFile);
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const HEAD = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
const BUILD_TIMEOUT = 900_000;

let tmp: string;
let work: string;
let deb: string;
let tarball: string;
let lintian: Promise<RunResult>;
/** Whether this file installed the package system-wide (and so must remove it). */
let installedSystemWide = false;
/** Whether the system user bh existed before the package was installed. */
let userExisted = false;

/** Runs a program; its exit code and output, never a throw for a non-zero exit. */
async function run(file: string, args: string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<RunResult> {
  try {
    const { stdout, stderr } = await exec(file, args, { env: { ...process.env, ...options.env }, cwd: options.cwd ?? tmp, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, signal: null, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; signal?: NodeJS.Signals; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : null, signal: e.signal ?? null, stdout: e.stdout ?? '', stderr: e.stderr ?? String(error) };
  }
}

async function ok(file: string, args: string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<string> {
  const r = await run(file, args, options);
  expect(r.code, describeRun(`${file} ${args.join(' ')}`, r)).toBe(0);
  return r.stdout;
}

beforeAll(async () => {
  tmp = await makeTempDir('bh-packaging-');
  work = join(tmp, 'work');
  const out = await ok('bash', [join(ROOT, 'scripts/build-deb.sh'), '--work', work], { cwd: ROOT });
  deb = out.trim().split('\n').pop()!;
  tarball = join(work, `bh-${VERSION}.tgz`);
  // lintian takes a minute or two over the ~4600 files: it runs while the other tests do.
  lintian = run('lintian', ['--tag-display-limit', '0', deb]);
}, BUILD_TIMEOUT);

afterAll(async () => {
  await lintian;
  if (installedSystemWide) {
    await run('apt-get', ['remove', '--purge', '-y', '-o', 'DPkg::Lock::Timeout=300', 'bh']);
    if (!userExisted) {
      await run('deluser', ['--system', 'bh']);
      await run('delgroup', ['--system', 'bh']);
    }
  }
  await removeDir(tmp);
}, 300_000);

/** init, backup, restore and check with the `bh` at `bhPath`, compared with the file system. */
async function roundTrip(bhPath: string, name: string): Promise<void> {
  const data = await randomFilesDir(tmp, 3, 200_000);
  writeFileSync(join(data, 'text'), 'hello from an installed bh\n');
  const env = { BH_REPO: join(tmp, `repo-${name}`), BH_PASSWORD: 'installed secret', BH_CACHE_DIR: join(tmp, `cache-${name}`) };
  await ok(bhPath, ['init'], { env });
  await ok(bhPath, ['backup', data], { env });
  const target = join(tmp, `restore-${name}`);
  await ok(bhPath, ['restore', 'latest', '--target', target, '--verify'], { env });
  expect(await compareTrees(data, join(target, data))).toEqual([]);
  await ok(bhPath, ['check', '--read-data'], { env });
}

describe('npm package', () => {
  it('npm pack holds the compiled code, the recorded commit, the addon sources and the man pages, nothing built or private', async () => {
    const files = (await ok('tar', ['-tzf', tarball])).split('\n').filter((f) => f !== '');
    expect(files).toEqual(expect.arrayContaining(['package/bin/bh', 'package/dist/cli.js', 'package/dist/build-info.json', 'package/native/bhfs.c', 'package/native/binding.gyp', 'package/man/man1/bh.1', 'package/man/man1/bh-backup.1', 'package/LICENSE', 'package/README.md', 'package/contrib/systemd/bh-run@.service']));
    expect(files.filter((f) => /^package\/(src|tests|bench|node_modules|native\/build|\.ci)\//.test(f) || f.endsWith('.map'))).toEqual([]);
    const buildInfo = JSON.parse(await ok('tar', ['-xzOf', tarball, 'package/dist/build-info.json'])) as { commit: string };
    expect(buildInfo.commit).toBe(HEAD);
  });

  it('npm install -g into a fresh prefix gives a working bh: init, backup, restore, check; its man pages are there', async () => {
    const bhPath = join(work, 'prefix/bin/bh');
    expect((await ok(bhPath, ['--version'])).trim()).toBe(VERSION);
    const info = JSON.parse(await ok(bhPath, ['version', '--json'])) as { commit: string; nativeAddon: { loaded: boolean }; zstd: string | null; problems: string[] };
    expect(info.commit).toBe(HEAD);
    expect(info.nativeAddon.loaded).toBe(true);
    expect(info.zstd).toMatch(/^\d+\.\d+\.\d+$/);
    expect(info.problems).toEqual([]);
    await roundTrip(bhPath, 'npm');
    // npm links the pages of directories.man for packages from the registry (its publish lists
    // them); from a tarball, README has MANPATH point at the package's man/.
    const manDir = join(work, 'prefix/lib/node_modules/bh/man');
    expect((await ok('man', ['-w', 'bh-backup'], { env: { MANPATH: manDir } })).trim()).toBe(join(manDir, 'man1/bh-backup.1'));
  });

  it('installed with install scripts blocked, bh says which native modules are missing and which --allow-scripts names build them', async () => {
    const prefix = join(tmp, 'prefix-no-scripts');
    mkdirSync(join(prefix, 'lib'), { recursive: true });
    await ok('npm', ['install', '-g', '--prefix', prefix, '--ignore-scripts', '--no-audit', '--no-fund', tarball]);
    const bhPath = join(prefix, 'bin/bh');
    const init = await run(bhPath, ['init'], { env: { BH_REPO: join(tmp, 'repo-no-scripts'), BH_PASSWORD: 'x' } });
    expect(init.code, describeRun('bh init', init)).toBe(1);
    expect(init.stderr).toMatch(/^bh: error: a native module bh needs is not built \(Cannot find module '.*binding\.node'\)/);
    expect(init.stderr).toContain('--allow-scripts=bh,zstd-napi,ssh2,cpu-features');
    const version = await run(bhPath, ['version']);
    expect(version.code, describeRun('bh version', version)).toBe(1);
    expect(version.stdout).toContain('native addon not loaded');
    expect(version.stdout).toContain('zstd         not loaded');
    expect(version.stderr).toMatch(/^bh: error: zstd-napi cannot be loaded \(Cannot find module '.*binding\.node'\)/);
    expect(version.stderr).toContain(`bh's native addon is not built (${join(prefix, 'lib/node_modules/bh/native/build/Release/bhfs.node')} is missing)`);
    expect(version.stderr).toContain('--allow-scripts=bh,zstd-napi,ssh2,cpu-features');
  });
});

describe('Debian package', () => {
  it('is named for its version, declares what it needs, and holds the app, the command, units, man pages and completions', async () => {
    expect(deb).toBe(join(ROOT, `build/bh_${VERSION}_amd64.deb`));
    const depends = (await ok('dpkg-deb', ['-f', deb, 'Depends'])).trim();
    expect(depends).toMatch(/^nodejs \(>= 20\), adduser, libc6 \(>= [\d.]+\)/);
    const files = (await ok('dpkg-deb', ['-c', deb])).split('\n').map((l) => l.split(/\s+/).slice(5).join(' '));
    for (const path of [
      './usr/bin/bh -> ../lib/bh/bin/bh',
      './usr/lib/bh/dist/cli.js',
      './usr/lib/bh/native/build/Release/bhfs.node',
      './usr/lib/bh/node_modules/zstd-napi/build/Release/binding.node',
      './lib/systemd/system/bh-run@.service',
      './lib/systemd/system/bh-run@.timer',
      './usr/share/man/man1/bh.1.gz',
      './usr/share/man/man1/bh-backup.1.gz',
      './usr/share/bash-completion/completions/bh',
      './usr/share/zsh/vendor-completions/_bh',
      './usr/share/fish/vendor_completions.d/bh.fish',
      './usr/share/doc/bh/copyright',
      './usr/share/doc/bh/changelog.gz',
    ]) {
      expect(files, path).toContain(path);
    }
    // Build leftovers that name the build machine's folders stay out.
    expect(files.filter((f) => /\/build\/(Makefile|config\.gypi)$|\.o$|\.a$/.test(f))).toEqual([]);
  });

  it('apt-get installs it (root): bh runs, man finds its pages, completion is there; apt-get remove leaves no file', async () => {
    expect(process.getuid?.(), 'installing a .deb needs root').toBe(0);
    userExisted = (await run('getent', ['passwd', 'bh'])).code === 0;
    const packaged = (await ok('dpkg-deb', ['-c', deb])).split('\n').filter((l) => !l.startsWith('d')).map((l) => l.split(/\s+/)[5]!).filter((p) => p !== undefined).map((p) => p.slice(1));
    // The system snapshot tests watch the installed packages: not while bh's is installed.
    await withAptTurn(async () => {
      installedSystemWide = true;
      await ok('apt-get', ['install', '-y', '--no-install-recommends', '-o', 'DPkg::Lock::Timeout=300', deb]);

      expect((await ok('/usr/bin/bh', ['--version'])).trim()).toBe(VERSION);
      const info = JSON.parse(await ok('/usr/bin/bh', ['version', '--json'])) as { commit: string; nativeAddon: { path: string; loaded: boolean } };
      expect(info.commit).toBe(HEAD);
      expect(info.nativeAddon).toEqual({ path: '/usr/lib/bh/native/build/Release/bhfs.node', loaded: true });
      expect((await ok('man', ['-w', 'bh'])).trim()).toBe('/usr/share/man/man1/bh.1.gz');
      expect((await ok('man', ['-w', 'bh-restore'])).trim()).toBe('/usr/share/man/man1/bh-restore.1.gz');
      expect(await ok('bash', ['-c', 'source /usr/share/bash-completion/completions/bh; COMP_WORDS=(bh vers); COMP_CWORD=1; _bh; echo "${COMPREPLY[*]}"'])).toBe('version\n');
      expect(readFileSync('/lib/systemd/system/bh-run@.service', 'utf8')).toContain('ExecStart=/usr/bin/bh run --config /etc/bh/%i.ini');
      expect((await ok('getent', ['passwd', 'bh'])).split(':')[5]).toBe('/var/lib/bh');
      await roundTrip('/usr/bin/bh', 'deb');

      await ok('apt-get', ['remove', '-y', '-o', 'DPkg::Lock::Timeout=300', 'bh']);
      expect(packaged.length).toBeGreaterThan(100);
      expect(packaged.filter((path) => existsSync(path))).toEqual([]);
      expect(existsSync('/usr/lib/bh')).toBe(false);
      expect((await run('dpkg-query', ['-W', '-f', '${db:Status-Status}', 'bh'])).stdout).not.toBe('installed');
    });
  }, 600_000);

  it('lintian finds no error', async () => {
    const r = await lintian;
    const errors = r.stdout.split('\n').filter((l) => l.startsWith('E: '));
    expect(errors, describeRun('lintian', r)).toEqual([]);
  }, 300_000);
});
