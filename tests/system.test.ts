/**
 * System snapshots through the real CLI: `bh system snapshot` captures a machine made by the
 * test (a home and a root prefix with dotfiles, units, cron files, apt sources, connections),
 * with stand-in executables for the package tools on a PATH that holds nothing else. Stand-ins,
 * because the capture must not depend on what this machine has installed, and a real
 * `apt-get install` between two captures would change the machine and need a mirror; each
 * stand-in prints what its real tool prints. The restore script is checked with `bash -n`,
 * Debian's shellcheck, a --dry-run (nothing may run) and a real run with stand-ins that record
 * their argv and files written below --files-root.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmod, lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestRepo, expectOk, initRepo, makeTempDir, removeDir } from './helpers/cli.js';

let dir: string;
let repo: TestRepo;
/** The machine the captures see. */
let home: string;
let root: string;
/** Where the capture's stand-in tools are: the whole PATH of the capture. */
let tools: string;
/** What the stand-ins print. */
let outputs: string;
/** Stand-ins for the tools a restore script runs, recording each call in `calls`. */
let scriptTools: string;
let calls: string;

const MARKER = 'bashrc-marker-4f1c2e';
const NETWORK_SECRET = 'wifi-psk-that-must-not-leak';
let sshFingerprint: string;
let firstCapture: string;
let secondCapture: string;

async function writeExecutable(path: string, body: string): Promise<void> {
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
}

/** A stand-in that prints the file outputs/NAME (with shell builtins only: its PATH has nothing else). */
async function printingTool(name: string, text: string): Promise<void> {
  await writeFile(join(outputs, name), text);
  await writeExecutable(join(tools, name), `while IFS= read -r line || [ -n "$line" ]; do printf '%s\\n' "$line"; done < '${join(outputs, name)}'`);
}

function captureEnv(): Record<string, string> {
  return { PATH: tools, HOME: home };
}

function snapshotArgs(extra: string[] = []): string[] {
  return ['system', 'snapshot', '--home', home, '--root', root, '--tool-timeout', '2s', '--host', 'laptop', ...extra];
}

interface Call {
  argv: string[];
  stdin: string;
}

/** The calls the script's stand-ins recorded, in order. */
async function recordedCalls(): Promise<Call[]> {
  const names = (await readdir(calls)).filter((n) => !n.endsWith('.stdin')).sort();
  return Promise.all(
    names.map(async (name) => ({
      argv: (await readFile(join(calls, name), 'utf8')).split('\0').slice(0, -1),
      stdin: existsSync(join(calls, `${name}.stdin`)) ? await readFile(join(calls, `${name}.stdin`), 'utf8') : '',
    })),
  );
}

async function clearCalls(): Promise<void> {
  await removeDir(calls);
  await mkdir(calls);
}

