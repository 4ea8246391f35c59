/**
 * Turning a capture into a restore script to review and run on a fresh machine: bash for Linux
 * captures, PowerShell for Windows ones. Both work in phases, every step tolerant of failure (it
 * warns and the script goes on), files embedded as base64, every value put in by the shell's one
 * quoting function (quote.ts) after its name passed its ecosystem's rules (names.ts), and a
 * summary of what is left to do by hand at the end. `--dry-run` (`-DryRun`) prints every
 * command instead of running it.
 */
import { type CaptureItem, type CapturedFile, type CategoryName, type SystemCapture, categoryOf } from './capture.js';
import { CHANNEL, URL, isInstallableName, isWritablePath } from './names.js';
import { base64Lines, bashQuote, powershellQuote } from './quote.js';

/** The phases of a bash script, in the order they run (`--only` names them). */
export const BASH_PHASES = ['repositories', 'apt', 'snap', 'flatpak', 'pip', 'npm', 'cargo', 'go', 'vscode', 'docker', 'dotfiles', 'scripts', 'fonts', 'cron', 'systemd', 'dconf', 'hints'] as const;
/** The phases of a PowerShell script. */
export const POWERSHELL_PHASES = ['winget', 'choco', 'pip', 'npm', 'cargo', 'vscode'] as const;
export type Phase = (typeof BASH_PHASES)[number] | (typeof POWERSHELL_PHASES)[number];

export interface ScriptSource {
  capture: SystemCapture;
  snapshotId: string;
  /** The bytes of a captured file. */
  read(file: CapturedFile): Promise<Buffer>;
}

export interface ScriptOptions {
  /** Only these phases (default: all of the script's). */
  only?: readonly string[] | undefined;
  /** bh's version, for the header. */
  version: string;
}

export class UnknownPhaseError extends Error {
  constructor(phase: string, known: readonly string[]) {
    super(`--only: there is no phase '${phase}' in this script; the phases are ${known.join(', ')}`);
    this.name = 'UnknownPhaseError';
  }
}

/** The script for the capture's platform: bash for Linux, PowerShell for Windows. */
export function restoreScript(source: ScriptSource, options: ScriptOptions): Promise<string> {
  return source.capture.platform === 'windows' ? powershellScript(source, options) : bashScript(source, options);
}

function selectedPhases<P extends string>(all: readonly P[], only: readonly string[] | undefined): Set<P> {
  if (!only || only.length === 0) return new Set(all);
  for (const phase of only) if (!(all as readonly string[]).includes(phase)) throw new UnknownPhaseError(phase, all);
  return new Set(all.filter((p) => only.includes(p)));
}

function octal(mode: number): string {
  return '0' + (mode & 0o7777).toString(8).padStart(3, '0');
}

/** The items of `category` a script may install, and the ones it leaves for manual review. */
function installable(capture: SystemCapture, category: CategoryName, notes: Note[]): CaptureItem[] {
  const ok: CaptureItem[] = [];
  for (const item of categoryOf(capture, category).items) {
    if (isInstallableName(category, item.name)) ok.push(item);
    else notes.push({ text: `${category}: left out, not a valid name there (review it):`, value: item.name });
  }
  return ok;
}

/** The files of `category` a script may write, and the ones it leaves for manual review. */
function writable(capture: SystemCapture, category: CategoryName, notes: Note[]): CapturedFile[] {
  const ok: CapturedFile[] = [];
  for (const file of categoryOf(capture, category).files) {
    if (isWritablePath(file)) ok.push(file);
    else notes.push({ text: `${category}: file left out, its path is not plain (review it):`, value: file.path });
  }
  return ok;
}

/** A line of the summary at the end: text, and a value shown quoted. */
interface Note {
  text: string;
  value?: string;
}

