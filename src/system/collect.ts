/**
 * Capturing a machine: every collector below fills one category of the capture document
 * (capture.ts) from a tool's output or from files, and a collector whose tool is missing, fails
 * or times out is skipped and named in `skipped`; the capture goes on. Tools run without a
 * shell (tools.ts). Files are read below `home` and `root`, so a test (or a capture of a
 * mounted old disk) can point them elsewhere.
 *
 * Never captured: private keys (SSH, GPG), passwords of network connections, and files known to
 * hold credentials (.netrc, .npmrc, .pypirc, .git-credentials, cloud and Docker credentials):
 * only their names, or nothing.
 */
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { posix } from 'node:path';
import {
  CAPTURE_FORMAT,
  CAPTURE_VERSION,
  type CaptureCategory,
  type CaptureItem,
  type CapturePlatform,
  type CategoryName,
  type FileOrigin,
  type SystemCapture,
} from './capture.js';
import { type ToolOptions, ToolUnavailableError, runTool } from './tools.js';

export interface CaptureOptions {
  platform: CapturePlatform;
  host: string;
  user: { name: string; uid: number };
  /** The user's home: dotfiles, scripts, fonts, history, keys are read below it. */
  home: string;
  /** System files (/etc/…) are read below this directory ('/' for this machine). */
  root: string;
  /** Environment of the tools (PATH, HOME, GNUPGHOME, …). */
  env: Readonly<Record<string, string | undefined>>;
  /** How long one tool may run (ms). */
  toolTimeoutMs: number;
  /** Capture shell history (the last HISTORY_LINES lines of each file). */
  history: boolean;
  time: Date;
  /** Told when a collector starts. */
  onCategory?: (category: CategoryName) => void;
}

/** The document, and the captured files' bytes by their `stored` path. */
export interface CaptureResult {
  capture: SystemCapture;
  contents: Map<string, Buffer>;
}

export const HISTORY_LINES = 5000;
/** Files larger than this are not captured (named in `skipped`): back them up with `bh backup`. */
export const MAX_CAPTURED_FILE = 32 * 1024 * 1024;
/** ~/bin and ~/.local/bin: only scripts, not the binaries that cargo, go or pipx put there. */
const MAX_SCRIPT = 1024 * 1024;

/** Dotfiles captured when present, relative to the home (README, "System snapshots"). */
export const DOTFILES = [
  '.bashrc', '.bash_profile', '.bash_aliases', '.bash_logout', '.profile', '.inputrc',
  '.zshrc', '.zprofile', '.zshenv', '.config/fish/config.fish', '.config/starship.toml',
  '.gitconfig', '.gitignore_global', '.config/git/config', '.config/git/ignore',
  '.vimrc', '.config/nvim/init.vim', '.config/nvim/init.lua', '.nanorc', '.editorconfig',
  '.tmux.conf', '.config/tmux/tmux.conf', '.screenrc', '.config/htop/htoprc',
  '.ssh/config', '.ssh/authorized_keys', '.ssh/known_hosts',
  '.selected_editor', '.config/user-dirs.dirs', '.Xresources', '.xprofile',
] as const;

const HISTORY_FILES = ['.bash_history', '.zsh_history', '.local/share/fish/fish_history'] as const;
const VSCODE_FILES = ['settings.json', 'keybindings.json'] as const;
const COMPOSE_NAMES = new Set(['docker-compose.yml', 'docker-compose.yaml', 'compose.yml', 'compose.yaml']);
const UNIT_SUFFIXES = ['.service', '.timer', '.socket', '.path', '.mount', '.automount', '.target', '.slice'];

