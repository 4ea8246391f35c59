/**
 * A repository in a local directory.
 *
 * Layout (the repository format; keep exactly):
 *
 *   <dir>/config
 *   <dir>/keys/<name>
 *   <dir>/data/<first two hex digits of name>/<name>   (256 subfolders 00..ff)
 *   <dir>/index/<name>
 *   <dir>/snapshots/<name>
 *   <dir>/locks/<name>
 *
 * Every name but "config" is 64 lowercase hex digits; anything else is refused before it is
 * turned into a path, so a crafted name cannot escape the repository. Folders are created 0700 and
 * files 0600: repository contents are private. Writes go to a temporary file in the same folder
 * (`.tmp-<random hex>`), are fsynced, renamed onto the final name, and the folder is fsynced, so a
 * reader sees either no file or all of it and the file survives a crash once `write` returns.
 */

import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';

import {
  NotFoundError,
  ShortReadError,
  describeRef,
  type Backend,
  type ByteRange,
  type FileInfo,
  type FileRef,
  type FileType,
} from './backend.js';

const NAME_RE = /^[0-9a-f]{64}$/;
const TEMP_PREFIX = '.tmp-';
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
/** How many data subfolders `list('data')` reads at once. */
const LIST_CONCURRENCY = 16;
/** How many files of one folder `list` stats at once. */
const STAT_CONCURRENCY = 8;

const FOLDERS: Record<Exclude<FileType, 'config'>, string> = {
  keys: 'keys',
  data: 'data',
  index: 'index',
  snapshots: 'snapshots',
  locks: 'locks',
};

/** The 256 data subfolder names "00".."ff". */
const DATA_SUBFOLDERS: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function errno(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
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

/** Creates one folder (mode 0700) whose parent exists; an existing one is left alone. */
async function mkdirIfMissing(dir: string): Promise<void> {
  try {
    await mkdir(dir, { mode: DIR_MODE });
  } catch (err) {
    if (errno(err) !== 'EEXIST') throw err;
  }
}

/** fsyncs a directory so a rename or unlink in it is durable. */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(dir, 'r');
  } catch (err) {
    // Platforms that cannot open a directory (Windows) cannot fsync it either.
    if (errno(err) === 'EISDIR' || errno(err) === 'EPERM') return;
    throw err;
  }
  try {
    await fh.sync();
  } catch (err) {
    // Some filesystems do not support fsync on directories; nothing more can be done there.
    if (errno(err) !== 'EINVAL' && errno(err) !== 'ENOTSUP' && errno(err) !== 'EBADF') throw err;
  } finally {
    await fh.close();
  }
}

export class LocalBackend implements Backend {
  readonly location: string;

  constructor(dir: string) {
    this.location = path.resolve(dir);
  }

  /** Absolute path of the file `ref` names, after validating the name. */
  private pathOf(ref: FileRef): string {
    return path.join(this.folderOf(ref), this.checkedName(ref));
  }

  /** The folder holding `ref` (the repository root for config). Validates the name. */
  private folderOf(ref: FileRef): string {
    const name = this.checkedName(ref);
    if (ref.type === 'config') return this.location;
    if (ref.type === 'data') return path.join(this.location, FOLDERS.data, name.slice(0, 2));
    return path.join(this.location, FOLDERS[ref.type]);
  }

  private checkedName(ref: FileRef): string {
    const { type, name } = ref;
    if (type === 'config') {
      if (name !== 'config') throw new Error(`invalid config file name ${JSON.stringify(name)}: must be "config"`);
      return name;
    }
    if (!Object.prototype.hasOwnProperty.call(FOLDERS, type)) {
      throw new Error(`invalid file type ${JSON.stringify(type)}`);
    }
    if (typeof name !== 'string' || !NAME_RE.test(name)) {
      throw new Error(`invalid ${type} file name ${JSON.stringify(name)}: must be 64 lowercase hex digits`);
    }
    return name;
  }

  async create(): Promise<void> {
    // Recursive mkdir fails (EEXIST) when a regular file sits where a folder belongs.
    const mkdirp = (dir: string) => mkdir(dir, { recursive: true, mode: DIR_MODE });
    await mkdirp(this.location);
    for (const folder of Object.values(FOLDERS)) await mkdirp(path.join(this.location, folder));
    const dataDir = path.join(this.location, FOLDERS.data);
    await mapLimit(DATA_SUBFOLDERS, LIST_CONCURRENCY, (sub) => mkdirp(path.join(dataDir, sub)));
  }