/** Runs a restore script with bash, the script stand-ins first on PATH. */
function runScript(script: string, args: string[], cwd: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('bash', [script, ...args], { cwd, input: '', encoding: 'utf8', env: { PATH: `${scriptTools}:/usr/sbin:/usr/bin:/sbin:/bin`, HOME: dir } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

beforeAll(async () => {
  dir = await makeTempDir('bh-system-');
  repo = await initRepo(dir);
  home = join(dir, 'home');
  root = join(dir, 'root');
  tools = join(dir, 'tools');
  outputs = join(dir, 'outputs');
  scriptTools = join(dir, 'script-tools');
  calls = join(dir, 'calls');
  for (const d of [home, root, tools, outputs, scriptTools, calls]) await mkdir(d, { recursive: true });

  // The user's files.
  await writeFile(join(home, '.bashrc'), `export EDITOR=vim # ${MARKER}\n`);
  await writeFile(join(home, '.gitconfig'), '[user]\n\tname = Alice\n');
  await writeFile(join(home, '.netrc'), 'machine example.com login alice password hunter2\n');
  await mkdir(join(home, '.ssh'), { mode: 0o700 });
  await writeFile(join(home, '.ssh/config'), 'Host nas\n  HostName 192.0.2.10\n');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'alice@laptop', '-f', join(home, '.ssh/id_ed25519')]);
  sshFingerprint = execFileSync('ssh-keygen', ['-lf', join(home, '.ssh/id_ed25519.pub')], { encoding: 'utf8' }).split(' ')[1]!;
  await mkdir(join(home, 'bin'));
  await writeFile(join(home, 'bin/backup-photos'), '#!/bin/sh\nrsync -a ~/Pictures nas:\n');
  await chmod(join(home, 'bin/backup-photos'), 0o755);
  await mkdir(join(home, '.local/bin'), { recursive: true });
  await writeFile(join(home, '.local/bin/compiled-tool'), Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(64)]));
  await mkdir(join(home, '.local/share/fonts'), { recursive: true });
  await writeFile(join(home, '.local/share/fonts/Inter.ttf'), Buffer.from('not really a font'));
  await mkdir(join(home, '.config/systemd/user/default.target.wants'), { recursive: true });
  await writeFile(join(home, '.config/systemd/user/sync.service'), '[Service]\nExecStart=%h/bin/sync\n[Install]\nWantedBy=default.target\n');
  await symlink('../sync.service', join(home, '.config/systemd/user/default.target.wants/sync.service'));
  await writeFile(join(home, '.bash_history'), Array.from({ length: 6000 }, (_, i) => `echo ${i}`).join('\n') + '\n');
  await mkdir(join(home, 'projects/wiki'), { recursive: true });
  await writeFile(join(home, 'projects/wiki/compose.yaml'), 'services:\n  wiki:\n    image: ghcr.io/example/wiki:1\n');

  // The system's files.
  await mkdir(join(root, 'etc/apt/sources.list.d'), { recursive: true });
  await mkdir(join(root, 'etc/apt/keyrings'), { recursive: true });
  await writeFile(join(root, 'etc/os-release'), 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n');
  await writeFile(join(root, 'etc/apt/sources.list.d/vscode.list'), 'deb [signed-by=/etc/apt/keyrings/ms.gpg] https://packages.example.com/repos/code stable main\n');
  await writeFile(join(root, 'etc/apt/sources.list.d/deadsnakes.list'), 'deb https://ppa.launchpadcontent.net/deadsnakes/ppa/ubuntu jammy main\n');
  await writeFile(join(root, 'etc/apt/keyrings/ms.gpg'), Buffer.from([0x99, 0x01, 0x0d, 0x04]));
  await writeFile(join(root, 'etc/fstab'), 'UUID=1234 / ext4 defaults 0 1\n');
  await writeFile(join(root, 'etc/hosts'), '127.0.0.1 localhost\n192.0.2.10 nas\n');
  await mkdir(join(root, 'etc/cron.d'), { recursive: true });
  await writeFile(join(root, 'etc/cron.d/photos'), '0 3 * * * root /usr/local/bin/photos\n');
  await mkdir(join(root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
  await writeFile(join(root, 'etc/systemd/system/app.service'), '[Service]\nExecStart=/opt/app/run\n[Install]\nWantedBy=multi-user.target\n');
  await symlink('/etc/systemd/system/app.service', join(root, 'etc/systemd/system/multi-user.target.wants/app.service'));
  await symlink('/lib/systemd/system/ssh.service', join(root, 'etc/systemd/system/multi-user.target.wants/ssh.service'));
  await mkdir(join(root, 'etc/NetworkManager/system-connections'), { recursive: true });
  await writeFile(join(root, 'etc/NetworkManager/system-connections/Home.nmconnection'), `[connection]\nid=Home WiFi\ntype=wifi\n[wifi-security]\npsk=${NETWORK_SECRET}\n`, { mode: 0o600 });
  await mkdir(join(root, 'etc/wireguard'), { recursive: true });
  await writeFile(join(root, 'etc/wireguard/wg-office.conf'), `[Interface]\nPrivateKey=${NETWORK_SECRET}\n`, { mode: 0o600 });

  // The tools the capture runs (flatpak, pipx, go and code are "not installed").
  await printingTool('apt-mark', 'git\nvim\ncurl\n');
  await printingTool('snap', 'Name      Version   Rev    Tracking       Publisher   Notes\ncore22    20240111  1122   latest/stable  canonical✓  base\ncode      1.85      150    latest/stable  vscode✓     classic\n');
  await printingTool('python3', JSON.stringify([{ name: 'requests', version: '2.31.0' }]));
  await printingTool('npm', JSON.stringify({ dependencies: { typescript: { version: '5.3.3' }, '@angular/cli': { version: '17.0.0' } } }));
  await printingTool('cargo', 'ripgrep v14.1.0:\n    rg\nmytool v0.1.0 (https://github.com/example/mytool#abc):\n    mytool\n');
  // docker fails as without its daemon, and records its argv: the capture passes arguments as they are, with no shell between.
  await writeExecutable(join(tools, 'docker'), `printf '%s\\0' "$@" > '${join(outputs, 'docker.argv')}'\nprintf '%s\\n' 'Cannot connect to the Docker daemon' >&2\nexit 1`);
  await printingTool('crontab', '*/5 * * * * ~/bin/sync\n');
  await printingTool('gpg', 'sec:u:255:22:ABCDEF0123456789:1700000000:::u:::scESC:::+:::ed25519:::0:\nfpr:::::::::0123456789ABCDEF0123456789ABCDEF01234567:\nuid:u::::1700000000::HASH::Alice <alice@example.com>::::::::::0:\n');
  // A tool that hangs: skipped after --tool-timeout.
  await writeExecutable(join(tools, 'dconf'), 'while :; do :; done');

  // The tools a restore script runs: each call recorded (argv NUL-separated, stdin beside it).
  for (const name of ['apt-get', 'add-apt-repository', 'snap', 'flatpak', 'pipx', 'python3', 'npm', 'cargo', 'go', 'code', 'docker', 'systemctl', 'crontab', 'dconf', 'fc-cache', 'runuser']) {
    await writeExecutable(join(scriptTools, name), `f='${calls}'/$(date +%s%N)-$$\nprintf '%s\\0' "$(basename "$0")" "$@" > "$f"\ncat > "$f.stdin"\nexit 0`);
  }

  const first = await repo.run([...snapshotArgs(), '--json'], { env: captureEnv() });
  expectOk(first, 'first system snapshot');
  firstCapture = (JSON.parse(first.stdout) as { snapshot_id: string }).snapshot_id;
}, 120_000);

afterAll(async () => {
  await removeDir(dir);
});

async function captureOf(snapshot: string): Promise<Record<string, unknown>> {
  const target = join(dir, `restored-${snapshot.slice(0, 8)}`);
  expectOk(await repo.run(['restore', snapshot, '--target', target]), 'restore of a system snapshot');
  return JSON.parse(await readFile(join(target, 'system.json'), 'utf8')) as Record<string, unknown>;
}

type Categories = Record<string, { items: { name: string; detail?: Record<string, string> }[]; files: { origin: string; path: string; stored: string; mode: number }[] }>;

describe('bh system snapshot', () => {
  it('captures packages, files, units, keys and connections, and names the tools it skipped', async () => {
    const capture = await captureOf(firstCapture);
    const categories = capture['categories'] as Categories;
    const names = (category: string): string[] => (categories[category]?.items ?? []).map((i) => i.name).sort();
    const paths = (category: string): string[] => (categories[category]?.files ?? []).map((f) => f.path).sort();
    expect(capture['host']).toBe('laptop');
    expect(capture['os']).toBe('Debian GNU/Linux 12 (bookworm)');
    expect(names('apt')).toEqual(['curl', 'git', 'vim']);
    expect(names('snap')).toEqual(['code', 'core22']);
    expect(categories['snap']!.items.find((i) => i.name === 'code')!.detail).toMatchObject({ channel: 'latest/stable', classic: 'yes' });
    expect(names('pip')).toEqual(['requests']);
    expect(names('npm')).toEqual(['@angular/cli', 'typescript']);
    expect(names('cargo')).toEqual(['mytool', 'ripgrep']);
    expect(names('apt-sources')).toEqual(['ppa:deadsnakes/ppa']);
    expect(paths('apt-sources')).toEqual(['/etc/apt/keyrings/ms.gpg', '/etc/apt/sources.list.d/deadsnakes.list', '/etc/apt/sources.list.d/vscode.list']);
    expect(paths('dotfiles')).toEqual(['.bashrc', '.gitconfig', '.ssh/config']);
    expect(paths('scripts')).toEqual(['bin/backup-photos']);
    expect(paths('fonts')).toEqual(['.local/share/fonts/Inter.ttf']);
    expect(paths('docker')).toEqual(['projects/wiki/compose.yaml']);
    expect(paths('cron')).toEqual(['/etc/cron.d/photos', 'crontab']);
    expect(paths('systemd')).toEqual(['/etc/systemd/system/app.service']);
    expect(names('systemd')).toEqual(['app.service', 'ssh.service']);
    expect(paths('systemd-user')).toEqual(['.config/systemd/user/sync.service']);
    expect(names('systemd-user')).toEqual(['sync.service']);
    expect(paths('fstab')).toEqual(['/etc/fstab']);
    expect(paths('hosts')).toEqual(['/etc/hosts']);
    expect(paths('history')).toEqual(['.bash_history']);
    expect(names('ssh-keys')).toEqual([sshFingerprint]);
    expect(categories['ssh-keys']!.items[0]!.detail).toMatchObject({ comment: 'alice@laptop', private: 'present' });
    expect(names('gpg-keys')).toEqual(['0123456789ABCDEF0123456789ABCDEF01234567']);
    expect(names('network')).toEqual(['Home WiFi', 'wg-office']);
    expect(categories['scripts']!.files[0]!.mode).toBe(0o755);

    const skipped = capture['skipped'] as { category: string; tool?: string; reason: string }[];
    const skippedTools = Object.fromEntries(skipped.map((s) => [s.tool, s.reason]));
    for (const tool of ['flatpak', 'pipx', 'go', 'code']) expect(skippedTools[tool], tool).toBe('not installed');
    expect(skippedTools['docker']).toMatch(/failed \(exit 1\): Cannot connect to the Docker daemon/);
    expect((await readFile(join(outputs, 'docker.argv'), 'utf8')).split('\0').slice(0, -1)).toEqual(['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']);
    expect(skippedTools['dconf']).toMatch(/did not finish within 2 s/);
  });

  it('keeps secrets out: no private key, no credentials file, no connection secret; the history is its last 5000 lines', async () => {
    const target = join(dir, 'restored-secrets');
    expectOk(await repo.run(['restore', firstCapture, '--target', target]), 'restore');
    const everything: string[] = [];
    const visit = async (path: string): Promise<void> => {
      for (const entry of await readdir(path, { withFileTypes: true })) {
        if (entry.isDirectory()) await visit(join(path, entry.name));
        else everything.push(await readFile(join(path, entry.name), 'utf8'));
      }
    };
    await visit(target);
    // Private in the snapshot too: files 0600, their directories 0700.
    expect((await stat(join(target, 'system.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(target, 'files/home/.bashrc'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(target, 'files/home'))).mode & 0o777).toBe(0o700);
    const all = everything.join('\n');
    const privateKey = await readFile(join(home, '.ssh/id_ed25519'), 'utf8');
    expect(all).not.toContain(privateKey.split('\n')[1]);
    expect(all).not.toContain('hunter2');
    expect(all).not.toContain(NETWORK_SECRET);
    const history = (await readFile(join(target, 'files/home/.bash_history'), 'utf8')).split('\n').filter((l) => l !== '');
    expect(history).toHaveLength(5000);
    expect(history[0]).toBe('echo 1000');
    expect(history[4999]).toBe('echo 5999');
    // Stored encrypted: the repository's files never hold a dotfile's plaintext.
    const grep = spawnSync('grep', ['-rl', MARKER, repo.path], { encoding: 'utf8' });
    expect(grep.status).toBe(1);
    expect(grep.stdout).toBe('');
  });

  it('is a snapshot tagged system that bh system list shows with host and time', async () => {
    const list = expectOk(await repo.run(['system', 'list', '--json']), 'system list');
    const entries = JSON.parse(list.stdout) as { id: string; host: string; time: string }[];
    expect(entries.map((e) => e.id)).toContain(firstCapture);
    expect(entries.find((e) => e.id === firstCapture)).toMatchObject({ host: 'laptop' });
    const snapshots = JSON.parse(expectOk(await repo.run(['snapshots', '--tag', 'system', '--json']), 'snapshots').stdout) as { id: string; tags: string[] }[];
    expect(snapshots.find((s) => s.id === firstCapture)?.tags).toEqual(['system']);
    const text = expectOk(await repo.run(['system', 'list']), 'system list').stdout;
    expect(text).toMatch(new RegExp(`${firstCapture.slice(0, 8)}\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+laptop`));
  });

  it('--output writes a plaintext copy of mode 0600 and --no-history leaves history out; without a repository it needs --output', async () => {
    const output = join(dir, 'capture.json');
    await writeFile(output, 'old', { mode: 0o644 });
    const result = await repo.run([...snapshotArgs(['--output', output, '--no-history'])], { env: { ...captureEnv(), BH_REPO: undefined, BH_PASSWORD: undefined } });
    expectOk(result, 'snapshot --output');
    expect((await stat(output)).mode & 0o777).toBe(0o600);
    const written = JSON.parse(await readFile(output, 'utf8')) as { capture: { categories: Categories; history: boolean }; files: Record<string, string> };
    expect(written.capture.history).toBe(false);
    expect(written.capture.categories['history']).toBeUndefined();
    const bashrc = written.capture.categories['dotfiles']!.files.find((f) => f.path === '.bashrc')!;
    expect(Buffer.from(written.files[bashrc.stored]!, 'base64').toString()).toContain(MARKER);

    const nowhere = await repo.run(snapshotArgs(), { env: { ...captureEnv(), BH_REPO: undefined } });
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr).toMatch(/nowhere to put the capture: give -r REPO/);
    const wrong = await repo.run(snapshotArgs(), { env: { ...captureEnv(), BH_PASSWORD: 'wrong' } });
    expect(wrong.code).toBe(12);
  });

  it("--config JOB.ini stores the capture in the job's first destination, opened with the job's secret", async () => {
    const config = join(dir, 'job.ini');
    await writeFile(config, `[META]\nschema_version = 3\n[DEFAULT]\nsource_dir = ${home}\nmode = incremental\n[MODES]\nlocal = True\nssh = False\n[BACKUPS]\nbackup_dirs = ${repo.path}\n[ENCRYPTION]\npassphrase = \${JOB_PASS}\n`);
    const env = { ...captureEnv(), BH_REPO: undefined, BH_PASSWORD: undefined, JOB_PASS: repo.env['BH_PASSWORD'] };
    const result = await repo.run([...snapshotArgs(['--config', config]), '--json'], { env });
    expectOk(result, 'snapshot --config');
    const id = (JSON.parse(result.stdout) as { snapshot_id: string }).snapshot_id;
    const list = JSON.parse(expectOk(await repo.run(['system', 'list', '--config', config, '--json'], { env }), 'list --config').stdout) as { id: string }[];
    expect(list.map((s) => s.id)).toContain(id);
  });
});

describe('bh system restore-script', () => {
  let script: string;

  beforeAll(async () => {
    script = join(dir, 'restore.sh');
    expectOk(await repo.run(['system', 'restore-script', firstCapture, '--output', script]), 'restore-script');
  });

  it('writes a script of mode 0700 that passes bash -n and shellcheck with no warnings', async () => {
    expect((await stat(script)).mode & 0o777).toBe(0o700);
    expect(spawnSync('bash', ['-n', script]).status).toBe(0);
    const check = spawnSync('shellcheck', ['--severity=style', script], { encoding: 'utf8' });
    expect(check.error, 'shellcheck must be installed (scripts/test.sh installs it)').toBeUndefined();
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('--dry-run prints every command the capture asks for, in phase order, and runs none of them', async () => {
    await clearCalls();
    const run = runScript(script, ['--dry-run', '--user', 'alice', '--home', '/home/alice'], dir);
    expect(run.status, run.stderr).toBe(0);
    expect(await recordedCalls()).toEqual([]);
    const commands = run.stdout.split('\n').filter((l) => l.startsWith('+ '));
    const size = async (path: string): Promise<number> => (await stat(path)).size;
    const write = async (path: string, owner: string, mode: string, source: string): Promise<string> => `+ write ${path} (owner ${owner}, mode ${mode}, ${await size(source)} bytes)`;
    const expected = [
      await write('/etc/apt/sources.list.d/vscode.list', 'root', '0644', join(root, 'etc/apt/sources.list.d/vscode.list')),
      await write('/etc/apt/keyrings/ms.gpg', 'root', '0644', join(root, 'etc/apt/keyrings/ms.gpg')),
      '+ add-apt-repository -y -- ppa:deadsnakes/ppa',
      '+ apt-get update',
      '+ apt-get install -y -- git vim curl',
      '+ snap install --channel=latest/stable -- core22',
      '+ snap install --channel=latest/stable --classic -- code',
      '+ runuser -u alice -- python3 -m pip install --user -- requests',
      '+ runuser -u alice -- npm install --global -- typescript',
      '+ runuser -u alice -- npm install --global -- @angular/cli',
      '+ runuser -u alice -- cargo install -- ripgrep',
      await write('/home/alice/projects/wiki/compose.yaml', 'alice', '0644', join(home, 'projects/wiki/compose.yaml')),
      await write('/home/alice/.bashrc', 'alice', '0644', join(home, '.bashrc')),
      await write('/home/alice/.gitconfig', 'alice', '0644', join(home, '.gitconfig')),
      await write('/home/alice/.ssh/config', 'alice', '0644', join(home, '.ssh/config')),
      await write('/home/alice/bin/backup-photos', 'alice', '0755', join(home, 'bin/backup-photos')),
      await write('/home/alice/.local/share/fonts/Inter.ttf', 'alice', '0644', join(home, '.local/share/fonts/Inter.ttf')),
      '+ runuser -u alice -- fc-cache -f',
      '+ runuser -u alice -- crontab - < (23 bytes)',
      await write('/etc/cron.d/photos', 'root', '0644', join(root, 'etc/cron.d/photos')),
      await write('/etc/systemd/system/app.service', 'root', '0644', join(root, 'etc/systemd/system/app.service')),
      '+ systemctl daemon-reload',
      '+ systemctl enable -- app.service',
      '+ systemctl enable -- ssh.service',
      await write('/home/alice/.config/systemd/user/sync.service', 'alice', '0644', join(home, '.config/systemd/user/sync.service')),
      '+ runuser -u alice -- systemctl --user daemon-reload',
      '+ runuser -u alice -- systemctl --user enable -- sync.service',
      await write('/root/bh-system-restore/fstab', 'root', '0600', join(root, 'etc/fstab')),
      await write('/root/bh-system-restore/hosts', 'root', '0600', join(root, 'etc/hosts')),
    ];
    expect(commands).toEqual(expected);
    expect(run.stdout).toContain(`SSH key ${sshFingerprint}: copy its private key`);
    expect(run.stdout).toContain('GPG secret key 0123456789ABCDEF0123456789ABCDEF01234567');
    expect(run.stdout).toContain('NetworkManager connection (wifi): set it up again with its password or keys: Home WiFi');
    expect(run.stdout).toContain('WireGuard connection (wireguard): set it up again with its password or keys: wg-office');
    expect(run.stdout).toContain('cargo: mytool came from outside crates.io');
    expect(run.stdout).toContain('Not captured (flatpak-remotes, flatpak): not installed');
  });

  it('run for real, calls the tools with exactly those arguments and writes the files byte for byte below --files-root', async () => {
    await clearCalls();
    const filesRoot = join(dir, 'files-root');
    const run = runScript(script, ['--user', 'alice', '--home', '/home/alice', '--files-root', filesRoot], dir);
    expect(run.status, run.stderr).toBe(0);
    const recorded = await recordedCalls();
    expect(recorded.map((c) => c.argv.join(' '))).toEqual([
      'add-apt-repository -y -- ppa:deadsnakes/ppa',
      'apt-get update',
      'apt-get install -y -- git vim curl',
      'snap install --channel=latest/stable -- core22',
      'snap install --channel=latest/stable --classic -- code',
      'runuser -u alice -- python3 -m pip install --user -- requests',
      'runuser -u alice -- npm install --global -- typescript',
      'runuser -u alice -- npm install --global -- @angular/cli',
      'runuser -u alice -- cargo install -- ripgrep',
      'runuser -u alice -- fc-cache -f',
      'runuser -u alice -- crontab -',
      'systemctl daemon-reload',
      'systemctl enable -- app.service',
      'systemctl enable -- ssh.service',
      'runuser -u alice -- systemctl --user daemon-reload',
      'runuser -u alice -- systemctl --user enable -- sync.service',
    ]);
    expect(recorded.find((c) => c.argv.join(' ') === 'runuser -u alice -- crontab -')!.stdin).toBe('*/5 * * * * ~/bin/sync\n');
    for (const [captured, written] of [
      [join(home, '.bashrc'), '/home/alice/.bashrc'],
      [join(home, 'bin/backup-photos'), '/home/alice/bin/backup-photos'],
      [join(home, '.config/systemd/user/sync.service'), '/home/alice/.config/systemd/user/sync.service'],
      [join(root, 'etc/apt/keyrings/ms.gpg'), '/etc/apt/keyrings/ms.gpg'],
      [join(root, 'etc/cron.d/photos'), '/etc/cron.d/photos'],
      [join(root, 'etc/fstab'), '/root/bh-system-restore/fstab'],
    ] as const) {
      expect((await readFile(join(filesRoot, written))).equals(await readFile(captured)), written).toBe(true);
    }
    expect((await stat(join(filesRoot, '/home/alice/bin/backup-photos'))).mode & 0o777).toBe(0o755);
    expect((await stat(join(filesRoot, '/root/bh-system-restore/fstab'))).mode & 0o777).toBe(0o600);
    // The PPA's list is made by add-apt-repository, not copied.
    expect(existsSync(join(filesRoot, '/etc/apt/sources.list.d/deadsnakes.list'))).toBe(false);

    // A second run keeps what is there when it is the same, and a changed file beside the new one.
    await writeFile(join(filesRoot, '/home/alice/.gitconfig'), 'mine\n');
    expect(runScript(script, ['--user', 'alice', '--home', '/home/alice', '--files-root', filesRoot], dir).status).toBe(0);
    expect(await readFile(join(filesRoot, '/home/alice/.gitconfig.before-bh-restore'), 'utf8')).toBe('mine\n');
    expect(existsSync(join(filesRoot, '/home/alice/.bashrc.before-bh-restore'))).toBe(false);
  });

  it('--only keeps the phases named; an unknown phase or a snapshot that is not a system snapshot is refused', async () => {
    const only = expectOk(await repo.run(['system', 'restore-script', firstCapture, '--only', 'apt,dotfiles']), 'restore-script --only');
    const phases = only.stdout.split('\n').filter((l) => l.startsWith('phase ')).map((l) => l.slice(6));
    expect(phases).toEqual(["'apt'", "'dotfiles'", "'left to do by hand'"]);
    const unknown = await repo.run(['system', 'restore-script', firstCapture, '--only', 'apt,bogus']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("--only: there is no phase 'bogus' in this script; the phases are repositories, apt,");
    const plain = join(dir, 'plain');
    await mkdir(plain);
    await writeFile(join(plain, 'f'), 'x');
    const backup = JSON.parse(expectOk(await repo.run(['backup', plain, '--json']), 'backup').stdout.trim().split('\n').pop()!) as { snapshot_id: string };
    const refused = await repo.run(['system', 'restore-script', backup.snapshot_id]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`snapshot ${backup.snapshot_id.slice(0, 8)} is not a system snapshot`);
  });
});

describe('hostile names', () => {
  const PWNED = `/tmp/pwned-${process.pid}`;
  const payloads = [`$(touch ${PWNED})`, `\`touch ${PWNED}\``, `'; touch ${PWNED}; '`, `"; touch ${PWNED}; "`, `a\ntouch ${PWNED}`, '--registry=http://evil.example', '-rf', '~/x', 'ends\\'];
  /** File names cannot hold '/': their payload creates `pwned` in the script's working directory. */
  const fileNames = ["it's $(touch pwned).sh", '`touch pwned`', 'new\nline', '-rf', '"dq" $HOME', "'; touch pwned; '", 'ends\\', '~'];
  let script: string;
  let workDir: string;

  beforeAll(async () => {
    for (const name of fileNames) await writeFile(join(home, 'bin', name), `#!/bin/sh\necho ${JSON.stringify(name)}\n`);
    await printingTool('apt-mark', ['git', 'hello', ...payloads].join('\n').replace(/a\ntouch/, 'a touch') + '\n');
    await printingTool('python3', JSON.stringify([{ name: 'requests', version: '1' }, ...payloads.map((name) => ({ name, version: '1' }))]));
    await printingTool('npm', JSON.stringify({ dependencies: Object.fromEntries(payloads.map((p) => [p, { version: '1' }])) }));
    for (const [i, payload] of payloads.entries()) {
      await writeFile(join(root, `etc/NetworkManager/system-connections/c${i}.nmconnection`), `[connection]\nid=${payload.replace('\n', ' ')}\ntype=wifi\n`);
    }
    const result = await repo.run([...snapshotArgs(), '--json'], { env: captureEnv() });
    expectOk(result, 'hostile capture');
    secondCapture = (JSON.parse(result.stdout) as { snapshot_id: string }).snapshot_id;
    script = join(dir, 'hostile.sh');
    expectOk(await repo.run(['system', 'restore-script', secondCapture, '--output', script]), 'restore-script');
    workDir = join(dir, 'work');
    await mkdir(workDir);
  });

  it('produce a script that bash -n and shellcheck accept, and that injects nothing, in --dry-run or run for real', async () => {
    expect(spawnSync('bash', ['-n', script]).status).toBe(0);
    expect(spawnSync('shellcheck', [script], { encoding: 'utf8' }).stdout).toBe('');
    await clearCalls();
    const dry = runScript(script, ['--dry-run', '--user', 'alice', '--home', '/home/alice'], workDir);
    expect(dry.status, dry.stderr).toBe(0);
    expect(await recordedCalls()).toEqual([]);
    const filesRoot = join(dir, 'hostile-root');
    const real = runScript(script, ['--user', 'alice', '--home', '/home/alice', '--files-root', filesRoot], workDir);
    expect(real.status, real.stderr).toBe(0);
    expect(existsSync(PWNED)).toBe(false);
    expect(await readdir(workDir)).toEqual([]);

    // The hostile names reach no command: only the valid ones are installed.
    const argvs = (await recordedCalls()).map((c) => c.argv);
    expect(argvs.find((a) => a[0] === 'apt-get' && a[1] === 'install')).toEqual(['apt-get', 'install', '-y', '--', 'git', 'hello']);
    expect(argvs.filter((a) => a.includes('pip')).map((a) => a[a.length - 1])).toEqual(['requests']);
    expect(argvs.filter((a) => a.includes('npm'))).toEqual([]);
    for (const argv of argvs) for (const payload of payloads) expect(argv).not.toContain(payload);
    // They are listed for review, quoted where they hold control characters.
    for (const payload of payloads.filter((p) => !p.includes('\n'))) expect(real.stdout).toContain(`apt: left out, not a valid name there (review it): ${payload}`);
    expect(real.stdout).toContain(`NetworkManager connection (wifi): set it up again with its password or keys: $(touch ${PWNED})`);

    // Hostile file names are written byte for byte where they belong, and the dry run shows them quoted.
    for (const name of fileNames) {
      const written = join(filesRoot, '/home/alice/bin', name);
      expect((await lstat(written)).isFile(), name).toBe(true);
      expect(await readFile(written, 'utf8')).toBe(await readFile(join(home, 'bin', name), 'utf8'));
    }
    expect(dry.stdout).toContain("+ write $'/home/alice/bin/new\\nline' (owner alice, mode 0644,");
  });
});

describe('bh system diff', () => {
  it('shows exactly the package installed between two captures', async () => {
    const before = await repo.run([...snapshotArgs(['--no-history']), '--json'], { env: captureEnv() });
    expectOk(before, 'capture before');
    // What `apt-get install cowsay` does to apt-mark's list.
    const list = await readFile(join(outputs, 'apt-mark'), 'utf8');
    await printingTool('apt-mark', list + 'cowsay\n');
    const after = await repo.run([...snapshotArgs(['--no-history']), '--json'], { env: captureEnv() });
    expectOk(after, 'capture after');
    const a = (JSON.parse(before.stdout) as { snapshot_id: string }).snapshot_id;
    const b = (JSON.parse(after.stdout) as { snapshot_id: string }).snapshot_id;
    const diff = JSON.parse(expectOk(await repo.run(['system', 'diff', a, b, '--json']), 'system diff').stdout) as unknown[];
    expect(diff).toEqual([{ category: 'apt', added: [{ name: 'cowsay' }], removed: [], changed: [], filesAdded: [], filesRemoved: [], filesChanged: [] }]);
    const text = expectOk(await repo.run(['system', 'diff', a, 'latest']), 'system diff latest').stdout;
    expect(text).toBe('apt:\n  +  cowsay\n');
  });

  it('shows removed items, changed versions and changed files', async () => {
    await writeFile(join(home, '.gitconfig'), '[user]\n\tname = Alice B\n');
    await printingTool('python3', JSON.stringify([{ name: 'requests', version: '2.32.0' }]));
    await printingTool('npm', JSON.stringify({ dependencies: {} }));
    const after = await repo.run([...snapshotArgs(['--no-history']), '--json'], { env: captureEnv() });
    expectOk(after, 'capture');
    const id = (JSON.parse(after.stdout) as { snapshot_id: string }).snapshot_id;
    const text = expectOk(await repo.run(['system', 'diff', firstCapture, id]), 'system diff').stdout;
    expect(text).toContain('pip:\n  M  requests  (version 2.31.0 → version 2.32.0)\n');
    expect(text).toContain('dotfiles:\n  M  ~/.gitconfig\n');
    expect(text).toContain('history:\n  -  ~/.bash_history\n');
    expect(text).toContain('npm:\n  -  typescript  (version 5.3.3)\n  -  @angular/cli  (version 17.0.0)\n');
  });
});