export async function captureSystem(options: CaptureOptions): Promise<CaptureResult> {
  const c = new Collector(options);
  if (options.platform === 'linux') c.capture.os = (await osName(options.root)) ?? 'Linux';
  const collectors: [CategoryName, () => Promise<void>][] =
    options.platform === 'windows'
      ? [
          ['winget', () => collectWinget(c)],
          ['choco', () => collectChoco(c)],
          ['pip', () => collectPip(c, 'python')],
          ['npm', () => collectNpm(c)],
          ['cargo', () => collectCargo(c)],
          ['vscode', () => collectVscode(c)],
        ]
      : [
          ['apt-sources', () => collectAptSources(c)],
          ['apt', () => collectApt(c)],
          ['snap', () => collectSnap(c)],
          ['flatpak', () => collectFlatpak(c)],
          ['pipx', () => collectPipx(c)],
          ['pip', () => collectPip(c, 'python3')],
          ['npm', () => collectNpm(c)],
          ['cargo', () => collectCargo(c)],
          ['go', () => collectGo(c)],
          ['vscode', () => collectVscode(c)],
          ['docker', () => collectDocker(c)],
          ['dotfiles', () => collectDotfiles(c)],
          ['scripts', () => collectScripts(c)],
          ['fonts', () => collectFonts(c)],
          ['cron', () => collectCron(c)],
          ['systemd', () => collectSystemd(c, 'systemd', 'system')],
          ['systemd-user', () => collectSystemd(c, 'systemd-user', 'home')],
          ['dconf', () => collectDconf(c)],
          ['fstab', () => c.systemFile('fstab', '/etc/fstab')],
          ['hosts', () => c.systemFile('hosts', '/etc/hosts')],
          ['history', () => collectHistory(c)],
          ['ssh-keys', () => collectSshKeys(c)],
          ['gpg-keys', () => collectGpgKeys(c)],
          ['network', () => collectNetwork(c)],
        ];
  for (const [category, collect] of collectors) {
    options.onCategory?.(category);
    await collect();
  }
  return { capture: c.capture, contents: c.contents };
}

/** The capture under construction and the helpers collectors share. */
class Collector {
  readonly capture: SystemCapture;
  readonly contents = new Map<string, Buffer>();
  private readonly tools: ToolOptions;

  constructor(readonly options: CaptureOptions) {
    this.tools = { env: options.env, timeoutMs: options.toolTimeoutMs };
    this.capture = {
      format: CAPTURE_FORMAT,
      version: CAPTURE_VERSION,
      time: options.time.toISOString(),
      host: options.host,
      platform: options.platform,
      os: options.platform === 'windows' ? 'Windows' : 'Linux',
      user: { name: options.user.name, uid: options.user.uid, home: options.home },
      history: options.history,
      categories: {},
      skipped: [],
    };
  }

  category(name: CategoryName): CaptureCategory {
    const existing = this.capture.categories[name];
    if (existing) return existing;
    const made: CaptureCategory = { items: [], files: [] };
    this.capture.categories[name] = made;
    return made;
  }

  item(category: CategoryName, name: string, detail?: Record<string, string>): void {
    const items = this.category(category).items;
    if (items.some((i) => i.name === name)) return;
    const item: CaptureItem = { name };
    if (detail && Object.keys(detail).length > 0) item.detail = detail;
    items.push(item);
  }

  skip(category: CategoryName, reason: string, tool?: string): void {
    this.capture.skipped.push(tool === undefined ? { category, reason } : { category, tool, reason });
  }

  /**
   * The tool's output, or undefined when it is missing or failed (then the category names it as
   * skipped). On Windows, npm and VS Code's `code` are batch files, which only cmd.exe runs:
   * they go through `cmd.exe /d /s /c` with the collector's fixed arguments (no captured value
   * is ever part of a command line).
   */
  async tool(category: CategoryName, tool: string, args: readonly string[], okExitCodes?: readonly number[]): Promise<string | undefined> {
    const batch = this.options.platform === 'windows' && (tool === 'npm' || tool === 'code');
    try {
      return (batch ? await runTool('cmd.exe', ['/d', '/s', '/c', `${tool}.cmd`, ...args], this.tools, okExitCodes) : await runTool(tool, args, this.tools, okExitCodes)).stdout;
    } catch (error) {
      if (!(error instanceof ToolUnavailableError)) throw error;
      this.skip(category, error.missing ? 'not installed' : error.message, tool);
      return undefined;
    }
  }

