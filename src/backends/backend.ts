/**
 * The storage interface every repository location implements (local directory, SFTP, S3).
 *
 * A backend knows nothing of encryption or formats: it stores named, immutable byte files in a
 * handful of folders. Files are written once under their final name and never modified
 * (docs/FORMAT.md, "Invariants"), so `write` may assume the name is new or its content equal;
 * the one file not named by its content, `config`, is written with `{ exclusive: true }`.
 */

/** The folders of a repository. `config` is a single file named "config" at the top. */
export type FileType = 'config' | 'keys' | 'data' | 'index' | 'snapshots' | 'locks';

export const FILE_TYPES: readonly FileType[] = ['config', 'keys', 'data', 'index', 'snapshots', 'locks'];

export interface FileRef {
  type: FileType;
  /** File name: 64 lowercase hex digits for everything but `config` (whose name is "config"). */
  name: string;
}

export interface FileInfo {
  name: string;
  size: number;
}

export interface ByteRange {
  offset: number;
  length: number;
}

/**
 * A whole-file read, bounded: a file of more than `atMost` bytes is refused before it is read
 * (TooLargeError), so a planted or padded file cannot take the memory its size claims.
 */
export interface WholeFile {
  atMost: number;
}

/** What read() reads: one range of the file, or all of it within a bound. */
export type ReadExtent = ByteRange | WholeFile;

export function isWholeFile(extent: ReadExtent): extent is WholeFile {
  return 'atMost' in extent;
}

export interface WriteOptions {
  /**
   * Store the file only if none of that name exists, else throw AlreadyExistsError and leave
   * the existing one untouched; of writers racing for one name, exactly one succeeds. Still
   * atomic and durable. For `config`, the one file whose name does not follow from its content.
   */
  exclusive?: boolean;
}

/**
 * A file an atomic write left under its temporary name (`.tmp-<hex>` beside the final name,
 * docs/FORMAT.md §1.1) when the process died before the rename.
 */
export interface TemporaryFile {
  /** Relative to the repository root: `data/4e/.tmp-…`, `index/.tmp-…`, `.tmp-…` (config's). */
  path: string;
  size: number;
  /** Last modification by the storage's clock, in ms since the epoch: a write in progress keeps it fresh. */
  mtimeMs: number;
}

/** The temporary files of a backend whose writes go through a temporary name. */
export interface TemporaryFiles {
  /** Every temporary file in the repository's folders, of writes in progress or interrupted. */
  list(): Promise<TemporaryFile[]>;
  /** Removes one listed file; one already gone is not an error. */
  remove(file: TemporaryFile): Promise<void>;
}

export interface Backend {
  /** Where this backend points, for messages ("/srv/repo", "sftp:host:/path"). Never holds secrets. */
  readonly location: string;
  /** Every file of one type. Order is unspecified. */
  list(type: FileType): Promise<FileInfo[]>;
  /** Size of one file; throws NotFoundError when it does not exist. */
  stat(ref: FileRef): Promise<FileInfo>;
  /**
   * `range` of the file, or the whole file when it holds at most `atMost` bytes; throws
   * NotFoundError, ShortReadError when the file ends early, TooLargeError, and
   * NotRegularFileError where a backend can hold something else (a FIFO would block the read, a
   * device never end). Once `signal` aborts, the caller no longer wants the bytes: a backend may then stop
   * waiting and reject with the signal's reason (the throttle decorator does), or ignore it.
   */
  read(ref: FileRef, extent: ReadExtent, signal?: AbortSignal): Promise<Buffer>;
  /**
   * Stores `data` (one buffer, or parts to concatenate) under `ref` atomically: readers see
   * either no file or all of it, and it is durable on return. Parts spare a pack its 16 MiB copy.
   */
  write(ref: FileRef, data: Buffer | readonly Buffer[], options?: WriteOptions): Promise<void>;
  /** Removes one file; removing a file that does not exist is not an error. */
  remove(ref: FileRef): Promise<void>;
  /** Creates the folder skeleton of a new repository (idempotent). */
  create(): Promise<void>;
  /**
   * Leftovers of interrupted writes, on backends that write through a temporary name (local,
   * SFTP): `check` lists them, `prune` removes the stale ones. Absent where a write leaves no
   * file behind (S3: a PUT is atomic, and the backend aborts its own stale multipart uploads).
   */
  readonly temporaries?: TemporaryFiles;
  /**
   * Fast ranged reads of packs, where a backend keeps its files on this machine (local): the
   * path of `ref`, for threads that cannot share this object (restore's worker threads open it,
   * keep it open and read with positional reads into buffers of their own). A reader of the path
   * reports a missing or short file in the words of NotFoundError and ShortReadError, as read()
   * does. Offered only where reading the path is exactly what read() does: a decorator that
   * meters or changes reads must not pass it on (the throttle with a download limit does not);
   * one that only retries may (a local file has no transient errors).
   */
  localPath?(ref: FileRef): string;
  close(): Promise<void>;
}

export class NotFoundError extends Error {
  constructor(readonly location: string, readonly ref: FileRef) {
    super(`${location}: ${describeRef(ref)} does not exist`);
    this.name = 'NotFoundError';
  }
}

/** An exclusive write found a file of that name already there (WriteOptions.exclusive). */
export class AlreadyExistsError extends Error {
  constructor(readonly location: string, readonly ref: FileRef) {
    super(`${location}: ${describeRef(ref)} already exists; refusing to overwrite it`);
    this.name = 'AlreadyExistsError';
  }
}

export class TooLargeError extends Error {
  constructor(location: string, ref: FileRef, size: number, atMost: number) {
    super(`${location}: ${describeRef(ref)} is ${size} bytes, more than the ${atMost} it can be; refused unread (a damaged or planted file: run 'bh check')`);
    this.name = 'TooLargeError';
  }
}

export class NotRegularFileError extends Error {
  constructor(location: string, ref: FileRef, what: string) {
    super(`${location}: ${describeRef(ref)} is ${what}, not a regular file; refused (a planted file: remove it)`);
    this.name = 'NotRegularFileError';
  }
}

export class ShortReadError extends Error {
  constructor(location: string, ref: FileRef, wanted: number, got: number) {
    super(`${location}: ${describeRef(ref)} is shorter than expected (wanted ${wanted} bytes, got ${got})`);
    this.name = 'ShortReadError';
  }
}

export function describeRef(ref: FileRef): string {
  return ref.type === 'config' ? 'config' : `${ref.type}/${ref.name}`;
}