  async write(ref: FileRef, data: Buffer | readonly Buffer[]): Promise<void> {
    const dir = this.folderOf(ref);
    const finalPath = path.join(dir, ref.name);
    const tempPath = path.join(dir, TEMP_PREFIX + randomBytes(12).toString('hex'));

    let fh: FileHandle;
    try {
      fh = await open(tempPath, 'wx', FILE_MODE);
    } catch (err) {
      // A data subfolder may be missing (say, a repository copied without empty folders):
      // recreate just that one folder, never the repository itself.
      if (errno(err) !== 'ENOENT' || ref.type !== 'data') throw err;
      await mkdirIfMissing(dir);
      fh = await open(tempPath, 'wx', FILE_MODE);
    }

    let renamed = false;
    try {
      try {
        let position = 0;
        for (const part of Array.isArray(data) ? data : [data]) {
          for (let done = 0; done < part.length; ) {
            const { bytesWritten } = await fh.write(part, done, part.length - done, position);
            if (bytesWritten <= 0) throw new Error(`${this.location}: writing ${describeRef(ref)} made no progress`);
            done += bytesWritten;
            position += bytesWritten;
          }
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tempPath, finalPath);
      renamed = true;
    } catch (err) {
      if (!renamed) await unlink(tempPath).catch(() => undefined);
      throw err;
    }
    await syncDir(dir);
  }

  async read(ref: FileRef, range?: ByteRange): Promise<Buffer> {
    const file = this.pathOf(ref);
    if (range !== undefined) {
      const { offset, length } = range;
      if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
        throw new RangeError(`invalid byte range offset=${offset} length=${length} for ${describeRef(ref)}`);
      }
    }
    const fh = await this.openForRead(ref, file);
    try {
      if (range === undefined) return await fh.readFile();
      const buf = Buffer.alloc(range.length);
      let got = 0;
      while (got < range.length) {
        const { bytesRead } = await fh.read(buf, got, range.length - got, range.offset + got);
        if (bytesRead === 0) throw new ShortReadError(this.location, ref, range.length, got);
        got += bytesRead;
      }
      return buf;
    } finally {
      await fh.close();
    }
  }

  private async openForRead(ref: FileRef, file: string): Promise<FileHandle> {
    try {
      return await open(file, 'r');
    } catch (err) {
      if (errno(err) === 'ENOENT') throw new NotFoundError(this.location, ref);
      throw err;
    }
  }

  async stat(ref: FileRef): Promise<FileInfo> {
    const file = this.pathOf(ref);
    try {
      const st = await stat(file);
      return { name: ref.name, size: st.size };
    } catch (err) {
      if (errno(err) === 'ENOENT') throw new NotFoundError(this.location, ref);
      throw err;
    }
  }

  async list(type: FileType): Promise<FileInfo[]> {
    if (type === 'config') {
      try {
        return [await this.stat({ type: 'config', name: 'config' })];
      } catch (err) {
        if (err instanceof NotFoundError) return [];
        throw err;
      }
    }
    if (!Object.prototype.hasOwnProperty.call(FOLDERS, type)) throw new Error(`invalid file type ${JSON.stringify(type)}`);
    const folder = path.join(this.location, FOLDERS[type]);
    if (type !== 'data') return this.listFolder(folder);
    const perSub = await mapLimit(DATA_SUBFOLDERS, LIST_CONCURRENCY, (sub) =>
      this.listFolder(path.join(folder, sub), sub),
    );
    return perSub.flat();
  }

  /**
   * The valid files of one folder; a missing folder has none. With `prefix` (data subfolders),
   * files whose name does not start with it are skipped: `read` would never find them there.
   */
  private async listFolder(folder: string, prefix?: string): Promise<FileInfo[]> {
    let names: string[];
    try {
      names = await readdir(folder);
    } catch (err) {
      if (errno(err) === 'ENOENT') return [];
      throw err;
    }
    const valid = names.filter((n) => NAME_RE.test(n) && (prefix === undefined || n.startsWith(prefix)));
    const infos = await mapLimit(valid, STAT_CONCURRENCY, async (name): Promise<FileInfo | undefined> => {
      try {
        const st = await stat(path.join(folder, name));
        return st.isFile() ? { name, size: st.size } : undefined;
      } catch (err) {
        // Removed between readdir and stat.
        if (errno(err) === 'ENOENT') return undefined;
        throw err;
      }
    });
    return infos.filter((i): i is FileInfo => i !== undefined);
  }

  async remove(ref: FileRef): Promise<void> {
    const dir = this.folderOf(ref);
    try {
      await unlink(path.join(dir, ref.name));
    } catch (err) {
      if (errno(err) === 'ENOENT') return;
      throw err;
    }
    await syncDir(dir);
  }

  async close(): Promise<void> {
    // Nothing to release.
  }
}