  /** A path below the capture's root. */
  systemPath(path: string): string {
    return posix.join(this.options.root, path);
  }

  homePath(relative: string): string {
    return posix.join(this.options.home, relative);
  }

  addFile(category: CategoryName, origin: FileOrigin, path: string, bytes: Buffer, mode: number): void {
    const stored = origin === 'home' ? `files/home/${path}` : origin === 'system' ? `files/system${path}` : `files/output/${path.replace(/[^A-Za-z0-9._-]+/g, '-')}`;
    if (this.contents.has(stored)) return;
    this.contents.set(stored, bytes);
    this.category(category).files.push({ origin, path, mode: mode & 0o7777, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), stored });
  }

  /**
   * Captures a file if it is there (a symlink is followed: dotfile managers link them). Absent:
   * nothing. Unreadable, not a regular file or too large: named in `skipped`.
   */
  async readFileInto(category: CategoryName, origin: 'home' | 'system', path: string, transform?: (bytes: Buffer) => Buffer): Promise<void> {
    const full = origin === 'home' ? this.homePath(path) : this.systemPath(path);
    try {
      const st = await stat(full);
      if (!st.isFile()) return;
      if (st.size > MAX_CAPTURED_FILE) return this.skip(category, `${full} is larger than ${MAX_CAPTURED_FILE / 1024 / 1024} MiB: back it up with bh backup`);
      const bytes = await readFile(full);
      this.addFile(category, origin, path, transform ? transform(bytes) : bytes, st.mode);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      this.skip(category, `cannot read ${full}: ${(error as Error).message}`);
    }
  }

  homeFile(category: CategoryName, relative: string): Promise<void> {
    return this.readFileInto(category, 'home', relative);
  }

  systemFile(category: CategoryName, absolute: string): Promise<void> {
    return this.readFileInto(category, 'system', absolute);
  }

  /** Names in a directory, sorted; [] when it is absent; undefined (and named in `skipped`) when unreadable. */
  async list(category: CategoryName, dir: string): Promise<string[] | undefined> {
    try {
      return (await readdir(dir)).sort();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      this.skip(category, `cannot list ${dir}: ${(error as Error).message}`);
      return undefined;
    }
  }

  /**
   * Regular files below `dir` (relative to it, sorted), `depth` levels down at most; symlinks
   * are not followed. Directories whose name `skipDir` refuses are not entered.
   */
  async walk(category: CategoryName, dir: string, depth: number, skipDir: (name: string) => boolean = () => false): Promise<string[]> {
    const found: string[] = [];
    const visit = async (relative: string, level: number): Promise<void> => {
      const names = await this.list(category, posix.join(dir, relative));
      for (const name of names ?? []) {
        const path = relative === '' ? name : `${relative}/${name}`;
        const st = await lstat(posix.join(dir, path)).catch(() => undefined);
        if (st?.isFile()) found.push(path);
        else if (st?.isDirectory() && level < depth && !skipDir(name)) await visit(path, level + 1);
      }
    };
    await visit('', 0);
    return found;
  }
}