/** What every script says is left to do by hand, from the capture. */
function manualNotes(capture: SystemCapture, snapshotId: string): Note[] {
  const notes: Note[] = [];
  for (const key of categoryOf(capture, 'ssh-keys').items) {
    if (key.detail?.['private'] === 'present') notes.push({ text: `SSH key ${key.name}: copy its private key from a safe place into the home as`, value: key.detail['file']?.replace(/\.pub$/, '') ?? '.ssh/' });
  }
  for (const key of categoryOf(capture, 'gpg-keys').items) {
    if (key.detail?.['secret'] === 'yes') notes.push({ text: `GPG secret key ${key.name}: import it from your backup (gpg --import), uid`, value: key.detail['uid'] ?? '' });
  }
  for (const connection of categoryOf(capture, 'network').items) {
    notes.push({ text: `${connection.detail?.['source'] ?? 'network'} connection (${connection.detail?.['type'] ?? 'unknown'}): set it up again with its password or keys:`, value: connection.name });
  }
  notes.push({ text: 'Browser profiles, Wi-Fi passwords and password managers are not in a system snapshot: restore them from their own backup or sync.' });
  if (categoryOf(capture, 'history').files.length > 0) notes.push({ text: 'Shell history is in the snapshot, not restored by this script:', value: `bh restore ${snapshotId.slice(0, 8)} --include '/files/home/**history' --target DIR` });
  for (const skipped of capture.skipped) notes.push({ text: `Not captured (${skipped.category}${skipped.tool ? `, ${skipped.tool}` : ''}):`, value: skipped.reason });
  return notes;
}

// --- bash ---------------------------------------------------------------------------------

const BASH_PRELUDE = String.raw`set -u
set -o pipefail
export DEBIAN_FRONTEND=noninteractive

DRY_RUN=0
WARNINGS=0
FILES_ROOT=''
TARGET_HOME=''

usage() {
  cat <<'USAGE'
Usage: restore.sh [--dry-run] [--user NAME] [--home DIR] [--files-root DIR] [--help]
  --dry-run         print every command instead of running it
  --user NAME       restore the user's part for NAME (default: the captured user)
  --home DIR        that user's home (default: from the password database)
  --files-root DIR  write every file below DIR instead of /, owned by whoever runs the script (to review them)
Run it as root: system steps need root, the user's steps run as that user (runuser).
USAGE
}

while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY_RUN=1 ;;
    --user) [ $# -ge 2 ] || { usage >&2; exit 1; }; TARGET_USER=$2; shift ;;
    --home) [ $# -ge 2 ] || { usage >&2; exit 1; }; TARGET_HOME=$2; shift ;;
    --files-root) [ $# -ge 2 ] || { usage >&2; exit 1; }; FILES_ROOT=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) printf 'unknown option: %s\n' "$1" >&2; usage >&2; exit 1 ;;
  esac
  shift
done

warn() {
  WARNINGS=$((WARNINGS + 1))
  printf 'warning: %s\n' "$*" >&2
}

phase() {
  printf '\n== %s\n' "$1"
}

# note TEXT [VALUE]: a line of the summary; a value with control characters is shown quoted.
note() {
  if [ $# -lt 2 ]; then
    printf '  - %s\n' "$1"
  elif [[ $2 == *[![:print:]]* ]]; then
    printf '  - %s %q\n' "$1" "$2"
  else
    printf '  - %s %s\n' "$1" "$2"
  fi
}

# Runs a command, or with --dry-run prints it, each argument quoted as bash reads it.
run() {
  if [ "$DRY_RUN" = 1 ]; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    return 0
  fi
  "$@"
}

# Sets USER_CMD to the command run as the target user (runuser, unless that is who runs this).
user_cmd() {
  if [ "$(id -un)" = "$TARGET_USER" ]; then USER_CMD=("$@"); else USER_CMD=(runuser -u "$TARGET_USER" -- "$@"); fi
}

run_as_user() {
  user_cmd "$@"
  run "${"$"}{USER_CMD[@]}"
}

# run_with_input BASE64 COMMAND...: the command with the decoded bytes on its standard input.
run_with_input() {
  local data=$1
  shift
  if [ "$DRY_RUN" = 1 ]; then
    printf '+'
    printf ' %q' "$@"
    printf ' < (%s bytes)\n' "$(printf '%s' "$data" | base64 -d | wc -c)"
    return 0
  fi
  printf '%s' "$data" | base64 -d | "$@"
}

# Whether a system step may run: as root, or in a dry run.
need_root() {
  if [ "$DRY_RUN" = 1 ] || [ "$(id -u)" = 0 ]; then return 0; fi
  warn "$1 needs root: skipped (run the script as root)"
  return 1
}

# write_file OWNER MODE PATH BASE64: writes a captured file as OWNER (its directories too). An
# existing different file is kept as PATH.before-bh-restore; an identical one is left alone.
write_file() {
  local owner=$1 mode=$2 path=$FILES_ROOT$3 data=$4
  if [ "$DRY_RUN" = 1 ]; then
    printf '+ write %q (owner %s, mode %s, %s bytes)\n' "$path" "$owner" "$mode" "$(printf '%s' "$data" | base64 -d | wc -c)"
    return 0
  fi
  local as=()
  if [ -z "$FILES_ROOT" ] && [ "$(id -un)" != "$owner" ]; then as=(runuser -u "$owner" --); fi
  "${"$"}{as[@]}" mkdir -p -- "$(dirname -- "$path")" || return 1
  if [ -e "$path" ] || [ -L "$path" ]; then
    if printf '%s' "$data" | base64 -d | cmp -s -- - "$path"; then return 0; fi
    "${"$"}{as[@]}" mv -f -- "$path" "$path.before-bh-restore" || return 1
  fi
  printf '%s' "$data" | base64 -d | "${"$"}{as[@]}" tee -- "$path" >/dev/null || return 1
  "${"$"}{as[@]}" chmod -- "$mode" "$path"
}

write_home_file() {
  write_file "$TARGET_USER" "$1" "$TARGET_HOME/$2" "$3"
}

# apt_install NAMES...: one apt-get for all names; when it fails, one per name.
apt_install() {
  [ $# -gt 0 ] || return 0
  run apt-get install -y -- "$@" && return 0
  local name
  for name in "$@"; do
    run apt-get install -y -- "$name" || warn "apt: $name was not installed"
  done
}
`;

