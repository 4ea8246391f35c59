/**
 * What a name must look like before a restore script puts it into a command, per ecosystem.
 * Quoting (quote.ts) already keeps any value from becoming code; these rules keep a hostile or
 * garbled name from becoming an *option* or another package manager's syntax (a leading dash,
 * a URL, a path), and such a name is left out and listed for manual review instead.
 */
import type { CategoryName, CapturedFile } from './capture.js';

const PATTERNS: Partial<Record<CategoryName, RegExp>> = {
  // Debian policy: lowercase letters, digits, + - . ; apt-mark may add an architecture.
  apt: /^[a-z0-9][a-z0-9+.-]*(?::[a-z0-9-]+)?$/,
  'apt-sources': /^ppa:[a-z0-9][a-z0-9.+-]*\/[a-z0-9][a-z0-9.+-]*$/,
  snap: /^[a-z0-9](?:-?[a-z0-9])*$/,
  'flatpak-remotes': /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/,
  // Reverse-DNS application ids.
  flatpak: /^[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)+$/,
  // PEP 508 names.
  pipx: /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/,
  pip: /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/,
  npm: /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[A-Za-z0-9][A-Za-z0-9._~-]*$/,
  cargo: /^[A-Za-z][A-Za-z0-9_-]*$/,
  // Go import paths of main packages.
  go: /^[A-Za-z0-9][A-Za-z0-9._~-]*(?:\/[A-Za-z0-9._~-]+)+$/,
  vscode: /^[A-Za-z0-9][A-Za-z0-9-]*\.[A-Za-z0-9][A-Za-z0-9._-]*$/,
  docker: /^[a-z0-9][a-z0-9._/:@-]*$/,
  systemd: /^[A-Za-z0-9_][A-Za-z0-9:_.@\\-]*\.(?:service|timer|socket|path|mount|automount|target|slice)$/,
  'systemd-user': /^[A-Za-z0-9_][A-Za-z0-9:_.@\\-]*\.(?:service|timer|socket|path|mount|automount|target|slice)$/,
  winget: /^[A-Za-z0-9][A-Za-z0-9.+_-]*$/,
  choco: /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
};

/** Whether a restore script may use `name` of `category` in a command. */
export function isInstallableName(category: CategoryName, name: string): boolean {
  const pattern = PATTERNS[category];
  return pattern !== undefined && pattern.test(name);
}

/** Extra detail values that go into commands: snap channels, flatpak remotes and URLs. */
export const CHANNEL = /^[a-z0-9][a-z0-9./-]*$/;
export const URL = /^[a-z][a-z0-9+.-]*:\/\/[^\s]+$/;

/**
 * Whether a captured file's path may be written by a restore script: relative to the home
 * without `..`, or absolute without `..`; no empty components.
 */
export function isWritablePath(file: CapturedFile): boolean {
  if (file.origin === 'output') return true;
  const parts = file.path.split('/');
  const relativeParts = file.origin === 'home' ? parts : parts.slice(1);
  if (file.origin === 'system' && parts[0] !== '') return false;
  return relativeParts.length > 0 && relativeParts.every((p) => p !== '' && p !== '.' && p !== '..');
}
