/**
 * The old tool's manifests, `backup_manifest_YYYYMMDD_HHMMSS.json` (shared/seed/legacy-formats.md
 * §2): written from a snapshot (`bh manifest`, `bh export`), read when importing an old backup
 * folder (`bh import-legacy`).
 *
 * The old tool wrote them with Python's json.dump(indent=2), ASCII-escaped, and names that are
 * not UTF-8 as lone surrogates U+DC80–U+DCFF (Python's surrogateescape): paths here are strings
 * in that convention, converted from and to name bytes by pathFromBytes / pathToBytes.
 */
import type { Snapshot } from '../snapshot/snapshot.js';
import { type TreeReader, walkTree } from '../snapshot/walk.js';

export type ManifestMode = 'full' | 'incremental' | 'differential';

export interface ManifestCopied {
  /** The source path (absolute for the old tool's usual setups). */
  path: string;
  size: number;
  /** Lowercase hex SHA-256 of the plaintext; absent for symlinks (and where bh has none recorded). */
  checksum?: string;
}

export interface LegacyManifest {
  timestamp: string;
  mode: ManifestMode;
  duration_seconds: number;
  files_copied: number;
  files_skipped: number;
  files_failed: number;
  total_bytes: number;
  copied: ManifestCopied[];
  skipped: { path: string }[];
  failed: { path: string; reason: string }[];
}

const MANIFEST_NAME = /^backup_manifest_(\d{8}_\d{6})\.json$/;
const STAMP = /^(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})$/;

/** Whether `name` is a manifest's file name; its stamp if so. */
export function manifestStampOf(name: string): string | undefined {
  return MANIFEST_NAME.exec(name)?.[1];
}

export function manifestFileName(stamp: string): string {
  return `backup_manifest_${stamp}.json`;
}