async function bashScript(source: ScriptSource, options: ScriptOptions): Promise<string> {
  const { capture, snapshotId } = source;
  const phases = selectedPhases(BASH_PHASES, options.only);
  const q = bashQuote;
  const notes: Note[] = [];
  const out: string[] = [
    '#!/usr/bin/env bash',
    '# Every captured value below is in single quotes on purpose: nothing in it may expand, and a',
    '# backslash or a leading ~/ in it is meant literally (SC1003, SC2016, SC2088 do not apply).',
    '# shellcheck disable=SC1003,SC2016,SC2088',
    `# bh system restore script, made by bh ${options.version} from system snapshot ${snapshotId.slice(0, 8)}`,
    `# of ${capture.host.replace(/[^\x20-\x7e]/g, '?')} (${capture.os.replace(/[^\x20-\x7e]/g, '?')}), captured ${capture.time}.`,
    '# Read it before you run it; try it with --dry-run first. Each step warns when it fails and the',
    '# script goes on; the summary at the end lists what is left to do by hand.',
    `TARGET_USER=${q(capture.user.name)}`,
    `CAPTURED_HOME=${q(capture.user.home)}`,
    BASH_PRELUDE,
    'if [ -z "$TARGET_HOME" ]; then TARGET_HOME=$(getent passwd "$TARGET_USER" | cut -d: -f6); fi',
    'if [ -z "$TARGET_HOME" ]; then',
    '  TARGET_HOME=$CAPTURED_HOME',
    '  warn "user $TARGET_USER is not known here: create it first (adduser), or pass --user; using $TARGET_HOME"',
    'fi',
  ];
  const fileLine = async (file: CapturedFile, owner: 'user' | 'root'): Promise<string> => {
    const data = q(base64Lines(await source.read(file)));
    return owner === 'user' ? `write_home_file ${q(octal(file.mode))} ${q(file.path)} ${data} || warn ${q(`could not write ~/${file.path}`)}` : `write_file root ${q(octal(file.mode))} ${q(file.path)} ${data} || warn ${q(`could not write ${file.path}`)}`;
  };
  const step = (command: string, failure: string): string => `${command} || warn ${q(failure)}`;
  const section = (name: (typeof BASH_PHASES)[number], body: string[], root: boolean): void => {
    if (!phases.has(name) || body.length === 0) return;
    out.push('', `phase ${q(name)}`);
    if (root) out.push(`if need_root ${q(name)}; then`, ...body.map((l) => `  ${l}`), 'fi');
    else out.push(...body);
  };

  // repositories: keyrings, pins and source lists (PPAs through add-apt-repository, which picks
  // this release's suite), then one apt-get update.
  {
    const body: string[] = [];
    const ppas = installable(capture, 'apt-sources', notes);
    const ppaFiles = new Set(ppas.map((p) => p.detail?.['file']));
    for (const file of writable(capture, 'apt-sources', notes)) {
      if (file.path === '/etc/apt/sources.list') {
        body.push(await fileLine({ ...file, path: '/root/bh-system-restore/sources.list' }, 'root'));
        notes.push({ text: 'apt: the captured /etc/apt/sources.list is in /root/bh-system-restore/sources.list; merge what you need:', value: 'diff -u /etc/apt/sources.list /root/bh-system-restore/sources.list' });
      } else if (!ppaFiles.has(file.path)) body.push(await fileLine(file, 'root'));
    }
    for (const ppa of ppas) body.push(step(`run add-apt-repository -y -- ${q(ppa.name)}`, `apt: could not add ${ppa.name}`));
    if (body.length > 0) body.push(step('run apt-get update', 'apt-get update failed'));
    section('repositories', body, true);
  }
  {
    const names = installable(capture, 'apt', notes).map((i) => q(i.name));
    section('apt', names.length > 0 ? [`apt_install ${names.join(' ')}`] : [], true);
  }
  {
    const body = installable(capture, 'snap', notes).map((item) => {
      const channel = item.detail?.['channel'];
      const flags = [channel && CHANNEL.test(channel) ? `--channel=${q(channel)}` : '', item.detail?.['classic'] === 'yes' ? '--classic' : ''].filter((f) => f !== '');
      return step(`run snap install ${[...flags, '--', q(item.name)].join(' ')}`, `snap: ${item.name} was not installed`);
    });
    section('snap', body, true);
  }
  {
    const body: string[] = [];
    for (const remote of installable(capture, 'flatpak-remotes', notes)) {
      const url = remote.detail?.['url'] ?? '';
      if (!URL.test(url)) {
        notes.push({ text: `flatpak remote ${remote.name}: left out, its URL is not plain (review it):`, value: url });
        continue;
      }
      const user = remote.detail?.['installation'] === 'user';
      body.push(step(`${user ? 'run_as_user' : 'run'} flatpak remote-add --if-not-exists${user ? ' --user' : ''} -- ${q(remote.name)} ${q(url)}`, `flatpak: could not add remote ${remote.name}`));
    }
    for (const app of installable(capture, 'flatpak', notes)) {
      const origin = app.detail?.['origin'] ?? '';
      const user = app.detail?.['installation'] === 'user';
      const from = isInstallableName('flatpak-remotes', origin) ? `${q(origin)} ` : '';
      body.push(step(`${user ? 'run_as_user' : 'run'} flatpak install -y --noninteractive${user ? ' --user' : ''} -- ${from}${q(app.name)}`, `flatpak: ${app.name} was not installed`));
    }
    section('flatpak', body, true);
  }
  {
    const body = [
      ...installable(capture, 'pipx', notes).map((i) => step(`run_as_user pipx install -- ${q(i.name)}`, `pipx: ${i.name} was not installed`)),
      ...installable(capture, 'pip', notes).map((i) => step(`run_as_user python3 -m pip install --user -- ${q(i.name)}`, `pip: ${i.name} was not installed (on Debian 12 and later prefer pipx, or add --break-system-packages)`)),
    ];
    section('pip', body, false);
  }
  section('npm', installable(capture, 'npm', notes).map((i) => step(`run_as_user npm install --global -- ${q(i.name)}`, `npm: ${i.name} was not installed`)), false);
  {
    const body: string[] = [];
    for (const crate of installable(capture, 'cargo', notes)) {
      if (crate.detail?.['source']) notes.push({ text: `cargo: ${crate.name} came from outside crates.io; install it from there:`, value: crate.detail['source'] });
      else body.push(step(`run_as_user cargo install -- ${q(crate.name)}`, `cargo: ${crate.name} was not installed`));
    }
    section('cargo', body, false);
  }
  section('go', installable(capture, 'go', notes).map((i) => step(`run_as_user go install -- ${q(`${i.name}@latest`)}`, `go: ${i.name} was not installed`)), false);
  {
    const body = installable(capture, 'vscode', notes).map((i) => step(`run_as_user code --install-extension ${q(i.name)}`, `VS Code: ${i.name} was not installed`));
    for (const file of writable(capture, 'vscode', notes)) body.push(await fileLine(file, 'user'));
    section('vscode', body, false);
  }
  {
    const body = installable(capture, 'docker', notes).map((i) => step(`run docker pull -- ${q(i.name)}`, `docker: could not pull ${i.name}`));
    for (const file of writable(capture, 'docker', notes)) {
      body.push(await fileLine(file, file.origin === 'home' ? 'user' : 'root'));
      notes.push({ text: 'docker: start the compose project when its data is back:', value: `docker compose -f ${file.origin === 'home' ? '~/' : ''}${file.path} up -d` });
    }
    section('docker', body, true);
  }
  for (const phase of ['dotfiles', 'scripts'] as const) section(phase, await Promise.all(writable(capture, phase, notes).map((f) => fileLine(f, 'user'))), false);
  {
    const body = await Promise.all(writable(capture, 'fonts', notes).map((f) => fileLine(f, 'user')));
    if (body.length > 0) body.push(step('run_as_user fc-cache -f', 'fc-cache failed'));
    section('fonts', body, false);
  }
  {
    const body: string[] = [];
    for (const file of writable(capture, 'cron', notes)) {
      if (file.origin === 'output') body.push('user_cmd crontab -', step(`run_with_input ${q(base64Lines(await source.read(file)))} "\${USER_CMD[@]}"`, `could not install ${capture.user.name}'s crontab`));
      else body.push(`if need_root cron; then ${await fileLine(file, 'root')}; fi`);
    }
    section('cron', body, false);
  }
  {
    const body: string[] = [];
    const system = writable(capture, 'systemd', notes);
    const systemUnits = installable(capture, 'systemd', notes);
    if (system.length + systemUnits.length > 0) {
      body.push('if need_root systemd; then');
      for (const file of system) body.push(`  ${await fileLine(file, 'root')}`);
      body.push(`  ${step('run systemctl daemon-reload', 'systemctl daemon-reload failed')}`);
      for (const unit of systemUnits) body.push(`  ${step(`run systemctl enable -- ${q(unit.name)}`, `systemd: could not enable ${unit.name}`)}`);
      body.push('fi');
    }
    const user = writable(capture, 'systemd-user', notes);
    const userUnits = installable(capture, 'systemd-user', notes);
    for (const file of user) body.push(await fileLine(file, 'user'));
    if (user.length + userUnits.length > 0) body.push(step('run_as_user systemctl --user daemon-reload', `systemctl --user daemon-reload failed (log in as the user and run it)`));
    for (const unit of userUnits) body.push(step(`run_as_user systemctl --user enable -- ${q(unit.name)}`, `systemd: could not enable user unit ${unit.name}: log in as the user and run systemctl --user enable ${unit.name}`));
    section('systemd', body, false);
  }
  {
    const body: string[] = [];
    for (const file of writable(capture, 'dconf', notes)) body.push('user_cmd dconf load /', step(`run_with_input ${q(base64Lines(await source.read(file)))} "\${USER_CMD[@]}"`, 'dconf load failed (it needs the user\'s session: log in and run dconf load / < the dump)'));
    section('dconf', body, false);
  }
  {
    const body: string[] = [];
    for (const category of ['fstab', 'hosts'] as const) {
      for (const file of writable(capture, category, notes)) {
        const copy = `/root/bh-system-restore/${category}`;
        body.push(await fileLine({ ...file, path: copy, mode: 0o600 }, 'root'));
        notes.push({ text: `${category}: the captured ${file.path} is in ${copy}; merge what you need (never replace it blindly):`, value: `diff -u ${file.path} ${copy}` });
      }
    }
    section('hints', body, true);
  }

  out.push('', "phase 'left to do by hand'");
  for (const note of [...notes, ...manualNotes(capture, snapshotId)]) out.push(note.value === undefined ? `note ${q(note.text)}` : `note ${q(note.text)} ${q(note.value)}`);
  out.push(
    '',
    'if [ "$WARNINGS" -gt 0 ]; then',
    '  printf \'\\n%s step(s) failed: see the warnings above\\n\' "$WARNINGS" >&2',
    '  exit 3',
    'fi',
    "printf '\\ndone\\n'",
    '',
  );
  return out.join('\n');
}

