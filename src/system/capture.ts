/**
 * The capture document: what `bh system snapshot` records about a machine, as one JSON
 * document (`system.json` in the snapshot) beside the files it captured (`files/…`). Every
 * category has the same shape, items and files, so that diff and the restore scripts treat them
 * alike; what an item's details mean is its category's business (README, "System snapshots").
 */

export const CAPTURE_FORMAT = 'bh-system-capture';
export const CAPTURE_VERSION = 1;
/** Where the document is in a system snapshot. */
export const CAPTURE_DOCUMENT = 'system.json';
/** The tag every system snapshot carries. */
export const SYSTEM_TAG = 'system';

/** The categories, in the order captures, diffs and restore scripts list them. */
export const CATEGORIES = [
  'apt-sources',
  'apt',
  'snap',
  'flatpak-remotes',
  'flatpak',
  'winget',
  'choco',
  'pipx',
  'pip',
  'npm',
  'cargo',
  'go',
  'vscode',
  'docker',
  'dotfiles',
  'scripts',
  'fonts',
  'cron',
  'systemd',
  'systemd-user',
  'dconf',
  'fstab',
  'hosts',
  'history',
  'ssh-keys',
  'gpg-keys',
  'network',
] as const;
export type CategoryName = (typeof CATEGORIES)[number];

/** One thing of a category: a package, an enabled unit, a key, a connection. */
export interface CaptureItem {
  /** Unique in its category: what diff compares and restore installs. */
  name: string;
  /** Version, channel, origin, … as the tool reported them (diff shows a change of them). */
  detail?: Record<string, string> | undefined;
}

/**
 * Where a captured file came from: the user's home (`path` relative to it, so a restore can put
 * it in another user's home), the system (`path` absolute), or a command's output (`path` is a
 * label such as `crontab -l`).
 */
export type FileOrigin = 'home' | 'system' | 'output';

export interface CapturedFile {
  origin: FileOrigin;
  path: string;
  /** Permission bits of the original. */
  mode: number;
  size: number;
  /** Hex SHA-256 of the captured bytes. */
  sha256: string;
  /** Where its bytes are in the snapshot (relative path below the snapshot's root). */
  stored: string;
}

export interface CaptureCategory {
  items: CaptureItem[];
  files: CapturedFile[];
}

/** A collector that gave nothing, and why (a tool missing, a tool failing, a file unreadable). */
export interface SkippedPart {
  category: CategoryName;
  /** The tool that was missing or failed, when one was. */
  tool?: string | undefined;
  reason: string;
}

export type CapturePlatform = 'linux' | 'windows';

export interface SystemCapture {
  format: typeof CAPTURE_FORMAT;
  version: typeof CAPTURE_VERSION;
  time: string;
  host: string;
  platform: CapturePlatform;
  /** /etc/os-release's PRETTY_NAME, or the platform's description. */
  os: string;
  user: { name: string; uid: number; home: string };
  /** Shell history was captured (off with --no-history). */
  history: boolean;
  categories: Partial<Record<CategoryName, CaptureCategory>>;
  skipped: SkippedPart[];
}

/** The category's items and files, empty when the capture has none. */
export function categoryOf(capture: SystemCapture, name: CategoryName): CaptureCategory {
  return capture.categories[name] ?? { items: [], files: [] };
}

/** Reads a capture document (from a snapshot or a --output file); throws on anything else. */
export function parseCapture(text: string, where: string): SystemCapture {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw new Error(`${where} is not JSON: ${(error as Error).message}`);
  }
  const bad = (what: string): never => {
    throw new Error(`${where} is not a bh system capture: ${what}`);
  };
  if (!isObject(doc) || doc['format'] !== CAPTURE_FORMAT) return bad('no "format": "bh-system-capture"');
  if (doc['version'] !== CAPTURE_VERSION) return bad(`version ${String(doc['version'])} (this bh reads version ${CAPTURE_VERSION})`);
  for (const key of ['time', 'host', 'platform', 'os'] as const) if (typeof doc[key] !== 'string') bad(`"${key}" is not a string`);
  if (doc['platform'] !== 'linux' && doc['platform'] !== 'windows') bad(`unknown platform ${String(doc['platform'])}`);
  const user = doc['user'];
  if (!isObject(user) || typeof user['name'] !== 'string' || typeof user['uid'] !== 'number' || typeof user['home'] !== 'string') bad('"user" needs name, uid and home');
  if (typeof doc['history'] !== 'boolean' || !Array.isArray(doc['skipped']) || !isObject(doc['categories'])) bad('"history", "skipped" or "categories" is missing');
  const categories = doc['categories'] as Record<string, unknown>;
  for (const [name, category] of Object.entries(categories)) {
    if (!(CATEGORIES as readonly string[]).includes(name)) bad(`unknown category ${JSON.stringify(name)}`);
    if (!isObject(category) || !Array.isArray(category['items']) || !Array.isArray(category['files'])) bad(`category ${name} needs items and files`);
    for (const item of (category as { items: unknown[] }).items) {
      if (!isObject(item) || typeof item['name'] !== 'string') bad(`an item of ${name} has no name`);
      const detail = (item as { detail?: unknown }).detail;
      if (detail !== undefined && (!isObject(detail) || Object.values(detail).some((v) => typeof v !== 'string'))) bad(`an item of ${name} has details that are not strings`);
    }
    for (const file of (category as { files: unknown[] }).files) {
      if (!isObject(file) || !['home', 'system', 'output'].includes(file['origin'] as string) || typeof file['path'] !== 'string' || typeof file['stored'] !== 'string' || typeof file['mode'] !== 'number' || typeof file['sha256'] !== 'string' || typeof file['size'] !== 'number') {
        bad(`a file of ${name} lacks origin, path, mode, size, sha256 or stored`);
      }
    }
  }
  return doc as unknown as SystemCapture;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
