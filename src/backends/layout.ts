/**
 * The repository layout every backend stores (docs/FORMAT.md §1), as relative paths:
 *
 *   config
 *   keys/<name>
 *   data/<first two hex digits of name>/<name>   (256 subfolders 00..ff)
 *   index/<name>
 *   snapshots/<name>
 *   locks/<name>
 *
 * Every name but "config" is 64 lowercase hex digits; anything else is refused before it is
 * turned into a path, so a crafted name cannot escape the repository. Temporary files of an
 * atomic write live beside their final name as `.tmp-<random hex>`; `list` never shows them,
 * the backends' `temporaries` do (for check and prune).
 */
import { randomBytes } from 'node:crypto';
import { NotFoundError, describeRef, type Backend, type ByteRange, type FileInfo, type FileRef, type FileType } from './backend.js';

export const NAME_RE = /^[0-9a-f]{64}$/;
export const TEMP_PREFIX = '.tmp-';

export const FOLDERS: Record<Exclude<FileType, 'config'>, string> = {
  keys: 'keys',
  data: 'data',
  index: 'index',
  snapshots: 'snapshots',
  locks: 'locks',
};

/** The 256 data subfolder names "00".."ff". */
export const DATA_SUBFOLDERS: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** The name of `ref`, after checking that it is a valid name for its type. */
export function checkedName(ref: FileRef): string {
  const { type, name } = ref;
  if (type === 'config') {
    if (name !== 'config') throw new Error(`invalid config file name ${JSON.stringify(name)}: must be "config"`);
    return name;
  }
  checkedFolder(type);
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new Error(`invalid ${type} file name ${JSON.stringify(name)}: must be 64 lowercase hex digits`);
  }
  return name;
}

/** The folder of a file type (not config), after checking the type. */
export function checkedFolder(type: Exclude<FileType, 'config'>): string {
  if (!Object.prototype.hasOwnProperty.call(FOLDERS, type)) throw new Error(`invalid file type ${JSON.stringify(type)}`);
  return FOLDERS[type];
}

/** Folder segments holding `ref`, relative to the repository root ([] for config). Validates the name. */
export function folderSegments(ref: FileRef): string[] {
  const name = checkedName(ref);
  if (ref.type === 'config') return [];
  if (ref.type === 'data') return [FOLDERS.data, name.slice(0, 2)];
  return [FOLDERS[ref.type]];
}

/** Throws a RangeError unless `range` is a non-negative whole offset and length. */
export function checkRange(ref: FileRef, range: ByteRange): void {
  const { offset, length } = range;
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`invalid byte range offset=${offset} length=${length} for ${describeRef(ref)}`);
  }
}

/** A fresh temporary file name for an atomic write. */
export function tempName(): string {
  return TEMP_PREFIX + randomBytes(12).toString('hex');
}

const TEMP_RE = /^\.tmp-[0-9a-f]+$/;

/** Whether a directory entry is a temporary file of an atomic write. */
export function isTemporaryName(name: string): boolean {
  return TEMP_RE.test(name);
}

/** The folders writes put temporary files in, relative to the root ('' is the root, config's). */
export const TEMPORARY_FOLDERS: readonly string[] = [
  '',
  FOLDERS.keys,
  FOLDERS.index,
  FOLDERS.snapshots,
  FOLDERS.locks,
  ...DATA_SUBFOLDERS.map((sub) => `${FOLDERS.data}/${sub}`),
];
const TEMPORARY_FOLDER_SET: ReadonlySet<string> = new Set(TEMPORARY_FOLDERS);

/** The relative path of temporary file `name` in `folder` (one of TEMPORARY_FOLDERS). */
export function temporaryPath(folder: string, name: string): string {
  return folder === '' ? name : `${folder}/${name}`;
}

/**
 * The path segments of a temporary file's relative path, after checking that it names a
 * temporary file in one of TEMPORARY_FOLDERS: nothing else can be removed through it.
 */
export function checkedTemporarySegments(path: string): string[] {
  const slash = path.lastIndexOf('/');
  const folder = slash < 0 ? '' : path.slice(0, slash);
  const name = path.slice(slash + 1);
  if (!TEMPORARY_FOLDER_SET.has(folder) || !isTemporaryName(name)) throw new Error(`invalid temporary file path ${JSON.stringify(path)}`);
  return [...(folder === '' ? [] : folder.split('/')), name];
}

/**
 * Whether a directory entry is a stored file: a valid name and, in a data subfolder (`prefix`),
 * one that starts with it (a misplaced file could never be read back from there).
 */
export function isListedName(name: string, prefix?: string): boolean {
  return NAME_RE.test(name) && (prefix === undefined || name.startsWith(prefix));
}

/** `list('config')` of a backend: the config file, or nothing when there is none. */
export async function listConfig(backend: Pick<Backend, 'stat'>): Promise<FileInfo[]> {
  try {
    return [await backend.stat({ type: 'config', name: 'config' })];
  } catch (err) {
    if (err instanceof NotFoundError) return [];
    throw err;
  }
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