// --- PowerShell ---------------------------------------------------------------------------

const POWERSHELL_PRELUDE = String.raw`[CmdletBinding()]
param([switch]$DryRun)
$ErrorActionPreference = 'Continue'
$PSNativeCommandArgumentPassing = 'Standard'
$script:Warnings = 0

function Write-Warn([string]$Message) {
  $script:Warnings++
  Write-Warning $Message
}

function Write-Phase([string]$Name) {
  Write-Output ''
  Write-Output ('== ' + $Name)
}

function Write-Note([string]$Text, [string]$Value) {
  if ($PSBoundParameters.ContainsKey('Value')) { Write-Output ('  - ' + $Text + ' ' + $Value) } else { Write-Output ('  - ' + $Text) }
}

# Runs a command, or with -DryRun prints it; true when it succeeded. Output goes to the host:
# whatever a function writes to its output would become part of its result.
function Invoke-Step([string]$Command, [string[]]$Arguments) {
  if ($DryRun) {
    Write-Host ('+ ' + (@($Command) + $Arguments -join ' '))
    return $true
  }
  & $Command @Arguments | Out-Host
  return ($LASTEXITCODE -eq 0)
}

# Writes a captured file below the user's profile; an existing different file is kept as .before-bh-restore.
function Write-HomeFile([string]$RelativePath, [string]$Base64) {
  $path = Join-Path $HOME $RelativePath
  $bytes = [Convert]::FromBase64String($Base64)
  if ($DryRun) {
    Write-Host ('+ write ' + $path + ' (' + $bytes.Length + ' bytes)')
    return $true
  }
  try {
    New-Item -ItemType Directory -Force -Path (Split-Path -Parent $path) | Out-Null
    if (Test-Path -LiteralPath $path) {
      if ([Convert]::ToBase64String([IO.File]::ReadAllBytes($path)) -eq [Convert]::ToBase64String($bytes)) { return $true }
      Move-Item -Force -LiteralPath $path -Destination ($path + '.before-bh-restore')
    }
    [IO.File]::WriteAllBytes($path, $bytes)
    return $true
  } catch {
    return $false
  }
}
`;