/** `YYYYMMDD_HHMMSS` in local time, as the old tool named its runs. */
export function stampOf(date: Date): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${date.getFullYear()}${two(date.getMonth() + 1)}${two(date.getDate())}_${two(date.getHours())}${two(date.getMinutes())}${two(date.getSeconds())}`;
}

/** The local time a `YYYYMMDD_HHMMSS` stamp names; undefined when it is not one. */
export function dateOfStamp(stamp: string): Date | undefined {
  const m = STAMP.exec(stamp);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const date = new Date(year, month - 1, day, hour, minute, second);
  return date.getMonth() === month - 1 && date.getDate() === day ? date : undefined;
}

/** Name bytes as a path string the old tool would have written: UTF-8, and each byte of an invalid sequence as U+DC80+byte. */
export function pathFromBytes(bytes: Buffer): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const length = utf8SequenceLength(bytes, i);
    if (length > 0) {
      out += bytes.toString('utf8', i, i + length);
      i += length;
    } else {
      out += String.fromCharCode(0xdc00 + bytes[i]!);
      i++;
    }
  }
  return out;
}

/** The inverse of pathFromBytes: lone surrogates U+DC80–U+DCFF become their byte again. */
export function pathToBytes(path: string): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < path.length; i++) {
    const unit = path.charCodeAt(i);
    const lone = unit >= 0xdc80 && unit <= 0xdcff && !(i > 0 && isHighSurrogate(path.charCodeAt(i - 1)));
    if (!lone) continue;
    parts.push(Buffer.from(path.slice(start, i), 'utf8'), Buffer.of(unit - 0xdc00));
    start = i + 1;
  }
  parts.push(Buffer.from(path.slice(start), 'utf8'));
  return Buffer.concat(parts);
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

/** Length of the well-formed UTF-8 sequence at `i`, or 0 when the byte there starts none. */
function utf8SequenceLength(bytes: Buffer, i: number): number {
  const b0 = bytes[i]!;
  if (b0 < 0x80) return 1;
  const cont = (k: number, low = 0x80, high = 0xbf): boolean => i + k < bytes.length && bytes[i + k]! >= low && bytes[i + k]! <= high;
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((b0 >= 0xe1 && b0 <= 0xec) || b0 === 0xee || b0 === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b0 === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (b0 === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** The manifest text as the old tool wrote it: 2-space indent, every non-ASCII character escaped. */
export function formatManifest(manifest: LegacyManifest): string {
  const text = JSON.stringify(manifest, null, 2);
  return text.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * The manifest of a snapshot, as if one full run of the old tool had copied every regular file
 * in it: `copied` lists them all (path, size, SHA-256 where the snapshot recorded one), in the
 * snapshot's path order; `skipped` and `failed` are empty. The old tool's verify reads only the
 * newest manifest's `copied` list, so a complete list is what lets it check a whole export.
 */
export async function snapshotManifest(trees: TreeReader, snapshot: Snapshot): Promise<LegacyManifest> {
  const copied: ManifestCopied[] = [];
  for await (const entry of walkTree(trees, Buffer.from(snapshot.record.tree, 'hex'))) {
    if (entry.node.type !== 'file') continue;
    const item: ManifestCopied = { path: pathFromBytes(entry.pathBytes), size: entry.node.size };
    if (entry.node.sha256) item.checksum = entry.node.sha256.toString('hex');
    copied.push(item);
  }
  return manifestOfSnapshot(snapshot, copied);
}

/** The manifest of one run of the old tool that copied `copied`, with the snapshot's time, mode and duration. */
export function manifestOfSnapshot(snapshot: Snapshot, copied: ManifestCopied[]): LegacyManifest {
  const summary = snapshot.record.summary;
  const duration = summary ? (Date.parse(summary.backup_end) - Date.parse(summary.backup_start)) / 1000 : 0;
  return {
    timestamp: stampOf(new Date(snapshot.record.time)),
    mode: snapshot.record.mode,
    duration_seconds: Math.round(Math.max(0, duration) * 100) / 100,
    files_copied: copied.length,
    files_skipped: 0,
    files_failed: 0,
    total_bytes: copied.reduce((n, c) => n + c.size, 0),
    copied,
    skipped: [],
    failed: [],
  };
}

export class ManifestFormatError extends Error {
  constructor(where: string, why: string) {
    super(`${where}: not a Backup Handler manifest: ${why}`);
    this.name = 'ManifestFormatError';
  }
}

/** Reads a manifest's text, checking every field import relies on. */
export function parseManifest(text: string, where: string): LegacyManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw new ManifestFormatError(where, `invalid JSON (${(error as Error).message})`);
  }
  const fail = (why: string): never => {
    throw new ManifestFormatError(where, why);
  };
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return fail('not a JSON object');
  const m = doc as Record<string, unknown>;
  if (typeof m['timestamp'] !== 'string' || !dateOfStamp(m['timestamp'])) fail("'timestamp' is not YYYYMMDD_HHMMSS");
  const mode = m['mode'] ?? 'full';
  if (mode !== 'full' && mode !== 'incremental' && mode !== 'differential') fail(`unknown mode ${JSON.stringify(mode)}`);
  const list = (key: string): Record<string, unknown>[] => {
    const value = m[key] ?? [];
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'object' && v !== null && typeof (v as Record<string, unknown>)['path'] === 'string')) fail(`'${key}' is not a list of entries with a path`);
    return value as Record<string, unknown>[];
  };
  const copied = list('copied').map((entry): ManifestCopied => {
    const size = entry['size'];
    const checksum = entry['checksum'];
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) fail(`'copied' entry ${JSON.stringify(entry['path'])} has no valid size`);
    if (checksum !== undefined && checksum !== null && (typeof checksum !== 'string' || !/^[0-9a-fA-F]{64}$/.test(checksum))) fail(`'copied' entry ${JSON.stringify(entry['path'])} has a malformed checksum`);
    const item: ManifestCopied = { path: entry['path'] as string, size: size as number };
    if (typeof checksum === 'string') item.checksum = checksum.toLowerCase();
    return item;
  });
  const skipped = list('skipped').map((entry) => ({ path: entry['path'] as string }));
  const failed = list('failed').map((entry) => ({ path: entry['path'] as string, reason: String(entry['reason'] ?? '') }));
  const number = (key: string, otherwise: number): number => (typeof m[key] === 'number' ? (m[key] as number) : otherwise);
  return {
    timestamp: m['timestamp'] as string,
    mode: mode as ManifestMode,
    duration_seconds: number('duration_seconds', 0),
    files_copied: number('files_copied', copied.length),
    files_skipped: number('files_skipped', skipped.length),
    files_failed: number('files_failed', failed.length),
    total_bytes: number('total_bytes', copied.reduce((n, c) => n + c.size, 0)),
    copied,
    skipped,
    failed,
  };
}