function lines(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

/** Parses a tool's JSON output; a tool that printed something else is named as skipped. */
function parseJson(c: Collector, category: CategoryName, tool: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    c.skip(category, `${tool} printed output that is not JSON`, tool);
    return undefined;
  }
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

// --- packages ---------------------------------------------------------------------------

async function collectApt(c: Collector): Promise<void> {
  const out = await c.tool('apt', 'apt-mark', ['showmanual']);
  if (out !== undefined) for (const name of lines(out)) c.item('apt', name);
}

/** Sources lists, keyrings and pins, and the PPAs the lists name (ppa:owner/name). */
async function collectAptSources(c: Collector): Promise<void> {
  await c.systemFile('apt-sources', '/etc/apt/sources.list');
  for (const dir of ['/etc/apt/sources.list.d', '/etc/apt/keyrings', '/etc/apt/trusted.gpg.d', '/etc/apt/preferences.d']) {
    for (const name of (await c.list('apt-sources', c.systemPath(dir))) ?? []) await c.systemFile('apt-sources', `${dir}/${name}`);
  }
  for (const file of c.category('apt-sources').files) {
    if (!/\.(list|sources)$/.test(file.path)) continue;
    const text = c.contents.get(file.stored)!.toString('utf8');
    for (const match of text.matchAll(/^[^#\n]*ppa\.launchpad(?:content)?\.net\/([a-z0-9][a-z0-9.+-]*)\/([a-z0-9][a-z0-9.+-]*)\/ubuntu/gm)) c.item('apt-sources', `ppa:${match[1]}/${match[2]}`, { file: file.path });
  }
}

async function collectSnap(c: Collector): Promise<void> {
  const out = await c.tool('snap', 'snap', ['list']);
  if (out === undefined) return;
  // Name  Version  Rev  Tracking  Publisher  Notes
  for (const line of lines(out).slice(1)) {
    const [name, version, , tracking, , notes] = line.split(/\s+/);
    if (!name) continue;
    const detail: Record<string, string> = {};
    if (version) detail['version'] = version;
    if (tracking && tracking !== '-') detail['channel'] = tracking;
    if (notes?.split(',').includes('classic')) detail['classic'] = 'yes';
    c.item('snap', name, detail);
  }
}

async function collectFlatpak(c: Collector): Promise<void> {
  const remotes = await c.tool('flatpak-remotes', 'flatpak', ['remotes', '--columns=name,url,options']);
  for (const line of lines(remotes ?? '')) {
    const [name, url, options] = line.split('\t');
    if (name && url) c.item('flatpak-remotes', name, { url, installation: options?.includes('user') ? 'user' : 'system' });
  }
  const apps = await c.tool('flatpak', 'flatpak', ['list', '--app', '--columns=application,origin,installation']);
  for (const line of lines(apps ?? '')) {
    const [name, origin, installation] = line.split('\t');
    if (name) c.item('flatpak', name, { origin: origin ?? '', installation: installation === 'user' ? 'user' : 'system' });
  }
}

async function collectPipx(c: Collector): Promise<void> {
  const out = await c.tool('pipx', 'pipx', ['list', '--json']);
  if (out === undefined) return;
  const venvs = record(record(parseJson(c, 'pipx', 'pipx', out))['venvs']);
  for (const [name, venv] of Object.entries(venvs)) {
    const main = record(record(record(venv)['metadata'])['main_package']);
    const version = main['package_version'];
    c.item('pipx', typeof main['package'] === 'string' ? main['package'] : name, typeof version === 'string' ? { version } : undefined);
  }
}

async function collectPip(c: Collector, python: string): Promise<void> {
  const out = await c.tool('pip', python, ['-m', 'pip', 'list', '--user', '--format=json', '--disable-pip-version-check']);
  if (out === undefined) return;
  const packages = parseJson(c, 'pip', python, out);
  for (const entry of Array.isArray(packages) ? packages : []) {
    const { name, version } = record(entry);
    if (typeof name === 'string') c.item('pip', name, typeof version === 'string' ? { version } : undefined);
  }
}

async function collectNpm(c: Collector): Promise<void> {
  // npm ls exits 1 when the tree has problems (an extraneous package) and still lists it.
  const out = await c.tool('npm', 'npm', ['ls', '--global', '--depth=0', '--json'], [0, 1]);
  if (out === undefined) return;
  for (const [name, info] of Object.entries(record(record(parseJson(c, 'npm', 'npm', out))['dependencies']))) {
    const version = record(info)['version'];
    c.item('npm', name, typeof version === 'string' ? { version } : undefined);
  }
}

async function collectCargo(c: Collector): Promise<void> {
  const out = await c.tool('cargo', 'cargo', ['install', '--list']);
  if (out === undefined) return;
  // "ripgrep v14.1.0:" or "tool v0.1.0 (https://github.com/…#abc):", then indented binaries.
  for (const line of out.split('\n')) {
    const match = /^(\S+) v(\S+?)(?: \((.*)\))?:$/.exec(line);
    if (!match) continue;
    const detail: Record<string, string> = { version: match[2]! };
    if (match[3]) detail['source'] = match[3];
    c.item('cargo', match[1]!, detail);
  }
}

async function collectGo(c: Collector): Promise<void> {
  const envOut = await c.tool('go', 'go', ['env', 'GOBIN', 'GOPATH']);
  if (envOut === undefined) return;
  const [gobin, gopath] = envOut.split('\n').map((l) => l.trim());
  const bin = gobin || (gopath ? posix.join(gopath.split(':')[0]!, 'bin') : '');
  if (!bin || (await c.list('go', bin))?.length === 0) return;
  const out = await c.tool('go', 'go', ['version', '-m', bin]);
  if (out === undefined) return;
  // "/root/go/bin/gopls: go1.21.0" then "\tpath\tgolang.org/x/tools/gopls" and "\tmod\t… v0.14.2 …".
  let binary: string | undefined;
  for (const line of out.split('\n')) {
    const head = /^(\S.*): go\S+$/.exec(line);
    if (head) binary = posix.basename(head[1]!);
    const field = line.split('\t');
    if (binary && field[1] === 'path' && field[2]) c.item('go', field[2], { binary });
    if (binary && field[1] === 'mod' && field[3]) {
      const item = c.category('go').items.find((i) => i.detail?.['binary'] === binary);
      if (item?.detail) item.detail['version'] = field[3];
    }
  }
}

async function collectWinget(c: Collector): Promise<void> {
  const out = await c.tool('winget', 'winget', ['list', '--accept-source-agreements', '--disable-interactivity']);
  if (out === undefined) return;
  // A table: "Name  Id  Version  Available  Source"; the Id column starts where its header does.
  const rows = out.split('\n').map((l) => l.replace(/\r$/, ''));
  const header = rows.findIndex((l) => /\bId\b/.test(l) && /\bVersion\b/.test(l));
  if (header < 0) return;
  const idAt = rows[header]!.search(/\bId\b/);
  const versionAt = rows[header]!.search(/\bVersion\b/);
  for (const row of rows.slice(header + 2)) {
    const id = row.slice(idAt, versionAt).trim();
    if (/^[A-Za-z0-9][A-Za-z0-9.+_-]*$/.test(id)) c.item('winget', id, { version: row.slice(versionAt).trim().split(/\s+/)[0] ?? '' });
  }
}

async function collectChoco(c: Collector): Promise<void> {
  const out = await c.tool('choco', 'choco', ['list', '--limit-output']);
  for (const line of lines(out ?? '')) {
    const [name, version] = line.split('|');
    if (name) c.item('choco', name, version ? { version } : undefined);
  }
}

async function collectVscode(c: Collector): Promise<void> {
  const out = await c.tool('vscode', 'code', ['--list-extensions', '--show-versions']);
  for (const line of lines(out ?? '')) {
    const at = line.lastIndexOf('@');
    if (at > 0) c.item('vscode', line.slice(0, at), { version: line.slice(at + 1) });
    else c.item('vscode', line);
  }
  // Settings live in %APPDATA%\Code\User on Windows, ~/.config/Code/User on Linux.
  const dir = c.options.platform === 'windows' ? 'AppData/Roaming/Code/User' : '.config/Code/User';
  for (const file of VSCODE_FILES) await c.homeFile('vscode', `${dir}/${file}`);
  for (const name of await c.walk('vscode', c.homePath(`${dir}/snippets`), 0)) await c.homeFile('vscode', `${dir}/snippets/${name}`);
}

async function collectDocker(c: Collector): Promise<void> {
  const out = await c.tool('docker', 'docker', ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']);
  for (const ref of lines(out ?? '')) if (!ref.includes('<none>')) c.item('docker', ref);
  const skipDir = (name: string): boolean => name.startsWith('.') || name === 'node_modules';
  for (const path of await c.walk('docker', c.options.home, 4, skipDir)) if (COMPOSE_NAMES.has(posix.basename(path))) await c.homeFile('docker', path);
  for (const top of ['/srv', '/opt']) {
    for (const path of await c.walk('docker', c.systemPath(top), 3, skipDir)) if (COMPOSE_NAMES.has(posix.basename(path))) await c.systemFile('docker', `${top}/${path}`);
  }
}

// --- files of the user --------------------------------------------------------------------

async function collectDotfiles(c: Collector): Promise<void> {
  for (const file of DOTFILES) await c.homeFile('dotfiles', file);
}

/** ~/bin and ~/.local/bin: regular files up to 1 MiB that are not ELF binaries (those come from cargo, go, pipx). */
async function collectScripts(c: Collector): Promise<void> {
  for (const dir of ['bin', '.local/bin']) {
    for (const name of await c.walk('scripts', c.homePath(dir), 0)) {
      const path = `${dir}/${name}`;
      const head = await readFile(c.homePath(path)).catch(() => undefined);
      if (!head || head.length > MAX_SCRIPT || head.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) continue;
      await c.homeFile('scripts', path);
    }
  }
}

async function collectFonts(c: Collector): Promise<void> {
  for (const dir of ['.local/share/fonts', '.fonts']) {
    for (const path of await c.walk('fonts', c.homePath(dir), 4)) await c.homeFile('fonts', `${dir}/${path}`);
  }
}

async function collectHistory(c: Collector): Promise<void> {
  if (!c.options.history) return;
  const lastLines = (bytes: Buffer): Buffer => {
    const all = bytes.toString('utf8').split('\n');
    if (all[all.length - 1] === '') all.pop();
    return Buffer.from(all.slice(-HISTORY_LINES).join('\n') + '\n');
  };
  for (const file of HISTORY_FILES) await c.readFileInto('history', 'home', file, lastLines);
}

// --- scheduled work and services ----------------------------------------------------------

async function collectCron(c: Collector): Promise<void> {
  // `crontab -l` exits 1 with "no crontab for USER" when there is none.
  const out = await c.tool('cron', 'crontab', ['-l'], [0, 1]);
  if (out !== undefined && out.trim() !== '') c.addFile('cron', 'output', 'crontab', Buffer.from(out), 0o600);
  for (const name of (await c.list('cron', c.systemPath('/etc/cron.d'))) ?? []) if (!name.startsWith('.')) await c.systemFile('cron', `/etc/cron.d/${name}`);
}

/**
 * Unit files written by hand (regular files and drop-ins; the links systemctl makes are not
 * files) and the units enabled there (the links in *.wants and *.requires).
 */
async function collectSystemd(c: Collector, category: 'systemd' | 'systemd-user', origin: 'system' | 'home'): Promise<void> {
  const relativeDir = origin === 'system' ? '/etc/systemd/system' : '.config/systemd/user';
  const dir = origin === 'system' ? c.systemPath(relativeDir) : c.homePath(relativeDir);
  for (const name of (await c.list(category, dir)) ?? []) {
    const st = await lstat(posix.join(dir, name)).catch(() => undefined);
    if (st?.isFile() && UNIT_SUFFIXES.some((s) => name.endsWith(s))) await c.readFileInto(category, origin, `${relativeDir}/${name}`);
    else if (st?.isDirectory() && name.endsWith('.d')) {
      for (const dropIn of (await c.list(category, posix.join(dir, name))) ?? []) if (dropIn.endsWith('.conf')) await c.readFileInto(category, origin, `${relativeDir}/${name}/${dropIn}`);
    } else if (st?.isDirectory() && (name.endsWith('.wants') || name.endsWith('.requires'))) {
      const target = name.replace(/\.(wants|requires)$/, '');
      for (const unit of (await c.list(category, posix.join(dir, name))) ?? []) c.item(category, unit, { wantedBy: target });
    }
  }
}

async function collectDconf(c: Collector): Promise<void> {
  const out = await c.tool('dconf', 'dconf', ['dump', '/']);
  if (out !== undefined && out.trim() !== '') c.addFile('dconf', 'output', 'dconf dump', Buffer.from(out), 0o600);
}

// --- keys and connections: names and public parts only ----------------------------------

async function collectSshKeys(c: Collector): Promise<void> {
  const dir = c.homePath('.ssh');
  const names = (await c.list('ssh-keys', dir)) ?? [];
  for (const name of names.filter((n) => n.endsWith('.pub'))) {
    const text = await readFile(posix.join(dir, name), 'utf8').catch(() => '');
    const [type, blob, ...comment] = text.trim().split(/\s+/);
    if (!type || !blob) continue;
    const fingerprint = `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}`;
    const privateKey = names.includes(name.slice(0, -4)) ? 'present' : 'absent';
    c.item('ssh-keys', fingerprint, { file: `.ssh/${name}`, type, comment: comment.join(' '), private: privateKey });
  }
}

async function collectGpgKeys(c: Collector): Promise<void> {
  const secret = await c.tool('gpg-keys', 'gpg', ['--batch', '--with-colons', '--list-secret-keys']);
  if (secret === undefined) return;
  const pub = (await c.tool('gpg-keys', 'gpg', ['--batch', '--with-colons', '--list-keys'])) ?? '';
  const secretFingerprints = new Set(primaryKeys(secret).map((k) => k.fingerprint));
  for (const key of primaryKeys(pub + '\n' + secret)) c.item('gpg-keys', key.fingerprint, { uid: key.uid, secret: secretFingerprints.has(key.fingerprint) ? 'yes' : 'no' });
}

/** The primary keys of gpg's --with-colons listing: "pub"/"sec", then its "fpr" and first "uid". */
function primaryKeys(listing: string): { fingerprint: string; uid: string }[] {
  const keys: { fingerprint: string; uid: string }[] = [];
  let current: { fingerprint: string; uid: string } | undefined;
  let expectFingerprint = false;
  for (const line of listing.split('\n')) {
    const field = line.split(':');
    if (field[0] === 'pub' || field[0] === 'sec') {
      current = { fingerprint: '', uid: '' };
      expectFingerprint = true;
    } else if (field[0] === 'sub' || field[0] === 'ssb') expectFingerprint = false;
    else if (field[0] === 'fpr' && expectFingerprint && current) {
      current.fingerprint = field[9] ?? '';
      keys.push(current);
      expectFingerprint = false;
    } else if (field[0] === 'uid' && current && current.uid === '') current.uid = field[9] ?? '';
  }
  return keys.filter((k) => k.fingerprint !== '');
}

/** NetworkManager connections (id and type, from the keyfile; never its secrets) and WireGuard interfaces (file names). */
async function collectNetwork(c: Collector): Promise<void> {
  const nmDir = c.systemPath('/etc/NetworkManager/system-connections');
  for (const name of (await c.list('network', nmDir)) ?? []) {
    const text = await readFile(posix.join(nmDir, name), 'utf8').catch(() => undefined);
    const id = text === undefined ? undefined : /^id=(.*)$/m.exec(text)?.[1];
    const type = text === undefined ? undefined : /^type=(.*)$/m.exec(text)?.[1];
    c.item('network', id ?? name.replace(/\.nmconnection$/, ''), { source: 'NetworkManager', type: type ?? 'unknown' });
  }
  const wgDir = c.systemPath('/etc/wireguard');
  for (const name of (await c.list('network', wgDir)) ?? []) if (name.endsWith('.conf')) c.item('network', name.slice(0, -5), { source: 'WireGuard', type: 'wireguard' });
}

/** PRETTY_NAME of os-release below `root`, or undefined. */
export async function osName(root: string): Promise<string | undefined> {
  for (const file of ['/etc/os-release', '/usr/lib/os-release']) {
    const text = await readFile(posix.join(root, file), 'utf8').catch(() => undefined);
    const match = text && /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text);
    if (match) return match[1];
  }
  return undefined;
}