async function powershellScript(source: ScriptSource, options: ScriptOptions): Promise<string> {
  const { capture, snapshotId } = source;
  const phases = selectedPhases(POWERSHELL_PHASES, options.only);
  const q = powershellQuote;
  const notes: Note[] = [];
  const out: string[] = [
    `# bh system restore script (PowerShell), made by bh ${options.version} from system snapshot ${snapshotId.slice(0, 8)}`,
    `# of ${capture.host.replace(/[^\x20-\x7e]/g, '?')} (${capture.os.replace(/[^\x20-\x7e]/g, '?')}), captured ${capture.time}.`,
    '# Read it before you run it; try it with -DryRun first. Each step warns when it fails and the',
    '# script goes on; the summary at the end lists what is left to do by hand.',
    POWERSHELL_PRELUDE,
  ];
  const step = (command: string, args: string[], failure: string): string => `if (-not (Invoke-Step ${q(command)} @(${args.map(q).join(', ')}))) { Write-Warn ${q(failure)} }`;
  const section = (name: (typeof POWERSHELL_PHASES)[number], body: string[]): void => {
    if (!phases.has(name) || body.length === 0) return;
    out.push('', `Write-Phase ${q(name)}`, ...body);
  };
  section('winget', installable(capture, 'winget', notes).map((i) => step('winget', ['install', '--exact', '--id', i.name, '--accept-package-agreements', '--accept-source-agreements'], `winget: ${i.name} was not installed`)));
  section('choco', installable(capture, 'choco', notes).map((i) => step('choco', ['install', '-y', i.name], `choco: ${i.name} was not installed`)));
  section('pip', installable(capture, 'pip', notes).map((i) => step('python', ['-m', 'pip', 'install', '--user', '--', i.name], `pip: ${i.name} was not installed`)));
  section('npm', installable(capture, 'npm', notes).map((i) => step('npm', ['install', '--global', '--', i.name], `npm: ${i.name} was not installed`)));
  section('cargo', installable(capture, 'cargo', notes).filter((i) => !i.detail?.['source']).map((i) => step('cargo', ['install', '--', i.name], `cargo: ${i.name} was not installed`)));
  {
    const body = installable(capture, 'vscode', notes).map((i) => step('code', ['--install-extension', i.name], `VS Code: ${i.name} was not installed`));
    for (const file of writable(capture, 'vscode', notes)) {
      if (file.origin !== 'home') continue;
      body.push(`if (-not (Write-HomeFile ${q(file.path)} ${q(base64Lines(await source.read(file)))})) { Write-Warn ${q(`could not write ~/${file.path}`)} }`);
    }
    section('vscode', body);
  }
  out.push('', `Write-Phase ${q('left to do by hand')}`);
  for (const note of [...notes, ...manualNotes(capture, snapshotId)]) out.push(note.value === undefined ? `Write-Note ${q(note.text)}` : `Write-Note ${q(note.text)} ${q(note.value)}`);
  out.push('', 'if ($script:Warnings -gt 0) {', "  Write-Output ''", "  Write-Output ([string]$script:Warnings + ' step(s) failed: see the warnings above')", '  exit 3', '}', "Write-Output 'done'", '');
  return out.join('\n');
}
