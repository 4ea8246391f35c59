/**
 * The local cache (README.md "Local cache", docs/FORMAT.md §12): copies of the repository files
 * every command needs and a remote backend makes costly to fetch again: snapshots, index files
 * and tree packs, kept exactly as stored (still encrypted) under `<cache dir>/<repository id>/`
 * in the repository's own layout.
 *
 * Files there are named by the SHA-256 of their bytes, as in the repository, so every read is
 * checked against its name: a damaged or truncated copy is removed and fetched again, never
 * used, and a copy that passes is byte for byte the repository's file. That also makes sharing
 * safe: two repositories with the same id (a copied repository) can only ever share identical
 * files. Writes go through the local backend (temporary name, then rename; folders 0700, files
 * 0600). The cache is an accelerator only: any trouble with it is a warning, and the command
 * goes on against the repository.
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import type { Backend, FileInfo, FileType, WholeFile } from '../backends/backend.js';
import { folderSegments } from '../backends/layout.js';
import { openLocalDirectory } from '../backends/local.js';
import { sha256 } from './crypto.js';

/**
 * The repository folders the cache keeps copies of; of `data`, only the tree packs that
 * TreePacks and the writers hand it. Other types (config, keys, locks) pass it by.
 */
const CACHED_TYPES: ReadonlySet<FileType> = new Set<FileType>(['snapshots', 'index', 'data']);

/** The cache directory tag (https://bford.info/cachedir/): backup tools that honour it skip the cache. */
export const CACHEDIR_TAG = 'Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by bh.\n# For information about cache directory tags, see:\n#\thttps://bford.info/cachedir/\n';

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

export interface CacheOptions {
  /** The cache root: one folder per repository id below it. */
  dir: string;
  /** Told about cache trouble (a complete sentence, without a "warning:" prefix). */
  onWarning: (message: string) => void;
}

/**
 * The cache folder the environment names: BH_CACHE_DIR, else `$XDG_CACHE_HOME/bh`, else
 * `~/.cache/bh` (a relative XDG_CACHE_HOME is ignored, as the XDG spec says).
 */
export function cacheDirFromEnv(env: Readonly<Record<string, string | undefined>>): string {
  if (env['BH_CACHE_DIR']) return env['BH_CACHE_DIR'];
  const xdg = env['XDG_CACHE_HOME'];
  return join(xdg && isAbsolute(xdg) ? xdg : join(env['HOME'] || homedir(), '.cache'), 'bh');
}

export class RepositoryCache {
  /** False after a write failed: one warning per command, then no more attempts. */
  private writable = true;

  private constructor(
    private readonly store: Backend,
    private readonly onWarning: (message: string) => void,
  ) {}

  /** The folder of this repository's cache. */
  get dir(): string {
    return this.store.location;
  }

  /**
   * The cache of repository `repoId` below `options.dir`, its folders created (0700) and the
   * root tagged with CACHEDIR.TAG; undefined, after a warning, when that cannot be done.
   */
  static async open(options: CacheOptions, repoId: string): Promise<RepositoryCache | undefined> {
    const dir = join(options.dir, repoId);
    try {
      await mkdir(options.dir, { recursive: true, mode: DIR_MODE });
      await writeFile(join(options.dir, 'CACHEDIR.TAG'), CACHEDIR_TAG, { flag: 'wx', mode: FILE_MODE }).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
      for (const folder of [dir, ...[...CACHED_TYPES].map((type) => join(dir, type))]) {
        await mkdir(folder, { mode: DIR_MODE }).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'EEXIST') throw error;
        });
      }
    } catch (error) {
      options.onWarning(`cannot use the cache folder ${dir} (${(error as Error).message}); going on without a cache (--no-cache silences this)`);
      return undefined;
    }
    return new RepositoryCache(openLocalDirectory(dir), options.onWarning);
  }

  /** The stored bytes of `type/name`, checked against the name; undefined when not cached. A damaged copy is removed. */
  async read(type: FileType, name: string, extent: WholeFile): Promise<Buffer | undefined> {
    if (!CACHED_TYPES.has(type)) return undefined;
    let bytes: Buffer;
    try {
      bytes = await this.store.read({ type, name }, extent);
    } catch {
      // Not cached, or unreadable: either way the repository has it.
      return undefined;
    }
    if (sha256(bytes).toString('hex') === name) return bytes;
    this.onWarning(`the cached copy of ${type}/${name} in ${this.dir} is damaged (it does not hash to its name); it is removed and fetched from the repository`);
    await this.store.remove({ type, name }).catch(() => undefined);
    return undefined;
  }

  /** Keeps a copy of `type/name` (its stored bytes, or the parts that concatenate to them). */
  async write(type: FileType, name: string, data: Buffer | readonly Buffer[]): Promise<void> {
    if (!this.writable || !CACHED_TYPES.has(type)) return;
    try {
      await this.store.write({ type, name }, data);
    } catch (error) {
      this.writable = false;
      this.onWarning(`cannot write to the cache ${this.dir} (${(error as Error).message}); this command goes on without adding to it`);
    }
  }

  /** Drops the copy of a file the repository no longer has. */
  async remove(type: FileType, name: string): Promise<void> {
    if (CACHED_TYPES.has(type)) await this.store.remove({ type, name }).catch(() => undefined);
  }

  /**
   * Removes the copies of `type` files the repository no longer has, per `listed`, a listing
   * of the repository begun at `listedAt` (ms). A copy written since then is kept: it may be of
   * a file another process on this host wrote after the listing was taken.
   */
  async trim(type: FileType, listed: readonly FileInfo[], listedAt: number): Promise<void> {
    if (!CACHED_TYPES.has(type)) return;
    try {
      const present = new Set(listed.map((file) => file.name));
      for (const { name } of await this.store.list(type)) {
        if (present.has(name)) continue;
        const { mtimeMs } = await stat(join(this.dir, ...folderSegments({ type, name }), name));
        if (mtimeMs < listedAt) await this.store.remove({ type, name });
      }
    } catch {
      // A copy left behind costs disk space only; the next listing tries again.
    }
  }
}
