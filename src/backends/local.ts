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
 * An exclusive write (config) hard-links the temporary file to the final name instead, which
 * fails when that name exists, then removes the temporary name; on filesystems without hard
 * links (FAT, exFAT) it creates the final name with O_EXCL and writes it in place.
 * A write killed before its rename leaves its `.tmp-…` file: `temporaries` lists and removes them.
 */

import { constants as fsConstants, type Stats } from 'node:fs';
import { link, lstat, mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';

import {
  AlreadyExistsError,
  NotFoundError,
  NotRegularFileError,
  ShortReadError,
  TooLargeError,
  describeRef,
  isWholeFile,
  type Backend,
  type ByteRange,
  type ReadExtent,
  type WholeFile,
  type FileInfo,
  type FileRef,
  type FileType,
  type TemporaryFile,
  type TemporaryFiles,
  type WriteOptions,
} from './backend.js';
import {
  DATA_SUBFOLDERS,
  FOLDERS,
  TEMPORARY_FOLDERS,
  checkRange,
  checkedFolder,
  checkedName,
  checkedTemporarySegments,
  folderSegments,
  isListedName,
  isTemporaryName,
  listConfig,
  mapLimit,
  tempName,
  temporaryPath,
} from './layout.js';

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
/** How many data subfolders `list('data')` reads at once. */
const LIST_CONCURRENCY = 16;
/** How many files of one folder `list` stats at once. */
const STAT_CONCURRENCY = 8;
/** link() errors of filesystems that have no hard links (vfat and exFAT say EPERM). */
const NO_HARD_LINKS: ReadonlySet<string> = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

function errno(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
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
    return path.join(this.folderOf(ref), checkedName(ref));
  }

  /** The folder holding `ref` (the repository root for config). Validates the name. */
  private folderOf(ref: FileRef): string {
    return path.join(this.location, ...folderSegments(ref));
  }

  async create(): Promise<void> {
    // Recursive mkdir fails (EEXIST) when a regular file sits where a folder belongs.
    const mkdirp = (dir: string) => mkdir(dir, { recursive: true, mode: DIR_MODE });
    await mkdirp(this.location);
    for (const folder of Object.values(FOLDERS)) await mkdirp(path.join(this.location, folder));
    const dataDir = path.join(this.location, FOLDERS.data);
    await mapLimit(DATA_SUBFOLDERS, LIST_CONCURRENCY, (sub) => mkdirp(path.join(dataDir, sub)));
  }

  async write(ref: FileRef, data: Buffer | readonly Buffer[], options: WriteOptions = {}): Promise<void> {
    const dir = this.folderOf(ref);
    const finalPath = path.join(dir, ref.name);
    const tempPath = path.join(dir, tempName());
    const parts = Array.isArray(data) ? data : [data as Buffer];

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

    // The temporary name is gone once renamed; a link leaves it to remove.
    let renamed = false;
    try {
      await this.writeAndSync(fh, ref, parts);
      if (options.exclusive) await this.linkExclusive(ref, tempPath, finalPath, parts);
      else {
        await rename(tempPath, finalPath);
        renamed = true;
      }
    } finally {
      if (!renamed) await unlink(tempPath).catch(() => undefined);
    }
    await syncDir(dir);
  }

  /** Writes `parts` to `fh` from offset 0, fsyncs and closes it. */
  private async writeAndSync(fh: FileHandle, ref: FileRef, parts: readonly Buffer[]): Promise<void> {
    try {
      await writeAll(fh, parts, () => `${this.location}: writing ${describeRef(ref)} made no progress`);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** Gives the complete temporary file its final name unless that name exists (then AlreadyExistsError). */
  private async linkExclusive(ref: FileRef, tempPath: string, finalPath: string, parts: readonly Buffer[]): Promise<void> {
    try {
      await link(tempPath, finalPath);
      return;
    } catch (err) {
      if (errno(err) === 'EEXIST') throw new AlreadyExistsError(this.location, ref);
      if (!NO_HARD_LINKS.has(errno(err) ?? '')) throw err;
    }
    // No hard links here: O_EXCL decides the race; the file is written in place, so a reader
    // (or a crash) in the moment between may find it short.
    let fh: FileHandle;
    try {
      fh = await open(finalPath, 'wx', FILE_MODE);
    } catch (err) {
      if (errno(err) === 'EEXIST') throw new AlreadyExistsError(this.location, ref);
      throw err;
    }
    try {
      await this.writeAndSync(fh, ref, parts);
    } catch (err) {
      // The name is ours (O_EXCL): a short file under it must not pass for a repository's.
      await unlink(finalPath).catch(() => undefined);
      throw err;
    }
  }

  async read(ref: FileRef, extent: ReadExtent): Promise<Buffer> {
    const file = this.pathOf(ref);
    if (!isWholeFile(extent)) checkRange(ref, extent);
    const fh = await this.openForRead(ref, file);
    try {
      const range = isWholeFile(extent) ? await this.wholeRange(fh, ref, extent) : extent;
      // Not zero-filled: every byte is read into, or the read fails with ShortReadError.
      const buf = Buffer.allocUnsafe(range.length);
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

  /**
   * The range of a whole read: the file's size, within its bound. Only whole reads need the
   * stat: a ranged read bounds itself, and of a non-regular file it ends at once (O_NONBLOCK).
   */
  private async wholeRange(fh: FileHandle, ref: FileRef, extent: WholeFile): Promise<ByteRange> {
    const st = await fh.stat();
    if (!st.isFile()) throw new NotRegularFileError(this.location, ref, describeKind(st));
    if (st.size > extent.atMost) throw new TooLargeError(this.location, ref, st.size, extent.atMost);
    return { offset: 0, length: st.size };
  }

  private async openForRead(ref: FileRef, file: string): Promise<FileHandle> {
    try {
      // O_NONBLOCK: a FIFO planted under a repository name must not block the open (read() then refuses it).
      return await open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    } catch (err) {
      if (errno(err) === 'ENOENT') throw new NotFoundError(this.location, ref);
      throw err;
    }
  }

  /** Backend.localPath: the file's path, after validating its name. */
  localPath(ref: FileRef): string {
    return this.pathOf(ref);
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
    if (type === 'config') return listConfig(this);
    const folder = path.join(this.location, checkedFolder(type));
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
    const valid = names.filter((n) => isListedName(n, prefix));
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

  readonly temporaries: TemporaryFiles = {
    list: () => this.listTemporaries(),
    remove: (file) => this.removeTemporary(file),
  };

  private async listTemporaries(): Promise<TemporaryFile[]> {
    const perFolder = await mapLimit(TEMPORARY_FOLDERS, LIST_CONCURRENCY, async (folder): Promise<TemporaryFile[]> => {
      let names: string[];
      try {
        names = await readdir(path.join(this.location, folder));
      } catch (err) {
        if (errno(err) === 'ENOENT') return [];
        throw err;
      }
      const found: TemporaryFile[] = [];
      for (const name of names.filter(isTemporaryName)) {
        const file = temporaryPath(folder, name);
        try {
          const st = await lstat(path.join(this.location, file));
          if (st.isFile()) found.push({ path: file, size: st.size, mtimeMs: st.mtimeMs });
        } catch (err) {
          // Renamed or removed since readdir: a write that finished.
          if (errno(err) !== 'ENOENT') throw err;
        }
      }
      return found;
    });
    return perFolder.flat();
  }

  private async removeTemporary(file: TemporaryFile): Promise<void> {
    const segments = checkedTemporarySegments(file.path);
    try {
      await unlink(path.join(this.location, ...segments));
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw err;
    }
  }

  async close(): Promise<void> {
    // Nothing to release.
  }
}

/**
 * The backend of the directory `dir`, for a folder in the repository layout that is not a
 * repository location (the local cache, src/repo/cache.ts): the layers above see only Backend.
 */
export function openLocalDirectory(dir: string): Backend {
  return new LocalBackend(dir);
}

/** Buffers handed to one writev: a pack has one part per blob, and a system call per blob costs more than the copy. */
const WRITEV_PARTS = 1024;

/** Writes `parts` one after another from offset 0, with as few system calls as the kernel allows. */
async function writeAll(fh: FileHandle, parts: readonly Buffer[], noProgress: () => string): Promise<void> {
  let position = 0;
  for (let first = 0; first < parts.length; first += WRITEV_PARTS) {
    const group = parts.slice(first, first + WRITEV_PARTS);
    const { bytesWritten } = await fh.writev(group, position);
    position += bytesWritten;
    // After a short write (full disk, signal), the rest of the group goes piece by piece.
    let written = bytesWritten;
    for (const part of group) {
      if (written >= part.length) {
        written -= part.length;
        continue;
      }
      for (let done = written; done < part.length; ) {
        const { bytesWritten: n } = await fh.write(part, done, part.length - done, position);
        if (n <= 0) throw new Error(noProgress());
        done += n;
        position += n;
      }
      written = 0;
    }
  }
}

/** What a non-regular file is, for messages. */
function describeKind(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}
